//! Whole-track descriptors for category identification (genre / style):
//! per-frame MFCC (with deltas), chroma, spectral centroid, roll-off and
//! flatness and zero-crossing rate, summarised by their means and variances,
//! plus a tempo estimate. The frames are those of the log-mel front end
//! (1024-point STFT, hop 512 at 16 kHz, 64 mel bands).

use crate::FeatureError;
use crate::chroma::{ChromaConfig, chroma};
use crate::config::FrontendConfig;
use crate::mel::MelFilterbank;
use crate::stft::StreamingStft;

/// MFCC coefficients per frame.
pub const MFCCS: usize = 20;

/// Names of the values of [`track_features`], in order.
pub fn track_feature_names() -> Vec<String> {
    let mut frame: Vec<String> = (0..MFCCS).map(|i| format!("mfcc{i}")).collect();
    frame.extend((0..MFCCS).map(|i| format!("dmfcc{i}")));
    frame.extend(crate::chroma::PITCH_CLASSES.iter().map(|p| format!("chroma_{p}")));
    frame.extend(["centroid_hz", "rolloff_hz", "flatness", "zcr"].map(String::from));
    let mut out: Vec<String> = frame.iter().map(|n| format!("{n}_mean")).collect();
    out.extend(frame.iter().map(|n| format!("{n}_var")));
    out.push("tempo_bpm".into());
    out
}

/// The descriptor of a whole track (16 kHz mono samples): the means, then
/// the variances, of the per-frame features, then the tempo in BPM.
pub fn track_features(samples: &[f32], cfg: &FrontendConfig) -> Result<Vec<f32>, FeatureError> {
    cfg.validate()?;
    if samples.len() < cfg.n_fft {
        return Err(FeatureError::InvalidConfig(format!(
            "a track needs at least {} samples for its features",
            cfg.n_fft
        )));
    }
    let bank = MelFilterbank::new(cfg);
    let n_mels = bank.n_mels();
    let bin_hz = cfg.sample_rate as f64 / cfg.n_fft as f64;
    // DCT-II matrix (orthonormal), MFCC × mel.
    let dct: Vec<Vec<f64>> = (0..MFCCS)
        .map(|k| {
            let scale = if k == 0 {
                (1.0 / n_mels as f64).sqrt()
            } else {
                (2.0 / n_mels as f64).sqrt()
            };
            (0..n_mels)
                .map(|m| scale * (std::f64::consts::PI * k as f64 * (m as f64 + 0.5) / n_mels as f64).cos())
                .collect()
        })
        .collect();
    let mut stft = StreamingStft::new(cfg.stft());
    let mut frames: Vec<Vec<f32>> = Vec::new(); // per frame: mfcc, centroid, rolloff, flatness
    let mut mel_db: Vec<Vec<f32>> = Vec::new();
    let mut mel = vec![0.0f32; n_mels];
    let mut on_frame = |spec: &[f32]| {
        bank.apply(spec, &mut mel);
        let db: Vec<f64> = mel
            .iter()
            .map(|&p| 10.0 * (p.max(cfg.log_floor) as f64).log10())
            .collect();
        let mut f: Vec<f32> = dct
            .iter()
            .map(|row| row.iter().zip(&db).map(|(a, b)| a * b).sum::<f64>() as f32)
            .collect();
        let total: f64 = spec.iter().map(|&p| p as f64).sum();
        let centroid = if total > 0.0 {
            spec.iter()
                .enumerate()
                .map(|(k, &p)| k as f64 * bin_hz * p as f64)
                .sum::<f64>()
                / total
        } else {
            0.0
        };
        let mut acc = 0.0;
        let mut rolloff = 0.0;
        for (k, &p) in spec.iter().enumerate() {
            acc += p as f64;
            if acc >= 0.85 * total {
                rolloff = k as f64 * bin_hz;
                break;
            }
        }
        let eps = 1e-12;
        let log_mean = spec.iter().map(|&p| (p as f64 + eps).ln()).sum::<f64>() / spec.len() as f64;
        let flatness = if total > 0.0 {
            log_mean.exp() / (total / spec.len() as f64 + eps)
        } else {
            1.0
        };
        f.extend([centroid as f32, rolloff as f32, flatness as f32]);
        frames.push(f);
        mel_db.push(db.iter().map(|&v| v as f32).collect());
    };
    stft.push(samples, &mut on_frame);
    stft.finish(&mut on_frame);
    // Zero-crossing rate per hop-aligned frame.
    let hop = cfg.hop_length;
    let zcr: Vec<f32> = (0..frames.len())
        .map(|t| {
            let start = (t * hop).saturating_sub(cfg.n_fft / 2).min(samples.len() - 1);
            let end = (start + cfg.n_fft).min(samples.len());
            let w = &samples[start..end];
            let crossings = w.windows(2).filter(|p| (p[0] >= 0.0) != (p[1] >= 0.0)).count();
            crossings as f32 / w.len().max(2) as f32
        })
        .collect();
    // Chroma at 10 Hz, nearest to each frame.
    let ccfg = ChromaConfig {
        sample_rate: cfg.sample_rate,
        ..ChromaConfig::default()
    };
    let ch = chroma(samples, &ccfg)?;
    let frame_s = cfg.hop_s();
    let mut rows: Vec<Vec<f32>> = Vec::with_capacity(frames.len());
    for (t, f) in frames.iter().enumerate() {
        let mut row: Vec<f32> = f[..MFCCS].to_vec();
        // Delta: regression over ±2 frames.
        let at = |d: isize| {
            let i = (t as isize + d).clamp(0, frames.len() as isize - 1) as usize;
            &frames[i][..MFCCS]
        };
        row.extend((0..MFCCS).map(|k| ((at(1)[k] - at(-1)[k]) + 2.0 * (at(2)[k] - at(-2)[k])) / 10.0));
        let ci = ((t as f64 * frame_s * ccfg.frame_rate()).round() as usize).min(ch.len().saturating_sub(1));
        row.extend(ch.get(ci).copied().unwrap_or([1.0 / 12f32.sqrt(); 12]));
        row.extend(&f[MFCCS..]);
        row.push(zcr[t]);
        rows.push(row);
    }
    let d = rows[0].len();
    let n = rows.len() as f64;
    let mut mean = vec![0.0f64; d];
    for r in &rows {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += *v as f64 / n;
        }
    }
    let mut var = vec![0.0f64; d];
    for r in &rows {
        for ((s, v), m) in var.iter_mut().zip(r).zip(&mean) {
            *s += (*v as f64 - m).powi(2) / n;
        }
    }
    let mut out: Vec<f32> = mean.iter().chain(&var).map(|&v| v as f32).collect();
    out.push(tempo_bpm(&mel_db, frame_s) as f32);
    Ok(out)
}

