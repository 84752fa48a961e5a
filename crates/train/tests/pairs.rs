//! Pair generation on a tiny pool made from the fixtures.

mod common;

use common::pool;
use sampleid_features::FrontendConfig;
use std::collections::HashSet;

use sampleid_train::{Augment, PairConfig, PairKind, PairMaker, Pool};

fn maker(pool: &Pool, cfg: PairConfig) -> PairMaker<'_> {
    PairMaker {
        pool,
        cfg,
        frontend: FrontendConfig::default(),
    }
}

#[test]
fn vocoder_pairs_are_encoder_inputs_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(dir.path());
    let maker = maker(
        &pool,
        PairConfig {
            augment: Augment::Audio,
            ..PairConfig::default()
        },
    );
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
    let kinds: HashSet<_> = maker.batch(3, 32).unwrap().iter().map(|p| p.kind).collect();
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
    let maker = maker(&pool, cfg);
    let mut rng = sampleid_transform::Rng::new(5);
    let (a, p, _) = maker.audio_pair(&mut rng).unwrap().unwrap();
    let dot: f64 = a.iter().zip(&p).map(|(x, y)| (*x as f64) * (*y as f64)).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
    let np: f64 = p.iter().map(|x| (*x as f64).powi(2)).sum();
    let corr = dot / (na * np).sqrt();
    assert!(corr > 0.3, "anchor and positive share material: correlation {corr}");
}

#[test]
fn spectrogram_pairs_are_encoder_inputs_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(dir.path());
    let maker = maker(
        &pool,
        PairConfig {
            augment: Augment::Spectrogram,
            ..PairConfig::default()
        },
    );
    let a = maker.batch(7, 16).unwrap();
    let b = maker.batch(7, 16).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.anchor.len(), x.positive.len()), (64 * 128, 64 * 128));
        assert!(x.positive.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_ne!(x.anchor, x.positive, "the positive is transformed");
        assert_eq!(
            (&x.anchor, &x.positive),
            (&y.anchor, &y.positive),
            "same seed, same batch"
        );
    }
    let kinds: HashSet<_> = a.iter().map(|p| p.kind).collect();
    assert_eq!(kinds.len(), 2, "both pitch and stretch pairs occur: {kinds:?}");
}

#[test]
fn the_recipe_knobs_do_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let pool = pool(dir.path());
    for augment in [Augment::Audio, Augment::Spectrogram] {
        let plain = maker(
            &pool,
            PairConfig {
                warp_probability: 0.0,
                augment,
                ..PairConfig::default()
            },
        );
        let kinds: HashSet<_> = plain.batch(3, 12).unwrap().iter().map(|p| p.kind).collect();
        assert_eq!(kinds, HashSet::from([PairKind::Plain]), "{augment:?}");
    }
    let audio_id = maker(
        &pool,
        PairConfig {
            audio_id_probability: 1.0,
            ..PairConfig::default()
        },
    );
    assert!(audio_id.batch(4, 8).unwrap().iter().all(|p| p.kind == PairKind::Plain));
    // One style's part of the pool, and a same-style batch from it.
    let orchestral = pool.of_style("orchestral", 2);
    assert_eq!(orchestral.music.len(), 2);
    assert!(orchestral.music_styles.iter().all(|s| s == "orchestral"));
    assert_eq!(orchestral.stem_sets.len(), 1, "no orchestral stems: all stem sets stay");
    assert_eq!(
        pool.of_style("electronic", 2).music.len(),
        3,
        "too few tracks: all stay"
    );
    assert_eq!(pool.styles(2), vec!["electronic".to_string(), "orchestral".to_string()]);
    let same = maker(
        &pool,
        PairConfig {
            same_style_probability: 1.0,
            ..PairConfig::default()
        },
    );
    assert_eq!(same.batch(5, 4).unwrap().len(), 4);
    let bad = PairConfig {
        warp_probability: 1.5,
        ..PairConfig::default()
    };
    assert!(bad.validate().unwrap_err().contains("warp_probability"));
    assert!(PairConfig::default().validate().is_ok());
}
