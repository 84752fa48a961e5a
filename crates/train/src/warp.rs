//! Pitch shift and time stretch on the power spectrogram, for training views.
//!
//! A phase vocoder on the audio (`sampleid_transform::{pitch_shift,
//! time_stretch}`) was 80 % of the CPU time of making a pair (measured with
//! `metrics.jsonl`'s `pair_cpu_s`, see `docs/training.md`). The encoder only
//! sees the log-mel magnitudes, and there a pitch shift by a factor α moves the
//! energy of bin `k` to bin `α·k`, and a stretch by a rate `r` makes output
//! frame `t` the input frame at `r·t`. Both are resamplings of the linear
//! power spectrogram: linear interpolation across bins and across frames, at
//! the cost of one STFT (which the front end pays anyway). Riou et al. (2025)
//! shift a log-frequency representation in the same spirit.
//!
//! What is lost: a vocoder's phase artefacts (smeared transients, "phasiness")
//! that a real pitch-shifter leaves; the validation set keeps the vocoder, so
//! the effect of training without them is measured, not assumed.

use sampleid_features::stft::StreamingStft;
use sampleid_features::{FrontendConfig, MelFilterbank, SegmentNorm, min_max_normalise};

use crate::TrainError;

/// A pitch shift and a time stretch applied together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warp {
    /// Playback rate of the stretch (> 1: faster, so a view covers `rate` times
    /// more of the source).
    pub rate: f64,
    /// Pitch shift in semitones.
    pub semitones: f64,
}

impl Warp {
    /// No change.
    pub const NONE: Warp = Warp {
        rate: 1.0,
        semitones: 0.0,
    };
}

/// Samples of source a warped view of `segment_samples` needs.
pub fn source_samples(warp: Warp, segment_samples: usize, cfg: &FrontendConfig) -> usize {
    (segment_samples as f64 * warp.rate).ceil() as usize + cfg.hop_length
}

