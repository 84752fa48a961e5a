//! Mel filterbank and the streaming log-mel front end.

use crate::FeatureError;
use crate::config::{FrontendConfig, MelNorm, MelScale};
use crate::stft::StreamingStft;

/// Slaney scale: linear at `SLANEY_HZ_PER_MEL` Hz per mel below `SLANEY_LOG_HZ`, then
/// logarithmic with `slaney_log_step()` per mel.
const SLANEY_HZ_PER_MEL: f64 = 200.0 / 3.0;
const SLANEY_LOG_HZ: f64 = 1000.0;
const SLANEY_LOG_MEL: f64 = SLANEY_LOG_HZ / SLANEY_HZ_PER_MEL;

fn slaney_log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hz → mel.
pub fn hz_to_mel(f: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 2595.0 * (1.0 + f / 700.0).log10(),
        MelScale::Slaney if f >= SLANEY_LOG_HZ => SLANEY_LOG_MEL + (f / SLANEY_LOG_HZ).ln() / slaney_log_step(),
        MelScale::Slaney => f / SLANEY_HZ_PER_MEL,
    }
}

/// Mel → Hz.
pub fn mel_to_hz(m: f64, scale: MelScale) -> f64 {
    match scale {
        MelScale::Htk => 700.0 * (10f64.powf(m / 2595.0) - 1.0),
        MelScale::Slaney if m >= SLANEY_LOG_MEL => SLANEY_LOG_HZ * (slaney_log_step() * (m - SLANEY_LOG_MEL)).exp(),
        MelScale::Slaney => SLANEY_HZ_PER_MEL * m,
    }
}

/// Triangular mel filters over the bins of an `n_fft` spectrum, stored sparsely
/// (each band keeps only its non-zero weights).
#[derive(Debug, Clone)]
pub struct MelFilterbank {
    bands: Vec<(usize, Vec<f32>)>,
    n_bins: usize,
}

impl MelFilterbank {
    /// Builds the filters exactly as torchaudio's `melscale_fbanks` does:
    /// bin frequencies `linspace(0, sr // 2, n_fft/2 + 1)`, band edges equally
    /// spaced on the mel scale from `f_min` to `f_max`.
    pub fn new(cfg: &FrontendConfig) -> Self {
        let n_bins = cfg.n_fft / 2 + 1;
        let top = (cfg.sample_rate / 2) as f64;
        let freqs: Vec<f64> = (0..n_bins).map(|k| top * k as f64 / (n_bins - 1) as f64).collect();
        let m_min = hz_to_mel(cfg.f_min as f64, cfg.mel_scale);
        let m_max = hz_to_mel(cfg.f_max as f64, cfg.mel_scale);
        let n_pts = cfg.n_mels + 2;
        let f_pts: Vec<f64> = (0..n_pts)
            .map(|i| mel_to_hz(m_min + (m_max - m_min) * i as f64 / (n_pts - 1) as f64, cfg.mel_scale))
            .collect();
        let bands = (0..cfg.n_mels)
            .map(|m| {
                let (lo, centre, hi) = (f_pts[m], f_pts[m + 1], f_pts[m + 2]);
                let norm = match cfg.mel_norm {
                    MelNorm::None => 1.0,
                    MelNorm::Slaney => 2.0 / (hi - lo),
                };
                let weights: Vec<(usize, f32)> = freqs
                    .iter()
                    .enumerate()
                    .filter_map(|(k, &f)| {
                        let down = (f - lo) / (centre - lo);
                        let up = (hi - f) / (hi - centre);
                        let w = down.min(up).max(0.0) * norm;
                        (w > 0.0).then_some((k, w as f32))
                    })
                    .collect();
                match weights.first() {
                    Some(&(first, _)) => (first, weights.iter().map(|&(_, w)| w).collect()),
                    None => (0, Vec::new()),
                }
            })
            .collect();
        Self { bands, n_bins }
    }

    /// Number of bands.
    pub fn n_mels(&self) -> usize {
        self.bands.len()
    }

    /// The dense weight matrix, `[band][bin]` (for inspection and tests).
    pub fn dense(&self) -> Vec<Vec<f32>> {
        self.bands
            .iter()
            .map(|(start, w)| {
                let mut row = vec![0.0; self.n_bins];
                row[*start..*start + w.len()].copy_from_slice(w);
                row
            })
            .collect()
    }

