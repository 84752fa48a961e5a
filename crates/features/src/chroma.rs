//! Chroma (12 pitch classes) and CENS features for audio matching.
//!
//! Chroma: STFT energy summed per pitch class over a range of MIDI pitches,
//! each FFT bin assigned to its nearest equal-tempered pitch. CENS ("chroma
//! energy normalised statistics", Müller, Kurth & Clausen 2005): per-frame ℓ1
//! normalisation, logarithmic quantisation (thresholds 0.05, 0.1, 0.2, 0.4),
//! Hann smoothing over time, downsampling and ℓ2 normalisation. Bin 0 is C,
//! bin 9 is A.

use serde::{Deserialize, Serialize};

use crate::config::{PadMode, WindowKind};
use crate::stft::{StftParams, StreamingStft};
use crate::{FeatureError, positive};

/// Pitch-class names, bin by bin.
pub const PITCH_CLASSES: [&str; 12] = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];

/// CENS post-processing of chroma energies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CensConfig {
    /// Length of the Hann smoothing window in chroma frames (41 at 10 Hz ≈ 4 s).
    pub smoothing_frames: usize,
    /// Keep every n-th smoothed frame (10: 10 Hz chroma → 1 Hz CENS).
    pub downsample: usize,
    /// Quantisation thresholds of ℓ1-normalised energy, ascending; a value
    /// reaching the i-th threshold scores i + 1.
    pub thresholds: Vec<f32>,
}

impl Default for CensConfig {
    fn default() -> Self {
        Self {
            smoothing_frames: 41,
            downsample: 10,
            thresholds: vec![0.05, 0.1, 0.2, 0.4],
        }
    }
}

/// Chroma analysis settings. A 4096-point FFT at 16 kHz (3.9 Hz bins) resolves
/// semitones down to about C2; the hop of 1600 samples gives 10 frames/s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChromaConfig {
    /// Input sample rate in Hz.
    pub sample_rate: u32,
    /// FFT size.
    pub n_fft: usize,
    /// Samples between chroma frames.
    pub hop_length: usize,
    /// Lowest MIDI pitch counted (36 = C2, 65 Hz).
    pub min_midi: u8,
    /// Highest MIDI pitch counted (107 = B7, 3951 Hz).
    pub max_midi: u8,
    /// Frequency of A4 in Hz.
    pub tuning_hz: f32,
    /// Frames whose pitch energy is this many dB below that of a full-scale
    /// sine count as silent and get a flat (uniform) chroma vector.
    pub silence_db: f32,
    /// CENS settings.
    pub cens: CensConfig,
}

impl Default for ChromaConfig {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            n_fft: 4096,
            hop_length: 1600,
            min_midi: 36,
            max_midi: 107,
            tuning_hz: 440.0,
            silence_db: -70.0,
            cens: CensConfig::default(),
        }
    }
}

impl ChromaConfig {
    /// Checks that the settings are computable.
    pub fn validate(&self) -> Result<(), FeatureError> {
        let bad = |m: &str| Err(FeatureError::InvalidConfig(m.to_string()));
        if self.sample_rate == 0 || self.n_fft < 16 || self.hop_length == 0 || self.hop_length > self.n_fft {
            return bad("chroma: need sample_rate > 0, n_fft ≥ 16 and 0 < hop_length ≤ n_fft");
        }
        if self.min_midi > self.max_midi || !positive(self.tuning_hz) {
            return bad("chroma: need min_midi ≤ max_midi and tuning_hz > 0");
        }
        if self.cens.smoothing_frames == 0 || self.cens.downsample == 0 {
            return bad("cens: smoothing_frames and downsample must be > 0");
        }
        if self.cens.thresholds.windows(2).any(|w| w[0] >= w[1]) {
            return bad("cens: thresholds must be strictly ascending");
        }
        Ok(())
    }

