//! Chroma and CENS on synthetic tones whose pitch classes are known.

use sampleid_features::chroma::{PITCH_CLASSES, chroma_energy};
use sampleid_features::{ChromaConfig, cens, chroma};

const SR: f64 = 16_000.0;

fn midi_hz(p: f64) -> f64 {
    440.0 * 2f64.powf((p - 69.0) / 12.0)
}

/// Sum of sines of the given frequencies and amplitudes, `secs` long.
fn tones(parts: &[(f64, f64)], secs: f64) -> Vec<f32> {
    (0..(secs * SR) as usize)
        .map(|i| {
            let t = i as f64 / SR;
            parts
                .iter()
                .map(|(f, a)| a * (2.0 * std::f64::consts::PI * f * t).sin())
                .sum::<f64>() as f32
        })
        .collect()
}

fn argmax(v: &[f32; 12]) -> usize {
    (0..12).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
}

fn top3(v: &[f32; 12]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..12).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    let mut t = idx[..3].to_vec();
    t.sort();
    t
}

#[test]
fn a4_lands_in_bin_a() {
    assert_eq!(PITCH_CLASSES[9], "A");
    let c = chroma(&tones(&[(440.0, 0.5)], 2.0), &ChromaConfig::default()).unwrap();
    assert_eq!(c.len(), 1 + 32_000 / 1600);
    for (t, frame) in c.iter().enumerate() {
        assert_eq!(argmax(frame), 9, "frame {t}: {frame:?}");
        assert!(frame[9] > 0.95, "A should hold nearly all the energy: {frame:?}");
    }
}

#[test]
fn every_pitch_class_is_recognised_across_octaves() {
    let cfg = ChromaConfig::default();
    for octave_start in [48, 60, 72] {
        for p in octave_start..octave_start + 12 {
            let c = chroma(&tones(&[(midi_hz(p as f64), 0.5)], 1.0), &cfg).unwrap();
            let mid = &c[c.len() / 2];
            assert_eq!(argmax(mid), p % 12, "MIDI {p} ({}): {mid:?}", PITCH_CLASSES[p % 12]);
        }
    }
}

#[test]
fn slightly_detuned_tones_keep_their_class() {
    // 445 Hz is A4 + 19.6 cents.
    let c = chroma(&tones(&[(445.0, 0.5)], 1.0), &ChromaConfig::default()).unwrap();
    assert_eq!(argmax(&c[c.len() / 2]), 9);
}

#[test]
fn c_major_triad_lights_c_e_g() {
    let triad = [(midi_hz(60.0), 0.3), (midi_hz(64.0), 0.3), (midi_hz(67.0), 0.3)];
    let x = tones(&triad, 6.0);
    let cfg = ChromaConfig::default();
    for frame in chroma(&x, &cfg).unwrap() {
        assert_eq!(top3(&frame), vec![0, 4, 7], "{frame:?}");
    }
    let c = cens(&x, &cfg).unwrap();
    // 6 s: 61 chroma frames at 10 Hz, every 10th kept → 7 CENS frames at 1 Hz.
    assert_eq!(c.len(), 7);
    for frame in &c {
        assert_eq!(top3(frame), vec![0, 4, 7], "{frame:?}");
        let norm: f32 = frame.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}

#[test]
fn a_harmonic_tone_is_still_its_fundamental() {
    // A3 with decaying overtones: 220 (A), 440 (A), 660 (E), 880 (A), 1100 (C#).
    let parts: Vec<(f64, f64)> = (1..=5).map(|h| (220.0 * h as f64, 0.4 / h as f64)).collect();
    let c = chroma(&tones(&parts, 2.0), &ChromaConfig::default()).unwrap();
    assert_eq!(argmax(&c[c.len() / 2]), 9);
}

#[test]
fn silence_gives_flat_vectors_not_nan() {
    let cfg = ChromaConfig::default();
    let flat = 1.0 / 12f32.sqrt();
    for x in [vec![0.0f32; 32_000], vec![0.3f32; 32_000]] {
        for frame in chroma(&x, &cfg).unwrap().iter().chain(cens(&x, &cfg).unwrap().iter()) {
            assert!(frame.iter().all(|v| (v - flat).abs() < 1e-6), "{frame:?}");
        }
    }
    let (energy, silence) = chroma_energy(&[0.0; 100], &cfg).unwrap();
    assert!(silence > 0.0);
    assert!(energy.iter().flatten().all(|v| v.is_finite()));
}

#[test]
fn cens_follows_a_chord_change() {
    // 5 s of A minor (A C E), then 5 s of G major (G B D).
    let am = [(midi_hz(57.0), 0.3), (midi_hz(60.0), 0.3), (midi_hz(64.0), 0.3)];
    let g = [(midi_hz(55.0), 0.3), (midi_hz(59.0), 0.3), (midi_hz(62.0), 0.3)];
    let mut x = tones(&am, 5.0);
    x.extend(tones(&g, 5.0));
    let c = cens(&x, &ChromaConfig::default()).unwrap();
    assert_eq!(top3(&c[1]), vec![0, 4, 9]);
    assert_eq!(top3(&c[c.len() - 2]), vec![2, 7, 11]);
}