/// The encoder segment (`[mel][time]`, normalised as `cfg` says) of `x`
/// pitch-shifted and time-stretched by `warp`. `x` starts where the view
/// starts; samples past its end count as silence.
pub fn warped_segment(x: &[f32], warp: Warp, cfg: &FrontendConfig) -> Result<Vec<f32>, TrainError> {
    cfg.validate()?;
    if !(warp.rate.is_finite() && warp.rate > 0.0 && warp.semitones.is_finite()) {
        return Err(TrainError::Data(format!("invalid warp {warp:?}")));
    }
    let nb = cfg.n_fft / 2 + 1;
    let t_len = cfg.segment_frames;
    let mut stft = StreamingStft::new(cfg.stft());
    let mut frames: Vec<f32> = Vec::new();
    stft.push(x, &mut |s| frames.extend_from_slice(s));
    stft.finish(&mut |s| frames.extend_from_slice(s));
    let n_in = frames.len() / nb;
    if n_in == 0 {
        return Err(TrainError::Data("a warped view needs some audio".into()));
    }
    // Output bin k reads input bin k/α; energy is kept by the 1/α factor.
    let alpha = 2f64.powf(warp.semitones / 12.0);
    let bin_map: Vec<(usize, f32, f32)> = (0..nb)
        .map(|k| {
            let src = k as f64 / alpha;
            let i = src.floor() as usize;
            let w = (src - src.floor()) as f32;
            if i + 1 < nb {
                (i, 1.0 - w, w)
            } else if i < nb {
                (i, 1.0 - w, 0.0)
            } else {
                (0, 0.0, 0.0)
            }
        })
        .collect();
    let scale = (1.0 / alpha) as f32;
    let fbank = MelFilterbank::new(cfg);
    let mut row = vec![0.0f32; nb];
    let mut spec = vec![0.0f32; nb];
    let mut mel = vec![0.0f32; cfg.n_mels];
    let mut data = vec![0.0f32; cfg.n_mels * t_len];
    for t in 0..t_len {
        let pos = t as f64 * warp.rate;
        let i = (pos.floor() as usize).min(n_in - 1);
        let j = (i + 1).min(n_in - 1);
        let w = (pos - pos.floor()).min(1.0) as f32;
        let (a, b) = (&frames[i * nb..(i + 1) * nb], &frames[j * nb..(j + 1) * nb]);
        for ((r, x), y) in row.iter_mut().zip(a).zip(b) {
            *r = (1.0 - w) * x + w * y;
        }
        for (s, &(i, wa, wb)) in spec.iter_mut().zip(&bin_map) {
            let next = if i + 1 < nb { row[i + 1] } else { 0.0 };
            *s = scale * (wa * row[i] + wb * next);
        }
        fbank.apply(&spec, &mut mel);
        for (m, v) in mel.iter().enumerate() {
            data[m * t_len + t] = 10.0 * v.max(cfg.log_floor).log10();
        }
    }
    if cfg.segment_norm == SegmentNorm::MinMax {
        min_max_normalise(&mut data);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sampleid_features::segments;

    /// Tones with a rhythm (loud and soft every 0.25 s, so that time matters
    /// too) over faint noise (so that the spectrum has a defined floor).
    fn tone(freqs: &[f64], n: usize) -> Vec<f32> {
        let mut rng = sampleid_transform::Rng::new(5);
        (0..n)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                let env = if ((t * 4.0) as usize).is_multiple_of(2) {
                    1.0
                } else {
                    0.2
                };
                let x = env
                    * freqs
                        .iter()
                        .map(|f| (2.0 * std::f64::consts::PI * f * t).sin())
                        .sum::<f64>();
                (0.2 * x + 0.01 * rng.normal()) as f32
            })
            .collect()
    }

    fn distance(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    #[test]
    fn no_warp_is_the_front_end() {
        let cfg = FrontendConfig::default();
        let x = tone(&[440.0, 1234.0], 65_280);
        let plain = &segments(&x, &cfg).unwrap()[0].data;
        let warped = warped_segment(&x, Warp::NONE, &cfg).unwrap();
        assert!(distance(plain, &warped) < 1e-3, "{}", distance(plain, &warped));
    }

    #[test]
    fn a_warp_matches_the_vocoder_better_than_no_warp() {
        let cfg = FrontendConfig::default();
        let x = tone(&[330.0, 880.0, 2000.0], 120_000);
        for warp in [
            Warp {
                rate: 1.0,
                semitones: 3.0,
            },
            Warp {
                rate: 1.0,
                semitones: -2.5,
            },
            Warp {
                rate: 1.4,
                semitones: 0.0,
            },
            Warp {
                rate: 0.75,
                semitones: 0.0,
            },
        ] {
            let audio = if warp.semitones != 0.0 {
                sampleid_transform::pitch_shift(&x, warp.semitones).unwrap()
            } else {
                sampleid_transform::time_stretch(&x, warp.rate).unwrap()
            };
            let vocoder = &segments(&audio[..65_280], &cfg).unwrap()[0].data;
            let plain = &segments(&x[..65_280], &cfg).unwrap()[0].data;
            let ours = warped_segment(&x[..source_samples(warp, 65_280, &cfg)], warp, &cfg).unwrap();
            let (near, far) = (distance(vocoder, &ours), distance(vocoder, plain));
            // Measured: 0.56, 0.27, 0.58 and 0.72 of the unwarped distance.
            assert!(near < 0.8 * far, "{warp:?}: {near:.1} vs unwarped {far:.1}");
        }
    }

    #[test]
    fn bad_warps_are_refused() {
        let cfg = FrontendConfig::default();
        let bad = Warp {
            rate: 0.0,
            semitones: 0.0,
        };
        assert!(warped_segment(&[0.0; 100], bad, &cfg).is_err());
        assert!(warped_segment(&[], Warp::NONE, &cfg).is_err());
    }
}
