//! Typed errors for audio input. Every variant names the input so that a batch
//! job can report which file failed and why.

use std::io;

/// Why an input could not be turned into audio samples.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be opened or read. (The cause is part of the
    /// message, not a `source`, so that it is printed once.)
    #[error("{name}: cannot read: {err}")]
    Io { name: String, err: io::Error },
    /// The input has zero bytes.
    #[error("{name}: file is empty")]
    Empty { name: String },
    /// No supported container or raw stream format was recognised.
    #[error(
        "{name}: not a recognised audio format ({reason}); supported: mp3, ogg/vorbis, opus, flac, wav, aiff, m4a/aac/alac"
    )]
    UnknownFormat { name: String, reason: String },
    /// The container was recognised but holds no audio track.
    #[error("{name}: contains no audio track")]
    NoAudioTrack { name: String },
    /// The audio track uses a codec that sampleid cannot decode.
    #[error("{name}: unsupported codec {codec}")]
    UnsupportedCodec { name: String, codec: String },
    /// The stream is damaged beyond what skipping bad packets can repair.
    #[error("{name}: corrupt audio: {reason}")]
    Corrupt { name: String, reason: String },
    /// The stream ends before its declared end (a partial download or copy).
    #[error("{name}: truncated: the stream ends after {decoded_s:.2} s{}", expected_suffix(*expected_s))]
    Truncated {
        name: String,
        decoded_s: f64,
        expected_s: Option<f64>,
    },
    /// The file starts like a known container but ends inside its header.
    #[error("{name}: truncated: the file starts like {format} but ends inside its header")]
    TruncatedHeader { name: String, format: &'static str },
    /// The stream decoded to zero samples.
    #[error("{name}: contains no decodable audio samples")]
    NoSamples { name: String },
    /// The input is longer than the configured limit.
    #[error("{name}: longer than the limit of {limit_s:.0} s")]
    TooLong { name: String, limit_s: f64 },
    /// The stream declares parameters sampleid cannot use (e.g. a zero sample rate).
    #[error("{name}: invalid stream parameters: {reason}")]
    InvalidParameters { name: String, reason: String },
}

fn expected_suffix(expected_s: Option<f64>) -> String {
    match expected_s {
        Some(s) => format!(" where the file promises {s:.2} s"),
        None => String::new(),
    }
}

impl AudioError {
    /// The input name (usually the path as given) the error is about.
    pub fn name(&self) -> &str {
        match self {
            AudioError::Io { name, .. }
            | AudioError::Empty { name }
            | AudioError::UnknownFormat { name, .. }
            | AudioError::NoAudioTrack { name }
            | AudioError::UnsupportedCodec { name, .. }
            | AudioError::Corrupt { name, .. }
            | AudioError::Truncated { name, .. }
            | AudioError::TruncatedHeader { name, .. }
            | AudioError::NoSamples { name }
            | AudioError::TooLong { name, .. }
            | AudioError::InvalidParameters { name, .. } => name,
        }
    }
}