/// Tempo from the autocorrelation of the onset strength (positive mel
/// flux): the lag between 60 and 200 BPM with the highest autocorrelation,
/// weighted towards 120 BPM (log-Gaussian, one octave wide) as is usual.
pub fn tempo_bpm(mel_db: &[Vec<f32>], frame_s: f64) -> f64 {
    if mel_db.len() < 8 {
        return 0.0;
    }
    let flux: Vec<f64> = mel_db
        .windows(2)
        .map(|w| w[1].iter().zip(&w[0]).map(|(a, b)| (a - b).max(0.0) as f64).sum())
        .collect();
    let mean = flux.iter().sum::<f64>() / flux.len() as f64;
    let x: Vec<f64> = flux.iter().map(|v| v - mean).collect();
    let lag = |bpm: f64| 60.0 / bpm / frame_s;
    let (lo, hi) = (lag(200.0).floor() as usize, lag(60.0).ceil() as usize);
    let mut best = (0.0, f64::NEG_INFINITY);
    for l in lo.max(1)..=hi.min(x.len() - 1) {
        let r: f64 = x.iter().zip(&x[l..]).map(|(a, b)| a * b).sum::<f64>() / (x.len() - l) as f64;
        let bpm = 60.0 / (l as f64 * frame_s);
        let w = (-0.5 * ((bpm / 120.0).log2()).powi(2)).exp();
        if r * w > best.1 {
            best = (bpm, r * w);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(f: f64, seconds: f64) -> Vec<f32> {
        (0..(seconds * 16_000.0) as usize)
            .map(|i| (0.5 * (2.0 * std::f64::consts::PI * f * i as f64 / 16_000.0).sin()) as f32)
            .collect()
    }

    fn value(v: &[f32], name: &str) -> f32 {
        let i = track_feature_names().iter().position(|n| n == name).unwrap();
        v[i]
    }

    #[test]
    fn a_sine_has_its_frequency_as_centroid_and_little_flatness() {
        let cfg = FrontendConfig::default();
        let v = track_features(&sine(1000.0, 5.0), &cfg).unwrap();
        assert_eq!(v.len(), track_feature_names().len());
        assert!((value(&v, "centroid_hz_mean") - 1000.0).abs() < 50.0);
        assert!(value(&v, "flatness_mean") < 0.01);
        // 2 crossings per period: 2000 per second, 0.125 per sample.
        assert!((value(&v, "zcr_mean") - 0.125).abs() < 0.01);
        // 1 kHz is between B5 and C6: most chroma energy in B or C.
        assert!(value(&v, "chroma_B_mean").max(value(&v, "chroma_C_mean")) > 0.6);
        // Noise is flat.
        let mut s = 1u64;
        let noise: Vec<f32> = (0..80_000)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect();
        let n = track_features(&noise, &cfg).unwrap();
        assert!(value(&n, "flatness_mean") > 0.3, "{}", value(&n, "flatness_mean"));
    }

    #[test]
    fn a_click_track_gives_its_tempo() {
        // Clicks of 20 ms noise bursts at 100 BPM for 20 s.
        let mut x = vec![0.0f32; 20 * 16_000];
        let period = (0.6 * 16_000.0) as usize;
        let mut s = 7u64;
        for start in (0..x.len()).step_by(period) {
            for v in x.iter_mut().skip(start).take(320) {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                *v = ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5;
            }
        }
        let v = track_features(&x, &FrontendConfig::default()).unwrap();
        let bpm = value(&v, "tempo_bpm");
        assert!((bpm - 100.0).abs() < 4.0, "{bpm}");
    }
}
