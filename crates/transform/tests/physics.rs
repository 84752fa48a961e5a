//! Each transformation checked against the physics it claims, on synthetic signals.

use realfft::RealFftPlanner;
use sampleid_transform::*;

const SR: u32 = 16_000;

fn tone(freq: f64, secs: f64) -> Vec<f32> {
    (0..(secs * SR as f64) as usize)
        .map(|i| (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / SR as f64).sin()) as f32)
        .collect()
}

/// Frequency of the strongest spectral peak of the middle of `x` (Hann window,
/// parabolic interpolation between bins).
fn dominant_hz(x: &[f32]) -> f64 {
    let n = 16_384.min(x.len().next_power_of_two() / 2);
    let start = (x.len() - n) / 2;
    let mut buf: Vec<f64> = (0..n)
        .map(|i| x[start + i] as f64 * (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()))
        .collect();
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(n);
    let mut spec = fft.make_output_vec();
    fft.process(&mut buf, &mut spec).unwrap();
    let mag: Vec<f64> = spec.iter().map(|c| c.norm().max(1e-20).ln()).collect();
    let k = (1..mag.len() - 1).max_by(|&a, &b| mag[a].total_cmp(&mag[b])).unwrap();
    let (a, b, c) = (mag[k - 1], mag[k], mag[k + 1]);
    let offset = 0.5 * (a - c) / (a - 2.0 * b + c);
    (k as f64 + offset) * SR as f64 / n as f64
}

fn rms(x: &[f32]) -> f64 {
    power(x).sqrt()
}

#[test]
fn gain_scales_amplitude() {
    let x = tone(440.0, 1.0);
    let y = gain(&x, 20.0 * 2f32.log10());
    for (a, b) in x.iter().zip(&y) {
        assert!((2.0 * a - b).abs() < 1e-5);
    }
    assert!((ratio_db(&gain(&x, -10.0), &x) + 10.0).abs() < 1e-4);
}

#[test]
fn noise_is_added_at_exactly_the_requested_snr() {
    let x = tone(440.0, 3.0);
    for (kind, seed) in [("white", 1), ("pink", 2)] {
        let noise = synthetic(&format!("{kind}:{seed}"), SR).unwrap().unwrap();
        for snr in [0.0, 5.0, 10.0, 15.0, 20.0, -5.0] {
            let (y, _) = mix_at_ratio(&x, &noise, 1234, snr).unwrap();
            let added: Vec<f32> = y.iter().zip(&x).map(|(a, b)| a - b).collect();
            let measured = ratio_db(&x, &added);
            assert!((measured - snr).abs() < 0.1, "{kind} at {snr} dB: measured {measured}");
        }
    }
}

#[test]
fn mixing_under_music_hits_the_target_to_background_ratio() {
    let target = tone(440.0, 2.0);
    let music: Vec<f32> = tone(220.0, 1.3)
        .iter()
        .zip(tone(330.0, 1.3))
        .map(|(a, b)| a + b)
        .collect();
    let chain = Chain(vec![Transform::Mix {
        tbr_db: -6.0,
        source: "bg".into(),
        source_start_s: 0.25,
    }]);
    struct One(Vec<f32>);
    impl Resources for One {
        fn load(&mut self, _: &str) -> Result<Vec<f32>, TransformError> {
            Ok(self.0.clone())
        }
    }
    let y = chain.apply(&target, SR, &mut One(music)).unwrap();
    let bg: Vec<f32> = y.iter().zip(&target).map(|(a, b)| a - b).collect();
    assert!((ratio_db(&target, &bg) + 6.0).abs() < 0.01);
    assert!(mix_at_ratio(&target, &[0.0; 100], 0, 0.0).is_err(), "silent background");
}

