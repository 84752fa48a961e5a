//! Features, the second stage of the pipeline: the log-mel front end of the
//! published NeuralSampleID/GraFPrint systems (and the segments the encoder
//! reads), plus chroma and CENS for audio matching. Everything streams, so the
//! memory used does not grow with the length of the input.

pub mod chroma;
pub mod config;
pub mod mel;
pub mod npy;
pub mod segment;
pub mod stft;
pub mod track;

use std::path::PathBuf;

pub use chroma::{
    CensConfig, ChromaConfig, ChromaStream, cens, cens_from_energy, chroma, normalise_chroma, quantise_shares,
    shares_to_energy,
};
pub use config::{FrontendConfig, MelNorm, MelScale, PadMode, SegmentNorm, WindowKind};
pub use mel::{LogMelStream, MelFilterbank};
pub use segment::{Segment, SegmentStream, min_max_normalise};
pub use track::{track_feature_names, track_features};

/// Errors of the feature stage.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// Settings that describe no computable front end.
    #[error("invalid feature configuration: {0}")]
    InvalidConfig(String),
    /// Reading or writing a feature file failed (the cause is in the message).
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// A malformed or unsupported `.npy` file.
    #[error("npy: {0}")]
    Npy(String),
}

/// True for a finite number greater than zero (false for NaN).
pub(crate) fn positive(x: f32) -> bool {
    x.is_finite() && x > 0.0
}

/// A log-mel spectrogram held in memory, frame-major: `data[t * n_mels + m]` in dB.
#[derive(Debug, Clone, PartialEq)]
pub struct MelSpectrogram {
    /// Number of frames.
    pub n_frames: usize,
    /// Bands per frame.
    pub n_mels: usize,
    /// Values, frame after frame.
    pub data: Vec<f32>,
}

impl MelSpectrogram {
    /// One frame.
    pub fn frame(&self, t: usize) -> &[f32] {
        &self.data[t * self.n_mels..(t + 1) * self.n_mels]
    }
}

/// Log-mel spectrogram of a whole signal (no padding to a segment length),
/// equal to torchaudio `AmplitudeToDB(MelSpectrogram(...))` with the same settings.
pub fn log_mel(samples: &[f32], cfg: &FrontendConfig) -> Result<MelSpectrogram, FeatureError> {
    let mut stream = LogMelStream::new(cfg, 0)?;
    let mut data = Vec::new();
    stream.push(samples, &mut |f| data.extend_from_slice(f));
    stream.finish(&mut |f| data.extend_from_slice(f));
    Ok(MelSpectrogram {
        n_frames: data.len() / cfg.n_mels,
        n_mels: cfg.n_mels,
        data,
    })
}

/// All encoder segments of a whole signal.
pub fn segments(samples: &[f32], cfg: &FrontendConfig) -> Result<Vec<Segment>, FeatureError> {
    let mut stream = SegmentStream::new(cfg)?;
    let mut out = Vec::new();
    stream.push(samples, &mut |s| out.push(s));
    stream.finish(&mut |s| out.push(s));
    Ok(out)
}
