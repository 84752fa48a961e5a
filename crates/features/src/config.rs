//! The front-end configuration: one typed struct whose defaults are the
//! published NeuralSampleID front end (`neuralsampleid-spec.md` §1).

use serde::{Deserialize, Serialize};

use crate::{FeatureError, positive};

/// Analysis window applied to each STFT frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WindowKind {
    /// Periodic Hann, `0.5 - 0.5 cos(2πn/N)` (torch's default `hann_window`).
    HannPeriodic,
    /// Symmetric Hann, `0.5 - 0.5 cos(2πn/(N-1))`.
    HannSymmetric,
}

/// How the signal is extended by `n_fft / 2` samples at each end when frames are centred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PadMode {
    /// Mirror without repeating the edge sample (torch `reflect`).
    Reflect,
    /// Zeros.
    Zero,
}

/// Mel frequency scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MelScale {
    /// `2595 log10(1 + f/700)`.
    Htk,
    /// Slaney's scale: linear below 1 kHz, logarithmic above.
    Slaney,
}

/// Normalisation of each mel filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MelNorm {
    /// Peak 1 triangles.
    None,
    /// Constant area (`2 / (f_high - f_low)`), as librosa's default.
    Slaney,
}

/// Per-segment normalisation applied before the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SegmentNorm {
    /// `(x - min) / (max - min)` over the whole mel × time patch, to [0, 1].
    /// A constant patch (silence, DC) becomes all zeros instead of NaN.
    MinMax,
    /// Log-mel values in dB, unchanged.
    None,
}

/// Log-mel front end and segmentation. The defaults reproduce the published
/// system exactly: 16 kHz, periodic Hann, n_fft 1024, hop 512, centred with
/// reflect padding, power spectrum, 64 HTK mel bands 0–8 kHz without
/// normalisation, `10·log10(max(P, 1e-10))`, segments of 128 frames (4.08 s)
/// every 16 frames (0.512 s), short clips zero-padded to one segment, and
/// per-segment min–max normalisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FrontendConfig {
    /// Sample rate of the input in Hz.
    pub sample_rate: u32,
    /// FFT size.
    pub n_fft: usize,
    /// Window length (≤ `n_fft`; centred in the FFT frame when shorter).
    pub win_length: usize,
    /// Samples between frames.
    pub hop_length: usize,
    /// Analysis window.
    pub window: WindowKind,
    /// Centre frames on `t · hop` by padding `n_fft / 2` samples at each end.
    pub center: bool,
    /// Padding used when `center` is set.
    pub pad_mode: PadMode,
    /// Exponent applied to the magnitude spectrum (2 = power).
    pub power: f32,
    /// Number of mel bands.
    pub n_mels: usize,
    /// Lowest mel band edge in Hz.
    pub f_min: f32,
    /// Highest mel band edge in Hz.
    pub f_max: f32,
    /// Mel scale.
    pub mel_scale: MelScale,
    /// Mel filter normalisation.
    pub mel_norm: MelNorm,
    /// Floor applied before the logarithm (power units): −100 dB.
    pub log_floor: f32,
    /// Frames per segment (128 frames = 4.08 s at hop 512 / 16 kHz).
    pub segment_frames: usize,
    /// Frames between segment starts (16 frames = 0.512 s).
    pub segment_hop: usize,
    /// Inputs shorter than this many samples are zero-padded to it before
    /// segmenting, so that any clip gives at least one segment (65280 = 4.08 s).
    pub min_segment_samples: usize,
    /// Per-segment normalisation.
    pub segment_norm: SegmentNorm,
}

impl Default for FrontendConfig {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            n_fft: 1024,
            win_length: 1024,
            hop_length: 512,
            window: WindowKind::HannPeriodic,
            center: true,
            pad_mode: PadMode::Reflect,
            power: 2.0,
            n_mels: 64,
            f_min: 0.0,
            f_max: 8000.0,
            mel_scale: MelScale::Htk,
            mel_norm: MelNorm::None,
            log_floor: 1e-10,
            segment_frames: 128,
            segment_hop: 16,
            min_segment_samples: 65_280,
            segment_norm: SegmentNorm::MinMax,
        }
    }
}

impl FrontendConfig {
    /// Checks that the settings describe a computable front end.
    pub fn validate(&self) -> Result<(), FeatureError> {
        let bad = |m: String| Err(FeatureError::InvalidConfig(m));
        if self.sample_rate == 0 {
            return bad("sample_rate must be > 0".into());
        }
        if self.n_fft < 2 || self.hop_length == 0 || self.hop_length > self.n_fft {
            return bad(format!(
                "need n_fft ≥ 2 and 0 < hop_length ≤ n_fft (got {} and {})",
                self.n_fft, self.hop_length
            ));
        }
        if self.win_length == 0 || self.win_length > self.n_fft {
            return bad(format!("win_length {} must be in 1..={}", self.win_length, self.n_fft));
        }
        let nyquist = self.sample_rate as f32 / 2.0;
        if !(self.f_min >= 0.0 && self.f_min < self.f_max && self.f_max <= nyquist) {
            return bad(format!(
                "mel range {}–{} Hz must satisfy 0 ≤ f_min < f_max ≤ {nyquist}",
                self.f_min, self.f_max
            ));
        }
        if self.n_mels == 0 {
            return bad("n_mels must be > 0".into());
        }
        if !positive(self.log_floor) || !positive(self.power) {
            return bad("log_floor and power must be > 0".into());
        }
        if self.segment_frames == 0 || self.segment_hop == 0 {
            return bad("segment_frames and segment_hop must be > 0".into());
        }
        Ok(())
    }

    /// The STFT part of the settings.
    pub fn stft(&self) -> crate::stft::StftParams {
        crate::stft::StftParams {
            n_fft: self.n_fft,
            win_length: self.win_length,
            hop_length: self.hop_length,
            window: self.window,
            center: self.center,
            pad_mode: self.pad_mode,
            power: self.power,
        }
    }

    /// Duration of one frame hop in seconds.
    pub fn hop_s(&self) -> f64 {
        self.hop_length as f64 / self.sample_rate as f64
    }

    /// Duration between segment starts in seconds (0.512 s by default).
    pub fn segment_hop_s(&self) -> f64 {
        self.segment_hop as f64 * self.hop_s()
    }

    /// Duration covered by one segment's frames in seconds (4.08 s by default).
    pub fn segment_s(&self) -> f64 {
        self.min_segment_samples as f64 / self.sample_rate as f64
    }
}