#[test]
fn pitch_shift_moves_frequency_and_keeps_duration() {
    let x = tone(440.0, 3.0);
    for (st, expected) in [
        (12.0, 880.0),
        (-12.0, 220.0),
        (3.0, 440.0 * 2f64.powf(0.25)),
        (-3.0, 440.0 * 2f64.powf(-0.25)),
    ] {
        let y = pitch_shift(&x, st).unwrap();
        assert_eq!(y.len(), x.len(), "{st} st keeps the length");
        let f = dominant_hz(&y);
        assert!(
            (f / expected - 1.0).abs() < 0.005,
            "{st} st: {f} Hz, expected {expected}"
        );
        assert!(
            (rms(&y) / rms(&x) - 1.0).abs() < 0.15,
            "{st} st: level {}",
            rms(&y) / rms(&x)
        );
    }
}

#[test]
fn time_stretch_changes_duration_and_keeps_pitch() {
    let x = tone(440.0, 4.0);
    for rate in [0.7, 0.8, 1.25, 1.5] {
        let y = time_stretch(&x, rate).unwrap();
        assert_eq!(y.len(), (x.len() as f64 / rate).round() as usize, "rate {rate}");
        let f = dominant_hz(&y);
        assert!((f / 440.0 - 1.0).abs() < 0.005, "rate {rate}: {f} Hz");
        assert!((rms(&y) / rms(&x) - 1.0).abs() < 0.15, "rate {rate}: level");
    }
    assert!(time_stretch(&x, 0.0).is_err());
}

#[test]
fn time_stretch_moves_events_to_t_over_rate() {
    // A click at 1.0 s must land at 1.0 / 1.25 = 0.8 s.
    let mut x = vec![0.0f32; 3 * SR as usize];
    for i in 0..160 {
        x[SR as usize + i] = (1.0 - i as f32 / 160.0) * if i % 2 == 0 { 1.0 } else { -1.0 };
    }
    let t = Transform::TimeStretch { rate: 1.25 };
    let y = t.apply(&x, SR, &mut Synthetic { sample_rate: SR }).unwrap();
    let peak = y
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap()
        .0;
    let at = peak as f64 / SR as f64;
    assert!((at - t.map_time(1.0)).abs() < 0.04, "click at {at} s, expected 0.8 s");
}

#[test]
fn speed_changes_duration_and_pitch_together() {
    let x = tone(440.0, 3.0);
    for factor in [0.9, 1.06, 1.25] {
        let y = speed(&x, factor).unwrap();
        assert_eq!(y.len(), (x.len() as f64 / factor).round() as usize);
        let f = dominant_hz(&y);
        assert!((f / (440.0 * factor) - 1.0).abs() < 0.002, "×{factor}: {f} Hz");
        let t = Transform::Speed { factor };
        assert!((t.semitones() - 12.0 * factor.log2()).abs() < 1e-12);
    }
}

#[test]
fn offset_and_crop_move_time_exactly() {
    let x = tone(440.0, 1.0);
    let mut res = Synthetic { sample_rate: SR };
    let y = Transform::Offset { seconds: 0.5 }.apply(&x, SR, &mut res).unwrap();
    assert_eq!(y.len(), x.len() + 8000);
    assert!(y[..8000].iter().all(|&v| v == 0.0));
    assert_eq!(&y[8000..], &x[..]);
    let z = Transform::Offset { seconds: -0.25 }.apply(&x, SR, &mut res).unwrap();
    assert_eq!(&z[..], &x[4000..]);
    let c = Transform::Crop {
        start_s: 0.5,
        duration_s: 1.0,
    }
    .apply(&x, SR, &mut res)
    .unwrap();
    assert_eq!(c.len(), 16_000);
    assert_eq!(&c[..8000], &x[8000..]);
    assert!(c[8000..].iter().all(|&v| v == 0.0), "padded past the end");
}

