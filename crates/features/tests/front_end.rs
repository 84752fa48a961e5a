//! Properties of the streaming front end that the golden values do not cover:
//! block sizes, frame and segment counts, degenerate inputs, configuration.

use sampleid_features::{FrontendConfig, LogMelStream, SegmentStream, log_mel, segments};

fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

#[test]
fn streaming_in_any_block_size_equals_the_whole_signal() {
    let cfg = FrontendConfig::default();
    let x = noise(100_000, 1);
    let whole = log_mel(&x, &cfg).unwrap();
    let whole_segments = segments(&x, &cfg).unwrap();
    for block in [1, 7, 511, 512, 513, 4096, 99_999] {
        let mut mel = LogMelStream::new(&cfg, 0).unwrap();
        let mut data = Vec::new();
        for b in x.chunks(block) {
            mel.push(b, &mut |f| data.extend_from_slice(f));
        }
        mel.finish(&mut |f| data.extend_from_slice(f));
        assert_eq!(data, whole.data, "block size {block}");

        let mut seg = SegmentStream::new(&cfg).unwrap();
        let mut out = Vec::new();
        for b in x.chunks(block) {
            seg.push(b, &mut |s| out.push(s));
        }
        seg.finish(&mut |s| out.push(s));
        assert_eq!(out, whole_segments, "block size {block}");
    }
}

#[test]
fn frame_counts_follow_torch_centre_padding() {
    let cfg = FrontendConfig::default();
    for n in [513usize, 1000, 1024, 16_000, 65_280, 65_281] {
        assert_eq!(
            log_mel(&noise(n, 2), &cfg).unwrap().n_frames,
            1 + n / 512,
            "{n} samples"
        );
    }
    assert_eq!(log_mel(&[], &cfg).unwrap().n_frames, 0);
    // Below n_fft/2 + 1 samples a reflection is undefined: zero-padded to 513.
    assert_eq!(log_mel(&noise(10, 3), &cfg).unwrap().n_frames, 2);
}

#[test]
fn segment_counts() {
    let cfg = FrontendConfig::default();
    let count = |n: usize| segments(&noise(n, 4), &cfg).unwrap().len();
    assert_eq!(count(1), 1, "any clip gives one segment");
    assert_eq!(count(16_000), 1);
    assert_eq!(count(65_280), 1);
    // A second segment needs 128 + 16 = 144 frames, i.e. 1 + n/512 ≥ 144.
    assert_eq!(count(143 * 512), 2);
    assert_eq!(count(143 * 512 - 1), 1);
    // 10 s → 313 frames → 12 segments, as the spec counts int((10-4.08)/0.512)+1.
    assert_eq!(count(160_000), 12);
    assert_eq!(segments(&[], &cfg).unwrap().len(), 1, "an empty input is padded too");
}

#[test]
fn silence_dc_and_extremes_never_produce_nan() {
    let cfg = FrontendConfig::default();
    let square: Vec<f32> = (0..70_000)
        .map(|i| if (i / 20) % 2 == 0 { 1000.0 } else { -1000.0 })
        .collect();
    let inputs: Vec<(&str, Vec<f32>)> = vec![
        ("silence", vec![0.0; 70_000]),
        ("dc", vec![0.25; 70_000]),
        ("tiny", vec![1e-30; 70_000]),
        ("square at +60 dBFS", square),
    ];
    for (what, x) in inputs {
        let mel = log_mel(&x, &cfg).unwrap();
        assert!(mel.data.iter().all(|v| v.is_finite()), "{what}: non-finite log-mel");
        assert!(mel.data.iter().all(|&v| v >= -100.0), "{what}: below the -100 dB floor");
        for s in segments(&x, &cfg).unwrap() {
            assert!(
                s.data.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)),
                "{what}"
            );
        }
    }
    let silent = segments(&vec![0.0; 70_000], &cfg).unwrap();
    assert!(silent.iter().all(|s| s.data.iter().all(|&v| v == 0.0)));
}

#[test]
fn config_round_trips_through_json_and_rejects_nonsense() {
    let cfg = FrontendConfig::default();
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<FrontendConfig>(&json).unwrap(), cfg);
    // Missing fields take the published defaults; unknown fields are errors.
    let partial: FrontendConfig = serde_json::from_str(r#"{"n_mels": 80}"#).unwrap();
    assert_eq!(partial.n_mels, 80);
    assert_eq!(partial.hop_length, 512);
    assert!(serde_json::from_str::<FrontendConfig>(r#"{"nmels": 80}"#).is_err());
    assert!((cfg.segment_hop_s() - 0.512).abs() < 1e-12);
    assert!((cfg.segment_s() - 4.08).abs() < 1e-12);

    for bad in [
        FrontendConfig {
            hop_length: 0,
            ..cfg.clone()
        },
        FrontendConfig {
            hop_length: 2048,
            ..cfg.clone()
        },
        FrontendConfig {
            f_max: 9000.0,
            ..cfg.clone()
        },
        FrontendConfig {
            win_length: 2048,
            ..cfg.clone()
        },
        FrontendConfig {
            n_mels: 0,
            ..cfg.clone()
        },
        FrontendConfig {
            log_floor: 0.0,
            ..cfg.clone()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
        assert!(log_mel(&[0.0; 10], &bad).is_err());
    }
}
