//! Pair generation on a tiny pool made from the fixtures.

use std::path::{Path, PathBuf};

use sampleid_audio::{AudioConfig, decode_file};
use sampleid_features::FrontendConfig;
use sampleid_train::cache::Cached;
use sampleid_train::pairs::StemSet;
use sampleid_train::{PairConfig, PairMaker, Pool};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/audio")
        .join(name)
}

fn cache(dir: &Path, name: &str, samples: &[f32]) -> Cached {
    let p = dir.join(format!("{name}.s16"));
    let bytes: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect();
    std::fs::write(&p, bytes).unwrap();
    Cached {
        path: p,
        len: samples.len(),
    }
}

fn pool(dir: &Path) -> Pool {
    let mut pool = Pool::default();
    for f in ["awakening-20s.ogg", "nebula-20s.ogg", "media-threat-20s.ogg"] {
        let x = decode_file(&fixture(f), &AudioConfig::default()).unwrap().samples;
        pool.music.push((f.to_string(), cache(dir, f, &x)));
    }
    // A stem set: the first 20 s of two different tracks, as if they were one piece's parts.
    let a = decode_file(&fixture("deprecation-20s.ogg"), &AudioConfig::default())
        .unwrap()
        .samples;
    let b = decode_file(&fixture("awakening-20s.ogg"), &AudioConfig::default())
        .unwrap()
        .samples;
    pool.stem_sets.push(StemSet {
        id: "set".into(),
        stems: vec![cache(dir, "stem-a", &a), cache(dir, "stem-b", &b)],
    });
    pool.noise.push(cache(
        dir,
        "noise",
        &sampleid_transform::pink_noise(80_000, &mut sampleid_transform::Rng::new(1)),
    ));
    pool
}

#[test]
fn pairs_are_encoder_inputs_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(dir.path());
    let maker = PairMaker {
        pool: &pool,
        cfg: PairConfig::default(),
        frontend: FrontendConfig::default(),
    };
    let a = maker.batch(7, 8).unwrap();
    let b = maker.batch(7, 8).unwrap();
    let c = maker.batch(8, 8).unwrap();
    assert_eq!(a.len(), 8);
    for p in &a {
        assert_eq!(p.anchor.len(), 64 * 128);
        assert_eq!(p.positive.len(), 64 * 128);
        assert!(p.anchor.iter().chain(&p.positive).all(|v| (0.0..=1.0).contains(v)));
        assert_ne!(p.anchor, p.positive, "the positive is transformed");
    }
    assert!(
        a.iter()
            .zip(&b)
            .all(|(x, y)| x.anchor == y.anchor && x.positive == y.positive),
        "same seed, same batch"
    );
    assert!(
        a.iter().zip(&c).any(|(x, y)| x.anchor != y.anchor),
        "another seed, another batch"
    );
    let kinds: std::collections::HashSet<_> = maker.batch(3, 32).unwrap().iter().map(|p| p.kind).collect();
    assert_eq!(kinds.len(), 2, "both pitch and stretch pairs occur");
}

#[test]
fn stem_pairs_share_the_anchor_stems() {
    // With only stems and no augmentation, the positive is the anchor plus the other
    // stem: the anchor must correlate with the positive far more than chance.
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(dir.path());
    let cfg = PairConfig {
        stem_probability: 1.0,
        pitch_probability: 1.0,
        pitch_semitones: 0.0,
        noise_probability: 0.0,
        reverb_probability: 0.0,
        band_pass_probability: 0.0,
        max_offset_samples: 0,
        gain_db: 0.0,
        ..PairConfig::default()
    };
    let maker = PairMaker {
        pool: &pool,
        cfg,
        frontend: FrontendConfig::default(),
    };
    let mut rng = sampleid_transform::Rng::new(5);
    let (a, p, _) = maker.audio_pair(&mut rng).unwrap().unwrap();
    let dot: f64 = a.iter().zip(&p).map(|(x, y)| (*x as f64) * (*y as f64)).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
    let np: f64 = p.iter().map(|x| (*x as f64).powi(2)).sum();
    let corr = dot / (na * np).sqrt();
    assert!(corr > 0.3, "anchor and positive share material: correlation {corr}");
}
