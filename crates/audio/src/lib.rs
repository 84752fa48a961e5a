//! Audio input, the first stage of the pipeline: decode a file (or bytes) of any
//! supported format into mono samples at the analysis rate (16 kHz), streaming
//! in blocks so that a 3-hour file needs no more memory than a 3-second one.
//!
//! Supported: mp3, Ogg Vorbis, Ogg Opus (pure-Rust decoder), FLAC, WAV (integer
//! and float PCM), AIFF, and MP4/M4A with AAC or ALAC. Multichannel audio is
//! downmixed by averaging the channels, as the published front end does.

mod decode;
mod error;
mod mp4;
mod ogg;
mod opus;
mod resample;
mod riff;

pub use decode::AudioStream;
pub use error::AudioError;
pub use resample::{FftResampler, ResampleError, ResamplerKind, SincResampler, StreamResampler};

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Settings of the audio stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioConfig {
    /// Output sample rate in Hz. The published systems analyse at 16 kHz.
    pub sample_rate: u32,
    /// Resampling algorithm; the default is the published (torchaudio) one.
    pub resampler: ResamplerKind,
    /// Input samples per call of the FFT resampler.
    pub resample_chunk: usize,
    /// Output samples per block returned by [`AudioStream::next_block`].
    pub block_samples: usize,
    /// Inputs longer than this many seconds are rejected (guards services
    /// against runaway uploads). `None`: no limit.
    pub max_duration_s: Option<f64>,
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            resampler: ResamplerKind::Sinc,
            resample_chunk: 4096,
            block_samples: 16_384,
            max_duration_s: None,
        }
    }
}

impl AudioConfig {
    /// Checks the settings: a zero block or chunk would decode every file as
    /// empty, a zero rate or a non-positive limit would refuse everything.
    pub fn validate(&self) -> Result<(), String> {
        if !(1000..=384_000).contains(&self.sample_rate) {
            return Err(format!("sample_rate {} Hz is outside 1000–384000", self.sample_rate));
        }
        if self.block_samples == 0 || self.resample_chunk == 0 {
            return Err("block_samples and resample_chunk must be at least 1".into());
        }
        if let Some(m) = self.max_duration_s
            && !(m.is_finite() && m > 0.0)
        {
            return Err(format!("max_duration_s must be positive (got {m})"));
        }
        Ok(())
    }
}

/// What an input declares about itself, before resampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Container short name, e.g. "ogg", "wave", "isomp4".
    pub container: String,
    /// Codec short name, e.g. "vorbis", "mp3", "opus".
    pub codec: String,
    /// Declared sample rate in Hz, when known before decoding.
    pub sample_rate: Option<u32>,
    /// Declared channel count, when known before decoding.
    pub channels: Option<usize>,
    /// Declared duration in seconds, when the container states it.
    pub duration_s: Option<f64>,
}

/// A whole input decoded into memory: for clips and tests. Use [`AudioStream`]
/// for anything that may be long.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Mono samples at [`AudioConfig::sample_rate`].
    pub samples: Vec<f32>,
    /// Their sample rate.
    pub sample_rate: u32,
    /// What the input declared.
    pub info: SourceInfo,
}

impl Decoded {
    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Decodes a whole file into memory.
pub fn decode_file(path: &Path, cfg: &AudioConfig) -> Result<Decoded, AudioError> {
    collect(AudioStream::open(path, cfg)?, cfg)
}

/// Decodes a whole in-memory input (see [`AudioStream::from_bytes`]).
pub fn decode_bytes(
    bytes: Vec<u8>,
    name: &str,
    extension: Option<&str>,
    cfg: &AudioConfig,
) -> Result<Decoded, AudioError> {
    collect(AudioStream::from_bytes(bytes, name, extension, cfg)?, cfg)
}

fn collect(mut stream: AudioStream, cfg: &AudioConfig) -> Result<Decoded, AudioError> {
    let mut samples = Vec::new();
    while let Some(block) = stream.next_block()? {
        samples.extend_from_slice(block);
    }
    Ok(Decoded {
        samples,
        sample_rate: cfg.sample_rate,
        info: stream.info().clone(),
    })
}

/// Peaks below this (−80 dBFS) are silence: nothing to identify, match,
/// index or classify. The one silence rule of every entry point (the engine
/// re-exports it), and of the benchmark's queries, which must not be made of
/// what the engine refuses as silent.
pub const SILENCE_PEAK: f32 = 1e-4;

/// Peak absolute level of a signal (0 for an empty one).
pub fn peak(samples: &[f32]) -> f32 {
    samples.iter().fold(0.0f32, |m, s| m.max(s.abs()))
}

/// True when a signal carries no usable sound: empty, or every sample within
/// `threshold` of its mean (digital silence or a pure DC offset).
pub fn is_silent(samples: &[f32], threshold: f32) -> bool {
    if samples.is_empty() {
        return true;
    }
    let mean = samples.iter().map(|&s| s as f64).sum::<f64>() / samples.len() as f64;
    samples.iter().all(|&s| ((s as f64) - mean).abs() <= threshold as f64)
}
