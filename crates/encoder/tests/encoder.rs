//! The encoder's public contract: loss values, persistence, determinism.

use burn::prelude::*;
use sampleid_encoder::{Encoder, EncoderConfig, nt_xent};

/// NT-Xent computed independently in f64: rows z = [z1; z2], partner of i is i ± B.
fn nt_xent_f64(z1: &[[f64; 2]], z2: &[[f64; 2]], extra: &[[f64; 2]], tau: f64) -> f64 {
    let b = z1.len();
    let z: Vec<[f64; 2]> = z1.iter().chain(z2).copied().collect();
    let dot = |a: &[f64; 2], c: &[f64; 2]| a[0] * c[0] + a[1] * c[1];
    let mut total = 0.0;
    for i in 0..2 * b {
        let partner = (i + b) % (2 * b);
        let mut logits: Vec<f64> = (0..2 * b)
            .filter(|&j| j != i)
            .map(|j| dot(&z[i], &z[j]) / tau)
            .collect();
        logits.extend(extra.iter().map(|q| dot(&z[i], q) / tau));
        let max = logits.iter().cloned().fold(f64::MIN, f64::max);
        let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
        total += lse - dot(&z[i], &z[partner]) / tau;
    }
    total / (2 * b) as f64
}

fn t2(rows: &[[f64; 2]], device: &Device) -> Tensor<2> {
    let flat: Vec<f32> = rows.iter().flat_map(|r| [r[0] as f32, r[1] as f32]).collect();
    Tensor::<2>::from_data(TensorData::new(flat, [rows.len(), 2]), device)
}

#[test]
fn nt_xent_matches_a_hand_computed_value() {
    let device = Device::flex();
    let z1 = [[1.0, 0.0], [0.0, 1.0]];
    let z2 = [[0.6, 0.8], [0.8, -0.6]];
    let extra = [[-1.0, 0.0], [0.28, 0.96]];
    for tau in [0.05, 0.5, 1.0] {
        let expected = nt_xent_f64(&z1, &z2, &[], tau);
        let got = nt_xent(t2(&z1, &device), t2(&z2, &device), tau, None).into_scalar::<f32>() as f64;
        assert!(
            (got - expected).abs() < 1e-4 * expected.abs().max(1.0),
            "τ {tau}: {got} vs {expected}"
        );
        let expected_q = nt_xent_f64(&z1, &z2, &extra, tau);
        let got_q =
            nt_xent(t2(&z1, &device), t2(&z2, &device), tau, Some(t2(&extra, &device))).into_scalar::<f32>() as f64;
        assert!(
            (got_q - expected_q).abs() < 1e-4 * expected_q.abs().max(1.0),
            "τ {tau} with negatives"
        );
        assert!(expected_q > expected, "more negatives, higher loss");
    }
    // By hand for τ = 1: row 0 (z = [1, 0]) sees [0, 1] → 0, [0.6, 0.8] → 0.6 (partner), [0.8, −0.6] → 0.8.
    let row0 = (0f64.exp() + 0.6f64.exp() + 0.8f64.exp()).ln() - 0.6;
    assert!((row0 - 1.0189).abs() < 1e-3, "{row0}"); // ln(1 + e^0.6 + e^0.8) − 0.6
}

fn segments(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            (0..64 * 128)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect()
        })
        .collect()
}

#[test]
fn embeddings_have_the_documented_shapes_and_are_deterministic() {
    let enc = Encoder::random(&EncoderConfig::small(), 7);
    let segs = segments(5, 1);
    let refs: Vec<&[f32]> = segs.iter().map(|s| s.as_slice()).collect();
    let a = enc.embed(&refs).unwrap();
    let b = enc.embed(&refs).unwrap();
    assert_eq!(a, b, "the same input gives the same fingerprint");
    assert_eq!(a.len(), 5);
    assert_eq!(a[0].fingerprint.len(), 128);
    assert_eq!(a[0].nodes.len(), 128 * 32);
    // Batching does not change results.
    let one = enc.embed(&refs[2..3]).unwrap();
    let diff = one[0]
        .fingerprint
        .iter()
        .zip(&a[2].fingerprint)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "batch-size dependence {diff}");
    assert!(
        enc.embed(&[&[0.0f32; 10][..]]).is_err(),
        "wrong segment size is an error"
    );
}

#[test]
fn save_then_load_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let enc = Encoder::random(&EncoderConfig::small(), 3);
    let segs = segments(3, 2);
    let refs: Vec<&[f32]> = segs.iter().map(|s| s.as_slice()).collect();
    let path = dir.path().join("encoder.safetensors");
    enc.save(&path).unwrap();
    let loaded = Encoder::load(&path).unwrap();
    assert_eq!(loaded.info(), enc.info());
    // f16 on disk: the loaded weights are the f16-rounded ones, so compare the
    // loaded model with itself after another save/load (bit-identical) and
    // with the original within f16 rounding.
    let path2 = dir.path().join("again.safetensors");
    loaded.save(&path2).unwrap();
    let again = Encoder::load(&path2).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["again.json", "again.safetensors", "encoder.json", "encoder.safetensors"],
        "weights and cards, no temporaries"
    );
    // A damaged card is a model error naming the card.
    std::fs::write(dir.path().join("again.json"), "{").unwrap();
    let err = Encoder::load(&path2).unwrap_err().to_string();
    assert!(err.starts_with("model: ") && err.contains("again.json"), "{err}");
    let (x, y, z) = (
        enc.embed(&refs).unwrap(),
        loaded.embed(&refs).unwrap(),
        again.embed(&refs).unwrap(),
    );
    assert_eq!(y, z, "save → load is exact once weights are in f16");
    for (a, b) in x.iter().zip(&y) {
        let d = a
            .fingerprint
            .iter()
            .zip(&b.fingerprint)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 5e-3, "f16 rounding changed a fingerprint by {d}");
    }
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 3_000_000, "small model, f16: {size} bytes");
    // A config that does not fit the weights is refused.
    let mut info = enc.info().clone();
    info.config.channels = vec![16, 32, 48, 64];
    std::fs::write(path.with_extension("json"), serde_json::to_string(&info).unwrap()).unwrap();
    assert!(Encoder::load(&path).is_err());
}