    /// Chroma frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.hop_length as f64
    }

    /// CENS frames per second.
    pub fn cens_rate(&self) -> f64 {
        self.frame_rate() / self.cens.downsample as f64
    }

    fn stft(&self) -> StftParams {
        StftParams {
            n_fft: self.n_fft,
            win_length: self.n_fft,
            hop_length: self.hop_length,
            window: WindowKind::HannPeriodic,
            center: true,
            pad_mode: PadMode::Reflect,
            power: 2.0,
        }
    }
}

/// Streaming chroma energies: the un-normalised energy per pitch class of each frame.
pub struct ChromaStream {
    stft: StreamingStft,
    class_of_bin: Vec<Option<u8>>,
    silence_energy: f32,
    energy: [f32; 12],
}

impl ChromaStream {
    /// A new stream.
    pub fn new(cfg: &ChromaConfig) -> Result<Self, FeatureError> {
        cfg.validate()?;
        let class_of_bin = (0..cfg.n_fft / 2 + 1)
            .map(|k| {
                let f = k as f64 * cfg.sample_rate as f64 / cfg.n_fft as f64;
                if f <= 0.0 {
                    return None;
                }
                let pitch = (69.0 + 12.0 * (f / cfg.tuning_hz as f64).log2()).round();
                (pitch >= cfg.min_midi as f64 && pitch <= cfg.max_midi as f64).then_some((pitch as i64 % 12) as u8)
            })
            .collect::<Vec<_>>();
        // Energy of a full-scale 1 kHz sine, measured through the same analysis.
        let mut probe = StreamingStft::new(cfg.stft());
        let sine: Vec<f32> = (0..cfg.n_fft * 2)
            .map(|i| (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / cfg.sample_rate as f64).sin() as f32)
            .collect();
        let mut reference = 0.0f32;
        probe.push(&sine, &mut |spec| {
            reference = reference.max(spec.iter().sum());
        });
        let silence_energy = reference * 10f32.powf(cfg.silence_db / 10.0);
        Ok(Self {
            stft: StreamingStft::new(cfg.stft()),
            class_of_bin,
            silence_energy,
            energy: [0.0; 12],
        })
    }

    /// Energy below which a frame is silent.
    pub fn silence_energy(&self) -> f32 {
        self.silence_energy
    }

    /// Feeds samples; `on_frame` receives the 12 pitch-class energies of each frame.
    pub fn push(&mut self, samples: &[f32], on_frame: &mut dyn FnMut(&[f32; 12])) {
        let (classes, energy) = (&self.class_of_bin, &mut self.energy);
        self.stft.push(samples, &mut |spec| {
            accumulate(classes, spec, energy);
            on_frame(energy);
        });
    }

    /// Ends the input.
    pub fn finish(&mut self, on_frame: &mut dyn FnMut(&[f32; 12])) {
        let (classes, energy) = (&self.class_of_bin, &mut self.energy);
        self.stft.finish(&mut |spec| {
            accumulate(classes, spec, energy);
            on_frame(energy);
        });
    }
}

fn accumulate(classes: &[Option<u8>], spec: &[f32], energy: &mut [f32; 12]) {
    *energy = [0.0; 12];
    for (c, p) in classes.iter().zip(spec) {
        if let Some(c) = c {
            energy[*c as usize] += p;
        }
    }
}

/// Chroma energies of a whole signal (frames × 12).
pub fn chroma_energy(samples: &[f32], cfg: &ChromaConfig) -> Result<(Vec<[f32; 12]>, f32), FeatureError> {
    let mut stream = ChromaStream::new(cfg)?;
    let mut frames = Vec::new();
    stream.push(samples, &mut |e| frames.push(*e));
    stream.finish(&mut |e| frames.push(*e));
    Ok((frames, stream.silence_energy()))
}

