//! The `sampleid` binary as a user runs it: commands, outputs, exit codes.

use sampleid_features::npy::read_npy;

mod common;
use common::{fixture, s, sampleid, stderr, stdout};

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
        ("track", "awakening-20s.ogg", vec![1, 113]),
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
    // The input in its own field, the reason without it (printed once).
    assert!(lines[1]["input"].as_str().unwrap().ends_with("notes.mp3"));
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .starts_with("not a recognised audio format"),
        "{}",
        lines[1]
    );
    assert_eq!(err.matches("notes.mp3").count(), 1, "{err}");
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
    common::write_wav(&silent, 8000, &[0.0; 8000]);
    let o = sampleid(&["info", "--json", s(&silent)]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["silent"], true);
    assert_eq!(v["decoded_s"], 1.0);
}

#[test]
fn fingerprints_of_an_excerpt_find_their_place_in_the_song() {
    // awakening-8s.mp3 is the first 8 s of awakening-20s.ogg (other codec and
    // rate): its segments must land on the same segments of the song, among
    // the segments of four songs, with the built-in model and no flag.
    let dir = tempfile::tempdir().unwrap();
    let songs = [
        "awakening-20s.ogg",
        "nebula-20s.ogg",
        "media-threat-20s.ogg",
        "deprecation-20s.ogg",
    ];
    let mut files: Vec<String> = songs.iter().map(|f| s(&fixture(f)).to_string()).collect();
    files.push(s(&fixture("awakening-8s.mp3")).to_string());
    let mut args = vec!["fingerprint", "--json", "--out-dir", s(dir.path())];
    args.extend(files.iter().map(|f| f.as_str()));
    let o = sampleid(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 5);
    let load = |name: &str| {
        read_npy(
            &dir.path().join(
                name.replace(".ogg", ".fingerprints.npy")
                    .replace(".mp3", ".fingerprints.npy"),
            ),
        )
        .unwrap()
    };
    let mut refs: Vec<(usize, usize, Vec<f32>)> = Vec::new();
    for (song, f) in songs.iter().enumerate() {
        let a = load(f);
        assert_eq!(a.shape, vec![32, 128]);
        for (i, row) in a.data.chunks(128).enumerate() {
            let n: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-3, "fingerprints are unit vectors");
            refs.push((song, i, row.to_vec()));
        }
    }
    let q = load("awakening-8s.mp3");
    assert_eq!(q.shape, vec![8, 128]);
    // Music repeats, so single segments may land on a repetition; the whole
    // excerpt, aligned segment by segment, must land on song 0 at offset 0.
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let mut best = (f32::MIN, 0, 0);
    let mut best_other = f32::MIN;
    for song in 0..songs.len() {
        let rows: Vec<&Vec<f32>> = refs.iter().filter(|r| r.0 == song).map(|r| &r.2).collect();
        for offset in 0..=rows.len() - 8 {
            let score = q
                .data
                .chunks(128)
                .enumerate()
                .map(|(i, row)| dot(row, rows[offset + i]))
                .sum::<f32>()
                / 8.0;
            if score > best.0 {
                best = (score, song, offset);
            }
            if song != 0 {
                best_other = best_other.max(score);
            }
        }
    }
    assert_eq!(
        (best.1, best.2),
        (0, 0),
        "the excerpt is found at its place (score {})",
        best.0
    );
    // A margin over the other songs (measured: 0.991 against 0.944 for the
    // small model), so that a collapsed model, whose scores all tie, fails.
    assert!(best.0 - best_other > 0.02, "margin {} vs {}", best.0, best_other);
    let o = sampleid(&["model", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["source"], "built-in");
    // The built-in encoder is the no-graph network since issue 17.
    assert_eq!(v["info"]["config"]["graph"], false);
}