    /// Applies the filters to one spectrum.
    pub fn apply(&self, spectrum: &[f32], out: &mut [f32]) {
        for (o, (start, w)) in out.iter_mut().zip(&self.bands) {
            *o = spectrum[*start..*start + w.len()]
                .iter()
                .zip(w)
                .map(|(s, w)| s * w)
                .sum();
        }
    }
}

/// Streaming log-mel spectrogram: samples in, one `n_mels` frame of dB values out per hop.
pub struct LogMelStream {
    cfg: FrontendConfig,
    stft: StreamingStft,
    fbank: MelFilterbank,
    mel: Vec<f32>,
    /// Zero-pad the input to at least this many samples at the end.
    min_samples: usize,
}

impl LogMelStream {
    /// A new stream; `min_samples` > 0 zero-pads shorter inputs to that length.
    pub fn new(cfg: &FrontendConfig, min_samples: usize) -> Result<Self, FeatureError> {
        cfg.validate()?;
        Ok(Self {
            stft: StreamingStft::new(cfg.stft()),
            fbank: MelFilterbank::new(cfg),
            mel: vec![0.0; cfg.n_mels],
            cfg: cfg.clone(),
            min_samples,
        })
    }

    /// Frames emitted so far.
    pub fn frames(&self) -> u64 {
        self.stft.frames()
    }

    /// Feeds samples; `on_frame` receives each finished log-mel frame.
    pub fn push(&mut self, samples: &[f32], on_frame: &mut dyn FnMut(&[f32])) {
        let (fbank, mel, floor) = (&self.fbank, &mut self.mel, self.cfg.log_floor);
        self.stft.push(samples, &mut |spec| {
            fbank.apply(spec, mel);
            to_db(mel, floor);
            on_frame(mel);
        });
    }

    /// Ends the input (zero-padding it to `min_samples` if shorter) and emits the last frames.
    pub fn finish(&mut self, on_frame: &mut dyn FnMut(&[f32])) {
        let have = self.stft.samples() as usize;
        if have < self.min_samples {
            let zeros = vec![0.0; self.min_samples - have];
            self.push(&zeros, on_frame);
        }
        let (fbank, mel, floor) = (&self.fbank, &mut self.mel, self.cfg.log_floor);
        self.stft.finish(&mut |spec| {
            fbank.apply(spec, mel);
            to_db(mel, floor);
            on_frame(mel);
        });
    }
}

/// `10·log10(max(x, floor))` in place.
fn to_db(x: &mut [f32], floor: f32) {
    for v in x {
        *v = 10.0 * v.max(floor).log10();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_scales_round_trip() {
        for scale in [MelScale::Htk, MelScale::Slaney] {
            for f in [0.0, 100.0, 999.0, 1000.0, 4000.0, 8000.0] {
                let back = mel_to_hz(hz_to_mel(f, scale), scale);
                assert!((back - f).abs() < 1e-6, "{scale:?} {f} -> {back}");
            }
        }
        // The HTK scale's defining point: 1000 Hz ≈ 1000 mel.
        assert!((hz_to_mel(1000.0, MelScale::Htk) - 999.9855).abs() < 1e-3);
    }

    #[test]
    fn filterbank_shape_matches_torchaudio_conventions() {
        let cfg = FrontendConfig::default();
        let fb = MelFilterbank::new(&cfg).dense();
        assert_eq!(fb.len(), 64);
        assert_eq!(fb[0].len(), 513);
        // Unnormalised triangles peak at (nearly) 1 and every band is non-empty.
        for (m, row) in fb.iter().enumerate() {
            let peak = row.iter().cloned().fold(0.0f32, f32::max);
            assert!(peak > 0.3 && peak <= 1.0, "band {m} peak {peak}");
        }
        // Bands move up in frequency.
        let centre = |row: &Vec<f32>| row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert!(fb.windows(2).all(|w| centre(&w[0]) <= centre(&w[1])));
        // DC contributes to no band with f_min = 0 (its weight is exactly 0).
        assert!(fb.iter().all(|row| row[0] == 0.0));
    }
}
