//! Spectral peaks, the input of landmark fingerprints (Wang's pairs, Sonnleitner
//! & Widmer's quads): local maxima of a magnitude spectrogram on a *linear*
//! frequency axis, where a pitch shift or a speed change is a scaling of
//! frequency that quad hashes normalise away.
//!
//! - [`Spectrogram`]: a streaming magnitude STFT (Hann window, centred frames)
//!   limited to `max_hz`.
//! - [`PeakPicker`]: a streaming 2-D maximum filter, `filter_frames` ×
//!   `filter_bins`, computed separably in O(1) per cell: a van Herk/Gil-Werman
//!   running maximum along frequency, then a monotonic queue per bin along
//!   time. A cell is a peak when it is the maximum of its neighbourhood (ties
//!   go to the earliest frame, then the lowest bin), is above the floor, and
//!   is not flat (its 3 × 3 neighbourhood is not constant). Memory is
//!   `filter_frames` columns, whatever the length of the input.
//! - [`PeakStream`]: both, fed with audio blocks.
//!
//! Reference and query extract with the same code; the query side uses a
//! smaller filter (denser peaks), as the paper does ([`PeakConfig::query`]).

mod filter;
mod picker;
mod stft;

pub use filter::running_max;
pub use picker::PeakPicker;
pub use stft::Spectrogram;

use serde::{Deserialize, Serialize};

/// Errors of the peak stage.
#[derive(Debug, thiserror::Error)]
pub enum PeakError {
    /// Settings that describe no computable peak picker.
    #[error("invalid peak configuration: {0}")]
    InvalidConfig(String),
}

/// Settings of the peak stage (`[peaks]`).
///
/// Defaults are Sonnleitner & Widmer's reference extraction (TASLP 2016):
/// 128 ms Hann window, 4 ms hop, 0–4 kHz (their 8 kHz audio), a 151-frame ×
/// 75-bin maximum filter and a 3 × 3 flat-region test. At our 16 kHz the
/// window is 2048 samples, so bins are 7.8 Hz apart as in the paper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeakConfig {
    /// Sample rate of the audio (Hz).
    pub sample_rate: u32,
    /// STFT window length (s).
    pub window_s: f64,
    /// STFT hop (s).
    pub hop_s: f64,
    /// Highest frequency kept (Hz).
    pub max_hz: f64,
    /// Width of the maximum filter in frames (odd).
    pub filter_frames: usize,
    /// Height of the maximum filter in bins (odd).
    pub filter_bins: usize,
    /// Cells below this level (dB relative to a full-scale sine) are never peaks.
    pub floor_db: f32,
}

/// The query side: the only side a configuration file sets (`[landmarks]
/// query_*`; a library's stored side is fixed by its landmark version), so
/// that a partial table keeps the query side's other values.
impl Default for PeakConfig {
    fn default() -> Self {
        Self::query()
    }
}

impl PeakConfig {
    /// The reference side (what a library stores).
    pub fn reference() -> Self {
        Self {
            sample_rate: 16_000,
            window_s: 0.128,
            hop_s: 0.004,
            max_hz: 4000.0,
            filter_frames: 151,
            filter_bins: 75,
            floor_db: -70.0,
        }
    }

    /// The query side: the filter shrunk by the scale tolerance ε = 0.31 in
    /// time (151 / 1.31 → 115 frames) and frequency (75 · 0.69 → 51 bins), so
    /// that a query peak exists wherever a scaled reference peak does.
    pub fn query() -> Self {
        Self {
            filter_frames: 115,
            filter_bins: 51,
            ..Self::reference()
        }
    }

    /// Samples per window (a power of two is not required).
    pub fn n_fft(&self) -> usize {
        (self.window_s * self.sample_rate as f64).round() as usize
    }

    /// Samples per hop.
    pub fn hop(&self) -> usize {
        (self.hop_s * self.sample_rate as f64).round() as usize
    }