#[test]
fn bench_run_answers_a_benchmark_with_the_built_in_engine() {
    // A hand-made benchmark: three songs indexed, an 8 s excerpt of the first
    // (other codec) as a query, and a song that is not indexed as a negative.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("refs")).unwrap();
    std::fs::create_dir_all(d.join("queries")).unwrap();
    let mut refs = Vec::new();
    for f in ["awakening-20s.ogg", "nebula-20s.ogg", "media-threat-20s.ogg"] {
        std::fs::copy(fixture(f), d.join("refs").join(f)).unwrap();
        let id = f.trim_end_matches(".ogg");
        refs.push(serde_json::json!({"id": id, "path": format!("refs/{f}"), "source": f, "duration_s": 20.0}));
    }
    std::fs::copy(fixture("awakening-8s.mp3"), d.join("queries/q1.mp3")).unwrap();
    std::fs::copy(fixture("deprecation-20s.ogg"), d.join("queries/q2.ogg")).unwrap();
    let query = |id: &str, path: &str, negative: bool, targets: serde_json::Value| {
        serde_json::json!({"id": id, "path": path, "protocol": "sample-id", "condition": "codec", "length_s": 8.0,
            "negative": negative, "targets": targets, "source": "x", "source_stems": [], "transforms": []})
    };
    let bench = serde_json::json!({
        "version": 1, "seed": 1, "sample_rate": 16000, "segment_hop_s": 0.512,
        "references": refs, "negatives": [],
        "queries": [
            query("q1", "queries/q1.mp3", false, serde_json::json!([{"reference": "awakening-20s",
                "reference_start_s": 0.0, "query_start_s": 0.0, "time_ratio": 1.0, "pitch_shift": 0.0}])),
            query("q2", "queries/q2.ogg", true, serde_json::json!([])),
        ],
    });
    std::fs::write(d.join("benchmark.json"), bench.to_string()).unwrap();
    let o = sampleid(&["-q", "bench", "run", "--bench", s(d), "--system", "t"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let answers = std::fs::read_to_string(d.join("report-t/answers.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = answers.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["query"], "queries/q1.mp3");
    let top = &lines[0]["matches"][0];
    // References are named by their path as indexed (BENCH/refs/…).
    assert!(
        top["reference"].as_str().unwrap().ends_with("refs/awakening-20s.ogg"),
        "{top}"
    );
    assert!(top["reference_start"].as_f64().unwrap() < 0.6, "{top}");
    assert!(top["confidence"].as_f64().unwrap() >= 0.5, "{top}");
    assert!(d.join("report-t/report.md").exists());
    // The unknown song gets no answer at the default threshold; the
    // confidences' reliability is reported beside the scores.
    assert_eq!(lines[1]["matches"].as_array().map(Vec::len), Some(0), "{}", lines[1]);
    assert!(d.join("report-t/reliability.png").exists());
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("report-t/reliability.json")).unwrap()).unwrap();
    assert!(r["ece"].as_f64().unwrap() >= 0.0, "{r}");

    // Scoring the answers again at a higher threshold drops the match.
    let o = sampleid(&[
        "-q",
        "bench",
        "run",
        "--bench",
        s(d),
        "--results",
        s(&d.join("report-t/answers.jsonl")),
        "--min-score",
        "1.01",
        "--system",
        "strict",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["scores"]["overall"][0]["top1"], 0.0, "{v}");

    // The calibrator's trainer says what it needs.
    let o = sampleid(&["train", "calibrator", "--on", s(d)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("BENCH_DIR=ANSWERS.jsonl"), "{}", stderr(&o));
    let peer = d.join("peer.jsonl");
    std::fs::write(
        &peer,
        r#"{"query":"queries/q1.mp3","matches":[{"reference":"x/awakening-20s.ogg","score":3}]}"#,
    )
    .unwrap();
    let on = format!("{}={}", s(d), s(&peer));
    let o = sampleid(&["train", "calibrator", "--on", &on, "--out", s(&d.join("cal.json"))]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no stage evidence"), "{}", stderr(&o));
    assert!(!d.join("cal.json").exists());
    // sampleid's own answers from before they said the library's size.
    std::fs::write(
        &peer,
        r#"{"query":"queries/q1.mp3","duration_s":8.0,"matches":[{"reference":"x/awakening-20s.ogg","score":0.9,"evidence":{"landmarks":null,"neural":{"score":3.0,"total":3.0,"accepted":4,"query_segments":8,"rank":0,"share":1.0,"query_start":0.0,"reference_start":4.0,"time_ratio":1.0},"chroma":null,"shingles":null}}]}"#,
    )
    .unwrap();
    let o = sampleid(&["train", "calibrator", "--on", &on, "--out", s(&d.join("cal.json"))]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("`library_hours`"), "{}", stderr(&o));
    assert!(!d.join("cal.json").exists());
    // Encoder training refuses no threads and settings it cannot follow,
    // before it touches the run directory.
    let run = d.join("enc-run");
    let o = sampleid(&["train", "encoder", "--run", s(&run), "--threads", "0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--threads must be at least 1"), "{}", stderr(&o));
    let settings = d.join("enc.toml");
    std::fs::write(&settings, "[pairs]\nwarp_probability = 2.0\n").unwrap();
    let o = sampleid(&["train", "encoder", "--run", s(&run), "--settings", s(&settings)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("warp_probability must be in [0, 1]"),
        "{}",
        stderr(&o)
    );
    assert!(!run.exists());
    let o = sampleid(&[
        "query",
        "--db",
        s(d),
        "--min-confidence",
        "2",
        s(&fixture("awakening-8s.mp3")),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("[0, 1]"), "{}", stderr(&o));

    // Audio matching on the same benchmark and library: DTW and shingles
    // (8 s shingles, the query's length) all rank awakening first.
    let db = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("db-"))
        .expect("bench run made a library");
    let o = sampleid(&[
        "-q",
        "bench",
        "matching",
        "--bench",
        s(d),
        "--db",
        s(&db),
        "--shingle-length",
        "8",
        "--dims",
        "0,12",
        "--results",
        s(&d.join("report-t/answers.jsonl")),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(
        rows.len(),
        8,
        "answers + DTW + match + stored shingles + (exact, HNSW) × 2 dims: {rows:?}"
    );
    assert!(
        rows[2]["system"]
            .as_str()
            .unwrap()
            .starts_with("match: stored shingles")
    );
    assert_eq!(rows[3]["dims"], 60, "the built-in shingle model's dimension");
    for r in rows {
        assert_eq!(r["queries"], 1, "{r}");
        assert_eq!(r["p_at_1"], 100.0, "{r}");
    }
    assert!(
        rows[0]["system"].as_str().unwrap().starts_with("answers "),
        "{}",
        rows[0]
    );
    assert!(rows[0]["median_ms"].is_null(), "no time for answers it did not compute");
}

#[test]
fn bench_peaks_reports_landmark_densities() {
    let o = sampleid(&[
        "bench",
        "peaks",
        "--repeat",
        "1",
        "--json",
        s(&fixture("nebula-20s.ogg")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!((v["audio_s"].as_f64().unwrap() - 20.0).abs() < 0.1, "{v}");
    let sides = v["results"].as_array().unwrap();
    assert_eq!(sides.len(), 2);
    let (r, q) = (&sides[0], &sides[1]);
    assert_eq!(
        (r["side"].as_str(), q["side"].as_str()),
        (Some("reference"), Some("query"))
    );
    for side in sides {
        assert!(side["peaks_per_s"].as_f64().unwrap() > 1.0, "{side}");
        assert!(side["realtime"].as_f64().unwrap() > 0.0, "{side}");
    }
    // The query side extracts more densely than the reference side.
    assert!(
        q["peaks_per_s"].as_f64().unwrap() > r["peaks_per_s"].as_f64().unwrap(),
        "{v}"
    );
    assert!(
        q["quads_per_s"].as_f64().unwrap() > r["quads_per_s"].as_f64().unwrap(),
        "{v}"
    );
}

#[test]
fn an_empty_model_variable_counts_as_unset_and_a_missing_file_is_named() {
    // `SAMPLEID_MODEL= sampleid …` (a script's variable left empty) must mean
    // the built-in model, not a file named "".
    let run = |value: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sampleid"))
            .args(["model", "--json"])
            .env_remove("SAMPLEID_LOG")
            .env("SAMPLEID_MODEL", value)
            .output()
            .expect("the binary runs")
    };
    let o = run("");
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["source"], "built-in");
    let o = run("/nonexistent/encoder.safetensors");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/encoder"), "{}", stderr(&o));
}