#[test]
fn reverb_with_an_impulse_is_the_identity_and_keeps_timing() {
    let x = tone(440.0, 1.0);
    let mut delta = vec![0.0f32; 400];
    delta[100] = 0.5;
    let y = reverb(&x, &delta).unwrap();
    let err = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(
        err < 1e-5,
        "a (delayed, scaled) impulse must give the input back: {err}"
    );

    // A real-sounding room: the direct sound stays at time 0, the energy is kept.
    let ir = synthetic_ir(SR, 0.6, &mut Rng::new(3));
    let mut click = vec![0.0f32; SR as usize];
    click[4000] = 1.0;
    let r = reverb(&click, &ir).unwrap();
    let peak = r
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap()
        .0;
    assert_eq!(peak, 4000);
    let tail: f64 = power(&r[4000 + 160..]) * (r.len() - 4160) as f64;
    assert!(tail > 0.1, "reverberant energy after the direct sound: {tail}");
}

#[test]
fn synthetic_room_decays_by_60_db_in_rt60() {
    let ir = synthetic_ir(SR, 0.5, &mut Rng::new(9));
    assert_eq!(ir.len(), 8000);
    let early = power(&ir[100..900]);
    let late = power(&ir[7200..8000]);
    let drop_db = 10.0 * (early / late).log10();
    // Between the centres of the two windows (0.03 s and 0.475 s): 60 × 0.445 / 0.5 ≈ 53 dB.
    assert!((drop_db - 53.4).abs() < 4.0, "decay {drop_db} dB");
}

#[test]
fn telephone_band_passes_speech_frequencies_only() {
    let level = |f: f64| ratio_db(&telephone(&tone(f, 1.0), SR).unwrap()[4000..], &tone(f, 1.0)[4000..]);
    assert!(level(1000.0).abs() < 0.5, "1 kHz: {} dB", level(1000.0));
    assert!((level(300.0) + 3.0).abs() < 0.7, "300 Hz edge: {} dB", level(300.0));
    assert!((level(3400.0) + 3.0).abs() < 0.7, "3.4 kHz edge: {} dB", level(3400.0));
    assert!(level(100.0) < -30.0, "100 Hz: {} dB", level(100.0));
    assert!(level(6000.0) < -20.0, "6 kHz: {} dB", level(6000.0));
    assert!(band_pass(&[0.0; 10], SR, 500.0, 200.0).is_err());
}

#[test]
fn chains_compose_time_and_pitch_and_are_deterministic() {
    let chain = Chain(vec![
        Transform::Crop {
            start_s: 1.0,
            duration_s: 2.0,
        },
        Transform::TimeStretch { rate: 1.25 },
        Transform::PitchShift { semitones: -2.0 },
        Transform::Offset { seconds: 0.3 },
        Transform::Noise {
            snr_db: 10.0,
            source: "pink:5".into(),
            source_start_s: 2.0,
        },
        Transform::Reverb {
            ir: "room:0.4:1".into(),
        },
        Transform::BandPass {
            low_hz: 300.0,
            high_hz: 3400.0,
        },
    ]);
    // Input time 2.0 s → crop → 1.0 → stretch → 0.8 → offset → 1.1.
    assert!((chain.map_time(2.0) - 1.1).abs() < 1e-12);
    assert!((chain.time_scale() - 0.8).abs() < 1e-12);
    assert_eq!(chain.semitones(), -2.0);
    let x = tone(523.25, 4.0);
    let a = chain.apply(&x, SR, &mut Synthetic { sample_rate: SR }).unwrap();
    let b = chain.apply(&x, SR, &mut Synthetic { sample_rate: SR }).unwrap();
    assert_eq!(a, b, "same parameters, same output");
    assert_eq!(a.len(), (0.3 * 16_000.0) as usize + (32_000.0 / 1.25) as usize);
    let json = serde_json::to_string(&chain).unwrap();
    assert!(json.contains(r#""type":"time_stretch""#), "{json}");
    assert_eq!(serde_json::from_str::<Chain>(&json).unwrap(), chain);
    assert!(Synthetic { sample_rate: SR }.load("corpus:123").is_err());
}
