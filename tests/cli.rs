//! The `sampleid` binary as a user runs it: commands, outputs, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sampleid_features::npy::read_npy;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/audio").join(name)
}

fn sampleid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sampleid"))
        .args(args)
        .env_remove("SAMPLEID_LOG")
        .output()
        .expect("the binary runs")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_the_commands() {
    let o = sampleid(&["--help"]);
    assert!(o.status.success());
    for cmd in ["features", "info", "config", "bench"] {
        assert!(stdout(&o).contains(cmd), "{cmd} missing from --help");
    }
    let o = sampleid(&["features", "--help"]);
    assert!(stdout(&o).contains("(frames, 64)"), "the output shapes are documented");
}

#[test]
fn features_writes_npy_of_the_documented_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("mel", "awakening-8s.opus", vec![251, 64]),
        ("segments", "nebula-2.5s-16k.wav", vec![1, 64, 128]),
        ("segments", "awakening-20s.ogg", vec![32, 64, 128]),
        ("chroma", "awakening-8s.mp3", vec![81, 12]),
        ("cens", "awakening-20s.ogg", vec![21, 12]),
    ];
    for (kind, file, shape) in cases {
        let out = dir.path().join(format!("{file}.{kind}.npy"));
        let o = sampleid(&["features", s(&fixture(file)), "--kind", kind, "--out", s(&out)]);
        assert!(o.status.success(), "{kind} {file}: {}", stderr(&o));
        let a = read_npy(&out).unwrap();
        assert_eq!(a.shape, shape, "{kind} {file}");
        assert!(a.data.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn a_batch_with_bad_files_processes_the_good_ones_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.mp3");
    std::fs::write(&text, "not audio").unwrap();
    let empty = dir.path().join("empty.flac");
    std::fs::write(&empty, "").unwrap();
    let bytes = std::fs::read(fixture("awakening-8s.flac")).unwrap();
    let cut = dir.path().join("cut.flac");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.path().join("out");
    let o = sampleid(&[
        "features",
        s(&fixture("awakening-8s.mp3")),
        s(&text),
        s(&empty),
        s(&cut),
        s(&fixture("nebula-20s.ogg")),
        "--out-dir",
        s(&out),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("notes.mp3: not a recognised audio format"), "{err}");
    assert!(err.contains("empty.flac: file is empty"), "{err}");
    assert!(err.contains("cut.flac: truncated"), "{err}");
    assert!(err.contains("3 input(s) failed"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // One JSON object per input, in input order.
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["shape"], serde_json::json!([251, 64]));
    assert!(lines[1]["error"].as_str().unwrap().contains("notes.mp3"));
    assert!(lines[4]["output"].as_str().unwrap().ends_with("nebula-20s.mel.npy"));
    // The good files were written; nothing half-written is left behind.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["awakening-8s.mel.npy", "nebula-20s.mel.npy"]);
}

#[test]
fn usage_errors_exit_2() {
    let o = sampleid(&[
        "features",
        s(&fixture("awakening-8s.mp3")),
        s(&fixture("awakening-8s.flac")),
        "--out",
        "x.npy",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--out-dir"), "{}", stderr(&o));
    let o = sampleid(&["features"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn two_inputs_with_the_same_name_do_not_overwrite_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("sub");
    std::fs::create_dir(&other).unwrap();
    let copy = other.join("awakening-8s.mp3");
    std::fs::copy(fixture("awakening-8s.mp3"), &copy).unwrap();
    let o = sampleid(&[
        "features",
        s(&fixture("awakening-8s.mp3")),
        s(&copy),
        "--out-dir",
        s(dir.path()),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already written by another input"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn config_prints_defaults_and_files_override_them() {
    let o = sampleid(&["config"]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(
        text.contains("n_mels = 64") && text.contains("mel_scale = \"htk\""),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("small.toml");
    std::fs::write(&cfg, "[frontend]\nn_mels = 32\n").unwrap();
    let out = dir.path().join("m.npy");
    let o = sampleid(&[
        "--config",
        s(&cfg),
        "features",
        s(&fixture("awakening-8s-16k.wav")),
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_npy(&out).unwrap().shape, vec![251, 32]);

    std::fs::write(&cfg, "[frontend]\nnmels = 32\n").unwrap();
    let o = sampleid(&["--config", s(&cfg), "config"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nmels"), "{}", stderr(&o));
}

#[test]
fn info_describes_files_and_flags_damage() {
    let o = sampleid(&["info", "--json", s(&fixture("awakening-8s.opus"))]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["codec"], "opus");
    assert_eq!(v["channels"], 2);
    assert!((v["decoded_s"].as_f64().unwrap() - 8.0).abs() < 0.01);
    assert_eq!(v["silent"], false);

    let dir = tempfile::tempdir().unwrap();
    let silent = dir.path().join("silent.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&silent, spec).unwrap();
    for _ in 0..8000 {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    let o = sampleid(&["info", "--json", s(&silent)]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["silent"], true);
    assert_eq!(v["decoded_s"], 1.0);
}
