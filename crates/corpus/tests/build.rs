//! The corpus builder end to end on a package made here with `dpkg-deb -b`
//! (no network): selection rules, archive members, DEP-5 licences, duration
//! rules, de-duplication, splits, and idempotent re-runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use sampleid_corpus::{BuildOptions, Kind, Table, build, manifest};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/audio")
        .join(name)
}

fn sine_wav(path: &Path, secs: f64, freq: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(secs * 16_000.0) as usize {
        let v = (2.0 * std::f64::consts::PI * freq * i as f64 / 16_000.0).sin() * 0.3;
        w.write_sample((v * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// Builds `testpkg_1.0_all.deb` into `debs`.
fn make_package(work: &Path, debs: &Path) {
    let root = work.join("pkgroot");
    let music = root.join("usr/share/games/testpkg/music");
    let noise = root.join("usr/share/games/testpkg/ambient");
    let doc = root.join("usr/share/doc/testpkg");
    let data = root.join("usr/share/games/testpkg/data");
    for d in [&music, &noise, &doc, &data, &root.join("DEBIAN")] {
        std::fs::create_dir_all(d).unwrap();
    }
    sine_wav(&music.join("Long Theme.wav"), 35.0, 440.0);
    sine_wav(&music.join("short jingle.wav"), 5.0, 660.0); // too short for music
    std::fs::copy(music.join("Long Theme.wav"), music.join("copy of theme.wav")).unwrap(); // duplicate
    std::fs::write(music.join("notes.txt"), "not audio").unwrap();
    std::fs::copy(fixture("awakening-20s.ogg"), noise.join("wind.ogg")).unwrap();
    // A zip archive with one member matched by an archive rule.
    let zip_file = std::fs::File::create(data.join("pak0.pk3")).unwrap();
    let mut z = zip::ZipWriter::new(zip_file);
    let opts: zip::write::SimpleFileOptions = Default::default();
    z.start_file("music/Archived Song.ogg", opts).unwrap();
    z.write_all(&std::fs::read(fixture("nebula-20s.ogg")).unwrap()).unwrap();
    z.start_file("textures/wall.png", opts).unwrap();
    z.write_all(b"png").unwrap();
    z.finish().unwrap();
    std::fs::write(
        doc.join("copyright"),
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: testpkg\n\n\
         Files: *\nCopyright: 2024 Someone\nLicense: GPL-2+\n\n\
         Files: music/Archived*.ogg\nCopyright: 2024 Someone Else\nLicense: CC-BY-SA-3.0\n",
    )
    .unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        "Package: testpkg\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.invalid>\nDescription: test\n x\n",
    )
    .unwrap();
    std::fs::create_dir_all(debs).unwrap();
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", "-b"])
        .arg(&root)
        .arg(debs.join("testpkg_1.0_all.deb"))
        .output()
        .expect("dpkg-deb is part of every Debian system");
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
}

const TABLE: &str = r#"
[[package]]
name = "testpkg"
licence = "table-licence"
style = "test style"
rules = [
  { kind = "music", path = "/music/" },
  { kind = "music", archive = "\\.pk3$", path = "^music/" },
  { kind = "noise", path = "/ambient/" },
]
"#;

#[test]
fn builds_a_manifest_from_a_local_package_and_is_idempotent() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("corpus");
    make_package(work.path(), &dir.join("debs"));
    let table = Table::parse(TABLE).unwrap();
    let opts = BuildOptions {
        dir: dir.clone(),
        only: vec![],
        skip_heavy: false,
        grooves: 0,
        modules: false,
    };
    let summary = build(&opts, &table, &|_, _, _| {}).unwrap();
    let entries = manifest::read(&dir.join("manifest.csv")).unwrap();
    assert_eq!(summary.entries, entries.len());

    let music: Vec<_> = entries.iter().filter(|e| e.kind == Kind::Music).collect();
    let names: Vec<&str> = music.iter().map(|e| e.path.rsplit('/').next().unwrap()).collect();
    // The 35 s track and the archive member are kept; the 5 s jingle, the
    // duplicate, the text file and the texture are not.
    assert_eq!(music.len(), 1, "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| *n == "Long Theme.wav" || *n == "copy of theme.wav")
    );
    let theme = music[0];
    assert!((theme.duration_s - 35.0).abs() < 0.01);
    assert_eq!(theme.licence, "GPL-2+", "from the copyright file's catch-all stanza");
    assert_eq!(theme.style, "test style");
    assert_eq!(theme.split, manifest::split_of(&theme.group));

    // The archive member is 20 s: too short for music, so it is rejected with a reason.
    let rejected = std::fs::read_to_string(dir.join("rejected.csv")).unwrap();
    assert!(
        rejected.contains("Archived Song.ogg") && rejected.contains("outside 30"),
        "{rejected}"
    );
    assert!(rejected.contains("short jingle.wav"), "{rejected}");
    assert!(rejected.contains("duplicate content"), "{rejected}");
    // The archive itself is removed once its members are out.
    assert!(!dir.join("files/testpkg/usr/share/games/testpkg/data/pak0.pk3").exists());
    assert!(
        dir.join("files/testpkg/usr/share/games/testpkg/data/pak0.pk3.d/music/Archived Song.ogg")
            .exists()
    );

    let noise: Vec<_> = entries.iter().filter(|e| e.kind == Kind::Noise).collect();
    assert_eq!(noise.len(), 1);
    assert!((noise[0].duration_s - 20.0).abs() < 0.01);

    // A second run changes nothing; a lost manifest is rebuilt from the state.
    build(&opts, &table, &|_, _, _| {}).unwrap();
    assert_eq!(manifest::read(&dir.join("manifest.csv")).unwrap(), entries);
    std::fs::remove_file(dir.join("manifest.csv")).unwrap();
    std::fs::remove_file(dir.join("debs/testpkg_1.0_all.deb")).unwrap();
    build(&opts, &table, &|_, _, _| {}).unwrap();
    assert_eq!(
        manifest::read(&dir.join("manifest.csv")).unwrap(),
        entries,
        "resumes from the extracted files without downloading again"
    );
}

#[test]
fn the_shipped_table_covers_every_kind() {
    let t = Table::default_table();
    assert!(t.package.len() >= 55, "{} packages", t.package.len());
    let kinds: std::collections::HashSet<_> = t.package.iter().flat_map(|p| p.rules.iter().map(|r| r.kind)).collect();
    assert_eq!(
        kinds.len(),
        6,
        "music, module, stem, noise, speech and ir rules: {kinds:?}"
    );
    // Heavy packages come last.
    let order = t.ordered();
    let first_heavy = order.iter().position(|p| p.heavy).unwrap();
    assert!(order[first_heavy..].iter().all(|p| p.heavy));
}
