//! `sampleid genre` as a user runs it: labels → train → predict, and the
//! cross-validated comparison with its baselines.

use std::f32::consts::PI;
use std::path::Path;

mod common;
use common::{s, sampleid, stdout};

/// 4 s of 16 kHz audio: sustained chords ("pad") or noise bursts on a beat ("drums").
fn write(path: &Path, kind: &str, seed: u32) {
    let mut x = 0x1234_5678u32 ^ seed.wrapping_mul(0x9e37_79b9);
    let mut samples = Vec::with_capacity(16_000 * 4);
    for i in 0..16_000 * 4 {
        let t = i as f32 / 16_000.0;
        let v = match kind {
            "pad" => {
                let f = 220.0 * (1.0 + (seed % 5) as f32 / 12.0);
                0.2 * ((2.0 * PI * f * t).sin() + (2.0 * PI * f * 1.25 * t).sin() + (2.0 * PI * f * 1.5 * t).sin())
            }
            _ => {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let noise = (x as f32 / u32::MAX as f32) * 2.0 - 1.0;
                let beat = 0.4 + 0.1 * (seed % 4) as f32;
                let phase = (t % beat) / beat;
                0.8 * noise * (-phase * 30.0).exp()
            }
        };
        samples.push(v);
    }
    common::write_wav(path, 16_000, &samples);
}

#[test]
fn genre_trains_predicts_and_compares_with_its_baselines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut csv = String::from("path,label,group\n");
    for i in 0..8 {
        for kind in ["pad", "drums"] {
            let name = format!("{kind}{i}.wav");
            write(&dir.join(&name), kind, i);
            csv.push_str(&format!("{name},{kind},{kind}-{}\n", i / 2));
        }
    }
    std::fs::write(dir.join("labels.csv"), csv).unwrap();
    let model = dir.join("genre.safetensors");
    let o = sampleid(&[
        "-q",
        "genre",
        "train",
        "--labels",
        s(&dir.join("labels.csv")),
        "--classifier",
        s(&model),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(model.exists() && model.with_extension("json").exists());

    // New tracks, never seen, each classified through its neighbours.
    write(&dir.join("new-pad.wav"), "pad", 11);
    write(&dir.join("new-drums.wav"), "drums", 13);
    let o = sampleid(&[
        "genre",
        "predict",
        "--classifier",
        s(&model),
        "--json",
        s(&dir.join("new-pad.wav")),
        s(&dir.join("new-drums.wav")),
        s(&dir.join("labels.csv")),
    ]);
    assert_eq!(o.status.code(), Some(1), "one input is not audio");
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["label"], "pad", "{}", lines[0]);
    assert_eq!(lines[1]["label"], "drums", "{}", lines[1]);
    assert!(lines[0]["probability"].as_f64().unwrap() > 0.5);
    assert_eq!(lines[0]["neighbours"].as_array().unwrap().len(), 10);
    assert!(lines[2]["error"].is_string());

    // Cross-validation: every method, a report and a confusion matrix each.
    let out = dir.join("report");
    let o = sampleid(&[
        "-q",
        "genre",
        "eval",
        "--labels",
        s(&dir.join("labels.csv")),
        "--folds",
        "4",
        "--out",
        s(&out),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for r in results {
        assert!(r["accuracy"].as_f64().unwrap() >= 0.9, "{r}");
    }
    for m in ["graph-sage", "knn-vote", "mlp"] {
        assert!(out.join(format!("confusion-{m}.png")).exists(), "{m}");
    }
    assert!(
        std::fs::read_to_string(out.join("report.md"))
            .unwrap()
            .contains("GraphSAGE")
    );

    // A predict without a classifier says how to get one.
    let o = sampleid(&[
        "genre",
        "predict",
        "--classifier",
        s(&dir.join("none.safetensors")),
        s(&dir.join("new-pad.wav")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("genre train"));
}
