//! Pair generation on a tiny pool made from the fixtures.

mod common;

use common::pool;
use sampleid_features::FrontendConfig;
use sampleid_train::{PairConfig, PairMaker};

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