/// ℓ2-normalised chroma; silent frames become the flat vector `1/√12`.
pub fn normalise_chroma(energy: &[[f32; 12]], silence_energy: f32) -> Vec<[f32; 12]> {
    energy
        .iter()
        .map(|e| {
            let total: f32 = e.iter().sum();
            if total <= silence_energy {
                return [1.0 / 12f32.sqrt(); 12];
            }
            l2_normalised(e)
        })
        .collect()
}

/// ℓ2-normalised chroma of a whole signal (frames × 12, at `cfg.frame_rate()`).
pub fn chroma(samples: &[f32], cfg: &ChromaConfig) -> Result<Vec<[f32; 12]>, FeatureError> {
    let (energy, silence) = chroma_energy(samples, cfg)?;
    Ok(normalise_chroma(&energy, silence))
}

/// CENS features from chroma energies (frames × 12, at `cfg.cens_rate()`).
pub fn cens_from_energy(energy: &[[f32; 12]], silence_energy: f32, cfg: &CensConfig) -> Vec<[f32; 12]> {
    // 1–2. ℓ1 normalisation and logarithmic quantisation.
    let quantised: Vec<[f32; 12]> = energy
        .iter()
        .map(|e| {
            let total: f32 = e.iter().sum();
            let mut q = [0.0f32; 12];
            for (qi, &v) in q.iter_mut().zip(e) {
                let share = if total <= silence_energy { 1.0 / 12.0 } else { v / total };
                *qi = cfg.thresholds.iter().filter(|&&t| share >= t).count() as f32;
            }
            q
        })
        .collect();
    // 3. Hann smoothing along time ('same' convolution with zeros outside).
    let w = cfg.smoothing_frames;
    let kernel: Vec<f32> = (0..w)
        .map(|n| {
            if w == 1 {
                1.0
            } else {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * (n + 1) as f64 / (w + 1) as f64).cos()) as f32
            }
        })
        .collect();
    let half = (w / 2) as isize;
    let n = quantised.len();
    // 4. Downsampling: only the kept frames are smoothed.
    (0..n)
        .step_by(cfg.downsample)
        .map(|t| {
            let mut acc = [0.0f32; 12];
            for (j, k) in kernel.iter().enumerate() {
                let src = t as isize + j as isize - half;
                if src >= 0 && (src as usize) < n {
                    for (a, q) in acc.iter_mut().zip(&quantised[src as usize]) {
                        *a += k * q;
                    }
                }
            }
            // 5. ℓ2 normalisation; an all-zero vector becomes flat.
            l2_normalised(&acc)
        })
        .collect()
}

/// CENS of a whole signal.
pub fn cens(samples: &[f32], cfg: &ChromaConfig) -> Result<Vec<[f32; 12]>, FeatureError> {
    let (energy, silence) = chroma_energy(samples, cfg)?;
    Ok(cens_from_energy(&energy, silence, &cfg.cens))
}

fn l2_normalised(v: &[f32; 12]) -> [f32; 12] {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !positive(norm) || norm <= 1e-12 {
        return [1.0 / 12f32.sqrt(); 12];
    }
    let mut out = [0.0; 12];
    for (o, x) in out.iter_mut().zip(v) {
        *o = x / norm;
    }
    out
}

/// A frame's chroma energies as stored in a library: each pitch class's share
/// of the frame's energy × 255 (rounded); a silent frame is all zeros.
pub fn quantise_shares(energy: &[f32; 12], silence_energy: f32) -> [u8; 12] {
    let total: f32 = energy.iter().sum();
    let mut out = [0u8; 12];
    if total <= silence_energy || !total.is_finite() {
        return out;
    }
    for (o, e) in out.iter_mut().zip(energy) {
        *o = (e / total * 255.0).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// Stored shares back to energies (a silent frame stays all zeros, which the
/// chroma and CENS functions treat as silent with `silence_energy` 0).
pub fn shares_to_energy(shares: &[[u8; 12]]) -> Vec<[f32; 12]> {
    shares.iter().map(|s| s.map(|v| v as f32 / 255.0)).collect()
}