    /// Frequency bins kept: 0 ..= `max_hz`.
    pub fn bins(&self) -> usize {
        let n = self.n_fft();
        ((self.max_hz * n as f64 / self.sample_rate as f64).floor() as usize + 1).min(n / 2 + 1)
    }

    /// Frames per second.
    pub fn frame_rate(&self) -> f64 {
        self.sample_rate as f64 / self.hop() as f64
    }

    /// Hz per bin.
    pub fn bin_hz(&self) -> f64 {
        self.sample_rate as f64 / self.n_fft() as f64
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), PeakError> {
        let bad = |m: String| Err(PeakError::InvalidConfig(m));
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if self.sample_rate == 0 || !positive(self.window_s) || !positive(self.hop_s) {
            return bad("sample_rate, window_s and hop_s must be positive".into());
        }
        if self.n_fft() < 16 || self.hop() == 0 || self.hop() > self.n_fft() {
            return bad(format!(
                "need a window of at least 16 samples and 0 < hop ≤ window (got {} and {})",
                self.n_fft(),
                self.hop()
            ));
        }
        if !positive(self.max_hz) || self.bins() < 3 {
            return bad(format!("max_hz {} keeps fewer than 3 bins", self.max_hz));
        }
        if self.filter_frames < 3
            || self.filter_bins < 3
            || self.filter_frames.is_multiple_of(2)
            || self.filter_bins.is_multiple_of(2)
        {
            return bad("filter_frames and filter_bins must be odd and at least 3".into());
        }
        if !self.floor_db.is_finite() {
            return bad("floor_db must be finite".into());
        }
        Ok(())
    }
}

/// One spectral peak.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    /// STFT frame (frame t is centred on t × hop).
    pub frame: u32,
    /// Frequency bin (bin k is k × sample_rate / n_fft Hz).
    pub bin: u32,
    /// Magnitude (1.0 for a full-scale sine).
    pub magnitude: f32,
}

impl Peak {
    /// Time of the peak (s) under `cfg`.
    pub fn time_s(&self, cfg: &PeakConfig) -> f64 {
        self.frame as f64 / cfg.frame_rate()
    }

    /// Frequency of the peak (Hz) under `cfg`.
    pub fn hz(&self, cfg: &PeakConfig) -> f64 {
        self.bin as f64 * cfg.bin_hz()
    }
}

/// Audio in, peaks out: a [`Spectrogram`] feeding a [`PeakPicker`].
pub struct PeakStream {
    spec: Spectrogram,
    picker: PeakPicker,
}

impl PeakStream {
    /// A stream with `cfg` (validated).
    pub fn new(cfg: &PeakConfig) -> Result<Self, PeakError> {
        cfg.validate()?;
        Ok(Self {
            spec: Spectrogram::new(cfg),
            picker: PeakPicker::new(cfg)?,
        })
    }

    /// Pushes samples (mono, at `cfg.sample_rate`); calls `on` with each peak
    /// as soon as it is final (about half the filter width later), in frame order.
    pub fn push(&mut self, samples: &[f32], on: &mut dyn FnMut(Peak)) {
        let picker = &mut self.picker;
        self.spec.push(samples, &mut |col| picker.push(col, on));
    }

    /// Ends the input: the last frames and peaks.
    pub fn finish(&mut self, on: &mut dyn FnMut(Peak)) {
        let picker = &mut self.picker;
        self.spec.finish(&mut |col| picker.push(col, on));
        picker.finish(on);
    }
}

/// The peaks of a whole signal.
pub fn peaks(samples: &[f32], cfg: &PeakConfig) -> Result<Vec<Peak>, PeakError> {
    let mut s = PeakStream::new(cfg)?;
    let mut out = Vec::new();
    s.push(samples, &mut |p| out.push(p));
    s.finish(&mut |p| out.push(p));
    Ok(out)
}

#[cfg(test)]
mod tests;
