//! The library commands as a user runs them: index (with a real kill in the
//! middle), list, stats, query (JSON contract), delete.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

mod common;
use common::{fixture, s, sampleid, stderr, stdout};

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The bundled 20 s pieces, copied under `dir` (as a user's music folder).
fn music(dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let names = [
        "awakening-20s.ogg",
        "deprecation-20s.ogg",
        "media-threat-20s.ogg",
        "nebula-20s.ogg",
        "coherence-10s-ffmpeg-seek.ogg",
    ];
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let to = if i % 2 == 0 {
                dir.join(n)
            } else {
                dir.join("sub").join(n)
            };
            std::fs::copy(fixture(n), &to).unwrap();
            to
        })
        .collect()
}

fn listed(db: &Path) -> Vec<String> {
    let o = sampleid(&["list", "--db", s(db), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    json_lines(&o)
        .iter()
        .map(|v| v["path"].as_str().unwrap().to_string())
        .collect()
}

/// Asserts that every song `reported` indexed is listed in `db` (the promise
/// a kill or a full disk must keep).
fn assert_listed(db: &Path, reported: &[String], when: &str) {
    let now = listed(db);
    for r in reported {
        assert!(
            now.contains(r),
            "{when}: {r} was reported indexed but is missing: {now:?}"
        );
    }
}

/// Runs `sampleid index --jobs 1 --json` over `lib` into `db` and SIGKILLs it
/// after it has reported `after` songs indexed (after 300 ms when `after`
/// is 0: somewhere in start-up or the first song); returns the songs it
/// reported.
fn index_killed(db: &Path, lib: &Path, after: usize) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sampleid"))
        .args(["-q", "index", "--db", s(db), "--jobs", "1", "--json", s(lib)])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reported = Vec::new();
    if after == 0 {
        std::thread::sleep(std::time::Duration::from_millis(300));
    } else {
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while let Some(Ok(line)) = lines.next() {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["status"] == "indexed" {
                reported.push(v["path"].as_str().unwrap().to_string());
                if reported.len() == after {
                    break;
                }
            }
        }
    }
    child.kill().ok(); // SIGKILL: no cleanup runs (it may have finished already)
    child.wait().unwrap();
    reported
}

#[test]
fn a_killed_index_keeps_what_it_reported_and_continues() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("music");
    let files = music(&lib);
    let db = tmp.path().join("db");
    // One file at a time; kill the process right after it reports the first song.
    let reported = index_killed(&db, &lib, 1);
    assert_eq!(reported.len(), 1);
    assert_listed(&db, &reported, "after the kill");
    let after_kill = listed(&db);
    // Continue: everything ends up indexed once; what was there is skipped.
    let o = sampleid(&["-q", "index", "--db", s(&db), "--json", s(&lib)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = json_lines(&o);
    let summary = &out.last().unwrap()["summary"];
    assert_eq!(summary["library_songs"], 5, "{summary}");
    assert_eq!(summary["skipped"].as_u64().unwrap() as usize, after_kill.len());
    let mut all = listed(&db);
    all.sort();
    let mut want: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    want.sort();
    assert_eq!(all, want);

    // The landmark rows came through the kill too: a clip of the first song
    // reported before it is found by the landmark stage alone.
    let o = sampleid(&["query", "--db", s(&db), "--json", "--stage", "landmarks", &reported[0]]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let answer = &json_lines(&o)[0];
    assert_eq!(answer["matches"][0]["reference"], reported[0].as_str(), "{answer}");
    assert!(
        ["pairs", "quads"].contains(&answer["matches"][0]["stage"].as_str().unwrap()),
        "{answer}"
    );

    // The same content under another name is not indexed twice.
    let copy = tmp.path().join("copy.ogg");
    std::fs::copy(&files[1], &copy).unwrap();
    let o = sampleid(&["-q", "index", "--db", s(&db), "--json", s(&copy)]);
    assert_eq!(json_lines(&o)[0]["status"], "skipped");

    // A clip of a song, in the JSON contract; a damaged file gets an error line.
    let bad = tmp.path().join("bad.ogg");
    std::fs::write(&bad, b"OggS but not really").unwrap();
    let o = sampleid(&["query", "--db", s(&db), "--json", s(&files[3]), s(&bad)]);
    assert_eq!(o.status.code(), Some(1), "one input failed");
    let answers = json_lines(&o);
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["query"], s(&files[3]));
    let m = &answers[0]["matches"][0];
    assert_eq!(m["reference"], s(&files[3]), "{}", answers[0]);
    for key in ["score", "query_start", "reference_start"] {
        assert!(m[key].is_number(), "{key} in {m}");
    }
    for key in ["time_ratio", "pitch_shift"] {
        assert!(m.get(key).is_some(), "{key} is always present (null when unknown)");
    }
    assert!(
        m["reference_start"].as_f64().unwrap() < 1.1,
        "the whole song starts at 0: {m}"
    );
    assert_eq!(answers[1]["query"], s(&bad));
    assert!(answers[1]["error"].as_str().is_some());

    // Delete by path: the song is gone from the list and from the answers.
    let o = sampleid(&["delete", "--db", s(&db), s(&files[3])]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(listed(&db).len(), 4);
    let o = sampleid(&["query", "--db", s(&db), "--json", s(&files[3])]);
    let answers = json_lines(&o);
    assert!(
        answers[0]["matches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["reference"] != s(&files[3])),
        "{}",
        answers[0]
    );
    let o = sampleid(&["delete", "--db", s(&db), "no-such-song.ogg"]);
    assert_eq!(o.status.code(), Some(1));

    let o = sampleid(&["stats", "--db", s(&db), "--json"]);
    let st: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(st["songs"], 4);
    assert!(st["bytes"].as_u64().unwrap() > 0);
    assert!(st["landmarks"].as_str().unwrap().ends_with("/v3"), "{st}");
}

#[test]
fn a_missing_library_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = sampleid(&[
        "query",
        "--db",
        s(&tmp.path().join("nope")),
        s(&fixture("nebula-20s.ogg")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a sampleid library"));
}

#[test]
fn query_and_match_print_the_json_contract() {
    // The answers themselves are the engine's (crates/engine/tests/library.rs);
    // here: the binary's lines, fields and exit codes.
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("lib");
    let nebula = fixture("nebula-20s.ogg");
    let other = fixture("awakening-20s.ogg");
    let o = sampleid(&["-q", "index", "--db", s(&db), s(&other), s(&nebula)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let clip = fixture("query-nebula-pitch1-mixed.wav");
    let silent = tmp.path().join("silence.wav");
    common::write_wav(&silent, 16_000, &[0.0; 16_000 * 5]);
    for cmd in ["query", "match"] {
        let o = sampleid(&[cmd, "--db", s(&db), "--json", s(&clip), s(&silent)]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let lines = json_lines(&o);
        assert_eq!(lines.len(), 2, "{cmd}");
        assert_eq!(lines[0]["query"], s(&clip));
        assert!(
            (lines[0]["duration_s"].as_f64().unwrap() - 10.0).abs() < 0.05,
            "{}",
            lines[0]
        );
        let top = &lines[0]["matches"][0];
        assert_eq!(top["reference"], s(&nebula), "{cmd}: {}", lines[0]);
        assert!(top["song_id"].as_i64().is_some(), "{top}");
        // The failed clip: its name once, the reason without it.
        assert_eq!(lines[1]["query"], s(&silent));
        let reason = lines[1]["error"].as_str().unwrap();
        assert!(
            reason.starts_with("silent") && !reason.contains("silence.wav"),
            "{reason}"
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.matches("silence.wav").count(), 1, "{err}");
    }
    let o = sampleid(&["query", "--db", s(&db), s(&clip)]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.lines().nth(1).unwrap().contains("nebula-20s.ogg"), "{out}");
}

#[test]
fn align_gives_the_warping_path_and_a_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let plot = tmp.path().join("path.png");
    let a = fixture("nebula-20s.ogg");
    let o = sampleid(&["align", "--json", "--plot", s(&plot), s(&a), s(&a)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let path = v["path"].as_array().unwrap();
    assert_eq!(path[0], serde_json::json!([0.0, 0.0]));
    assert!(
        path.iter().all(|p| p[0] == p[1]),
        "a recording aligns with itself on the diagonal"
    );
    let last = path.last().unwrap()[0].as_f64().unwrap();
    assert!((last - 20.0).abs() < 0.5, "{last}");
    assert!(v["mean_cost"].as_f64().unwrap() < 1e-6);
    let png = std::fs::read(&plot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000);
}

#[test]
fn chroma_settings_must_match_the_library() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("lib");
    let song = fixture("nebula-20s.ogg");
    let o = sampleid(&["-q", "index", "--db", s(&db), s(&song)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg = tmp.path().join("other.toml");
    std::fs::write(&cfg, "[chroma]\nhop_length = 800\n").unwrap();
    let o = sampleid(&["--config", s(&cfg), "match", "--db", s(&db), s(&song)]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("frames/s"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let other = fixture("awakening-20s.ogg");
    let o = sampleid(&["-q", "--config", s(&cfg), "index", "--db", s(&db), s(&other)]);
    assert!(!o.status.success(), "a library keeps one chroma rate");
    assert!(String::from_utf8_lossy(&o.stderr).contains("chroma frame rate"));
    // The library is intact: the first song still matches itself.
    let o = sampleid(&["match", "--db", s(&db), "--json", s(&song)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json_lines(&o)[0]["matches"][0]["reference"], s(&song));
}

/// `scripts/torture` in short: kills at several moments (during start-up,
/// after one song, after two), and after each the library opens, keeps
/// every song it reported, and the next run goes on; at the end every
/// reported song is found by its own audio through landmarks, network and
/// chroma shingles (no half song).
#[test]
fn repeated_kills_lose_nothing_that_was_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("music");
    let files = music(&lib);
    let db = tmp.path().join("db");
    let mut reported: Vec<String> = Vec::new();
    for kill_after in [0usize, 1, 2] {
        reported.extend(index_killed(&db, &lib, kill_after));
        assert_listed(&db, &reported, "after a kill");
    }
    let o = sampleid(&["-q", "index", "--db", s(&db), "--json", s(&lib)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(listed(&db).len(), files.len());
    assert!(!reported.is_empty());
    for stage in ["landmarks", "neural"] {
        let o = sampleid(&["query", "--db", s(&db), "--json", "--stage", stage, &reported[0]]);
        let answer = &json_lines(&o)[0];
        assert_eq!(
            answer["matches"][0]["reference"],
            reported[0].as_str(),
            "{stage}: {answer}"
        );
    }
    let o = sampleid(&["match", "--db", s(&db), "--json", &reported[0]]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json_lines(&o)[0]["matches"][0]["reference"], reported[0].as_str());
}

/// Unmounts a test's tmpfs, whatever happens to the test.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// `sampleid index --jobs 1` of `paths` into `db`, which must succeed.
fn index_one_by_one(db: &Path, paths: &[&str]) {
    let mut args = vec!["-q", "index", "--db", s(db), "--jobs", "1"];
    args.extend(paths);
    let o = sampleid(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A tmpfs of `kib` KiB mounted at `at` (created), unmounted when the
/// guard drops; `None` where this machine does not let the test mount one.
fn mount_tmpfs(at: &Path, kib: u64) -> Option<Mounted> {
    std::fs::create_dir(at).unwrap();
    let size = format!("size={kib}k");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &size, "tmpfs", s(at)])
        .stderr(Stdio::null())
        .status();
    if !matches!(mounted, Ok(st) if st.success()) {
        eprintln!("skipped: this machine does not let the test mount a tmpfs");
        return None;
    }
    Some(Mounted(at.to_path_buf()))
}

/// Gives the tmpfs at `at` `kib` KiB.
fn remount(at: &Path, kib: u64) {
    let size = format!("remount,size={kib}k");
    assert!(
        Command::new("mount")
            .args(["-o", &size, s(at)])
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn a_full_disk_is_a_clear_error_and_loses_nothing() {
    // A library on a tmpfs with room for about half of what the songs need
    // (the whole run is in docs/reliability.md and `scripts/full-disk`).
    // Mounting needs the right to (root, as in CI's container); without it
    // the test says so and checks nothing.
    let dir = tempfile::tempdir().unwrap();
    let files = music(&dir.path().join("music"));
    let paths: Vec<&str> = files.iter().map(|f| s(f)).collect();
    let probe = dir.path().join("probe");
    index_one_by_one(&probe, &paths);
    let need = dir_bytes(&probe);
    let small = dir.path().join("small");
    let Some(_unmount) = mount_tmpfs(&small, need / 2 / 1024) else {
        return;
    };
    let db = small.join("lib");
    let mut args = vec!["-q", "index", "--db", s(&db), "--jobs", "1", "--json"];
    args.extend(&paths);
    let o = sampleid(&args);
    assert!(!o.status.success(), "a full disk is a failure");
    let err = String::from_utf8_lossy(&o.stderr);
    // The OS's words when a row file fills it, SQLite's when the database does.
    assert!(
        err.contains("No space left on device") || err.contains("database or disk is full"),
        "the cause is named: {err}"
    );
    assert!(err.contains(s(&db)), "and where: {err}");
    let reported: Vec<String> = json_lines(&o)
        .iter()
        .filter(|v| v["status"] == "indexed")
        .map(|v| v["path"].as_str().unwrap().to_string())
        .collect();
    assert!(reported.len() < files.len(), "the disk filled before the end");
    // The library opens, holds every song it reported, and finds them.
    assert_listed(&db, &reported, "after the full disk");
    for r in &reported {
        let o = sampleid(&["-q", "query", "--db", s(&db), "--json", r]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(v["matches"][0]["reference"], r.as_str(), "{v}");
    }
    // Room again: the next run continues where the full disk stopped it.
    remount(&small, need * 3 / 1024);
    let mut args = vec!["-q", "index", "--db", s(&db), "--jobs", "1"];
    args.extend(&paths);
    let o = sampleid(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(listed(&db).len(), files.len());
}

#[test]
fn a_compaction_on_a_full_disk_is_a_clear_error_and_changes_nothing() {
    // A library on a tmpfs with room for itself and a quarter more, one
    // song of five deleted: the compaction's new row files do not fit.
    // Mounting needs the right to (root, as in CI's container).
    let dir = tempfile::tempdir().unwrap();
    let files = music(&dir.path().join("music"));
    let paths: Vec<&str> = files.iter().map(|f| s(f)).collect();
    let probe = dir.path().join("probe");
    index_one_by_one(&probe, &paths);
    let o = sampleid(&["-q", "delete", "--db", s(&probe), paths[0]]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let need = dir_bytes(&probe);
    let small = dir.path().join("small");
    let Some(_unmount) = mount_tmpfs(&small, need * 5 / 4 / 1024) else {
        return;
    };
    let db = small.join("lib");
    assert!(
        Command::new("cp")
            .args(["-a", s(&probe), s(&db)])
            .status()
            .unwrap()
            .success()
    );
    let o = sampleid(&["compact", "--db", s(&db), "--json"]);
    assert!(!o.status.success(), "a full disk is a failure: {}", stdout(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("No space left on device"), "the cause is named: {err}");
    assert!(err.contains(s(&db)), "and where: {err}");
    // The library is as it was: the four songs, found, their dead rows kept.
    let now = listed(&db);
    assert_eq!(now.len(), 4, "{now:?}");
    for r in &paths[1..4] {
        let o = sampleid(&["-q", "query", "--db", s(&db), "--json", r]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(v["matches"][0]["reference"], *r, "{v}");
    }
    let stats = |db: &Path| -> serde_json::Value {
        let o = sampleid(&["stats", "--db", s(db), "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    assert!(stats(&db)["dead_segments"].as_u64().unwrap() > 0);
    // Room again: the compaction goes through.
    remount(&small, need * 3 / 1024);
    let o = sampleid(&["-q", "compact", "--db", s(&db)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stats(&db)["dead_segments"].as_u64(), Some(0));
    assert_eq!(listed(&db).len(), 4);
}

/// `value` without its `song_id` fields (ids follow the order songs were added).
fn without_ids(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(m) => m
            .iter()
            .filter(|(k, _)| k.as_str() != "song_id")
            .map(|(k, v)| (k.clone(), without_ids(v)))
            .collect(),
        serde_json::Value::Array(a) => a.iter().map(without_ids).collect(),
        v => v.clone(),
    }
}

#[test]
fn the_same_songs_added_in_another_order_give_the_same_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut songs = music(&tmp.path().join("music"));
    // A looped song: a bar of 2.56 s (five segment hops) played eight times.
    // Its segments repeat exactly, so its rows tie as nearest neighbours,
    // and a graph breaks such ties by the order it was built in unless the
    // search does not let it.
    let cfg = sampleid_audio::AudioConfig::default();
    let rate = cfg.sample_rate;
    let nebula = sampleid_audio::decode_file(&fixture("nebula-20s.ogg"), &cfg).unwrap();
    let bar = &nebula.samples[5 * rate as usize..][..(2.56 * rate as f64) as usize];
    let looped: Vec<f32> = bar.iter().cycle().take(bar.len() * 8).copied().collect();
    let loop_song = tmp.path().join("music/loop.wav");
    common::write_wav(&loop_song, rate, &looped);
    songs.push(loop_song);
    // Queries: the README clip, and 6 s of the loop at a lower level.
    let loop_clip = tmp.path().join("loop-clip.wav");
    let start = bar.len() / 3;
    let clip: Vec<f32> = looped[start..start + 6 * rate as usize]
        .iter()
        .map(|x| x * 0.7)
        .collect();
    common::write_wav(&loop_clip, rate, &clip);
    let queries = [fixture("query-nebula-pitch1-mixed.wav"), loop_clip, songs[4].clone()];

    let answers = |order: &[PathBuf], name: &str| -> Vec<serde_json::Value> {
        let db = tmp.path().join(name);
        let mut args = vec!["-q", "index", "--db", s(&db)];
        args.extend(order.iter().map(|p| s(p)));
        let o = sampleid(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // Every stage together, and the neural stage alone (which the
        // landmarks often make unnecessary in the fused answer).
        let mut all = Vec::new();
        for stage in ["all", "neural"] {
            let mut args = vec![
                "query",
                "--db",
                s(&db),
                "--json",
                "--min-confidence",
                "0",
                "--stage",
                stage,
            ];
            args.extend(queries.iter().map(|p| s(p)));
            let o = sampleid(&args);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            all.extend(json_lines(&o).iter().map(without_ids));
        }
        all
    };
    let forward = answers(&songs, "forward");
    let reversed: Vec<PathBuf> = songs.iter().rev().cloned().collect();
    let backward = answers(&reversed, "backward");
    // And the same order again: graphs built by parallel adds differed
    // from build to build.
    let again = answers(&songs, "again");
    assert_eq!(forward.len(), 2 * queries.len());
    for ((f, b), a) in forward.iter().zip(&backward).zip(&again) {
        assert!(!f["matches"].as_array().unwrap().is_empty(), "{f}");
        assert_eq!(f, b, "the same songs in two orders answered differently");
        assert_eq!(f, a, "the same songs in the same order answered differently");
    }
}

#[test]
fn a_compacted_library_answers_as_one_that_never_held_the_deleted_songs() {
    let tmp = tempfile::tempdir().unwrap();
    let songs = music(&tmp.path().join("music"));
    // Extras between the songs: 4 s excerpts of them, louder (other content).
    let cfg = sampleid_audio::AudioConfig::default();
    let rate = cfg.sample_rate;
    let extras: Vec<PathBuf> = songs[..3]
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let a = sampleid_audio::decode_file(p, &cfg).unwrap();
            let part: Vec<f32> = a.samples[(2 + i) * rate as usize..][..12 * rate as usize]
                .iter()
                .map(|x| (x * 1.5).clamp(-1.0, 1.0))
                .collect();
            let to = tmp.path().join(format!("extra{i}.wav"));
            common::write_wav(&to, rate, &part);
            to
        })
        .collect();
    let queries = [
        fixture("query-nebula-pitch1-mixed.wav"),
        songs[4].clone(),
        extras[1].clone(),
    ];
    // One file per run: a run commits its files in the order they finish
    // encoding, and the row files are compared byte for byte below.
    let index = |db: &Path, files: &[&PathBuf]| {
        for f in files {
            let o = sampleid(&["-q", "index", "--db", s(db), s(f)]);
            assert!(o.status.success(), "{}", stderr(&o));
        }
    };
    let answers = |db: &Path| -> Vec<serde_json::Value> {
        let mut args = vec!["query", "--db", s(db), "--json", "--min-confidence", "0"];
        args.extend(queries.iter().map(|p| s(p)));
        let o = sampleid(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        json_lines(&o).iter().map(without_ids).collect()
    };
    let stats = |db: &Path| -> serde_json::Value {
        let o = sampleid(&["stats", "--db", s(db), "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    };

    // Songs and extras interleaved, then the extras deleted and compacted.
    let churned = tmp.path().join("churned");
    let mixed: Vec<&PathBuf> = songs
        .iter()
        .enumerate()
        .flat_map(|(i, p)| std::iter::once(p).chain(extras.get(i)))
        .collect();
    index(&churned, &mixed);
    let mut args = vec!["-q", "delete", "--db", s(&churned)];
    args.extend(extras.iter().map(|p| s(p)));
    let o = sampleid(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = stats(&churned);
    assert!(before["dead_segments"].as_u64().unwrap() > 0, "{before}");
    let uncompacted = answers(&churned);
    let o = sampleid(&["compact", "--db", s(&churned), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let done: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(done["segments_removed"], before["dead_segments"], "{done}");
    assert!(done["bytes_after"].as_u64() < done["bytes_before"].as_u64(), "{done}");
    let after = stats(&churned);
    assert_eq!(
        (after["dead_segments"].as_u64(), after["dead_bytes"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(after["segments"], before["segments"]);
    // Nothing more to do the second time.
    let o = sampleid(&["compact", "--db", s(&churned), "--json"]);
    assert_eq!(stdout(&o).trim(), r#"{"compacted":false}"#);

    // The same songs, never with the extras.
    let clean = tmp.path().join("clean");
    index(&clean, &songs.iter().collect::<Vec<_>>());
    let compacted = answers(&churned);
    assert_eq!(
        compacted,
        answers(&clean),
        "compacted vs a library that never held the extras"
    );
    for (c, u) in compacted.iter().zip(&uncompacted) {
        assert_eq!(c["matches"], u["matches"], "compaction changed an answer");
    }
    for name in [
        "fingerprints-1.f16",
        "nodes-1.i8",
        "chroma-1.u8",
        "peaks-1.lm",
        "quads-1.lm",
    ] {
        let plain = name.replace("-1", "");
        assert_eq!(
            std::fs::read(churned.join(name)).unwrap(),
            std::fs::read(clean.join(&plain)).unwrap(),
            "{name}"
        );
        assert!(
            !churned.join(&plain).exists(),
            "{plain} of the old generation is removed"
        );
    }
    // It goes on: another song joins the compacted library and is found.
    index(&churned, &[&extras[0]]);
    let o = sampleid(&["query", "--db", s(&churned), "--json", s(&extras[0])]);
    let a = &json_lines(&o)[0];
    assert!(
        a["matches"][0]["reference"].as_str().unwrap().ends_with("extra0.wav"),
        "{a}"
    );
}
