//! The engine's one error type. Every entry point (CLI, HTTP, a Rust
//! program) gets the same variants, so an adapter maps them with a `match`
//! (HTTP status, exit code) instead of inspecting messages.

use sampleid_audio::AudioError;
use sampleid_encoder::EncoderError;
use sampleid_features::FeatureError;
use sampleid_genre::GenreError;
use sampleid_index::IndexError;
use sampleid_matching::MatchError;
use sampleid_rerank::RerankError;
use sampleid_search::SearchError;

/// Why an engine call failed.
///
/// Errors about one input (`Audio`, `Silent`, `Io`) start their message with
/// the input's name, once; [`Error::reason`] gives the message without it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input could not be decoded (corrupt, truncated, not audio, …).
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// The input holds no music: its peak is below −80 dBFS (see
    /// [`crate::SILENCE_PEAK`]), or it is too short to hold one segment.
    #[error("{name}: silent: there is no music to {what}")]
    Silent {
        /// The input, as named by the caller.
        name: String,
        /// What could not be done: "identify", "match", "index", "classify".
        what: &'static str,
    },
    /// A file could not be read (before decoding: hashing, listing a folder).
    #[error("{name}: cannot read: {err}")]
    Io {
        /// The file or folder.
        name: String,
        /// The cause.
        err: std::io::Error,
    },
    /// The library on disk: missing, locked, damaged, or a write failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A model could not be loaded, or is not the one a library or
    /// classifier was made with.
    #[error("{0}")]
    Model(String),
    /// Settings that disagree with what a library was built with (chroma
    /// rate, models), or with each other.
    #[error("{0}")]
    Mismatch(String),
    /// Invalid settings.
    #[error("config: {0}")]
    Config(String),
    /// No such song, or no classifier next to the library.
    #[error("{0}")]
    NotFound(String),
    /// A write on a library opened read-only.
    #[error("the library {0} is open read-only")]
    ReadOnly(String),
    /// The front end (log-mel, chroma).
    #[error(transparent)]
    Features(#[from] FeatureError),
    /// The encoder failed on valid input.
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    /// The re-ranker failed on valid input.
    #[error(transparent)]
    Rerank(#[from] RerankError),
    /// The two-stage search.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// Audio matching and alignment (`MatchError::TooShort` is the input's fault).
    #[error(transparent)]
    Matching(#[from] MatchError),
    /// The genre classifier.
    #[error(transparent)]
    Genre(#[from] GenreError),
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The input this error is about, when it is about one input.
    pub fn input(&self) -> Option<&str> {
        match self {
            Error::Audio(a) => Some(a.name()),
            Error::Silent { name, .. } | Error::Io { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The message without the input's name in front (for a JSON line or an
    /// HTTP answer that names the input in a field of its own).
    pub fn reason(&self) -> String {
        let msg = self.to_string();
        match self.input() {
            Some(name) => msg
                .strip_prefix(&format!("{name}: "))
                .map(str::to_string)
                .unwrap_or(msg),
            None => msg,
        }
    }

    /// True when the input is at fault (bad, silent or too-long audio), not
    /// the library, the models or the machine.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Error::Audio(_) | Error::Silent { .. } | Error::Matching(MatchError::TooShort { .. })
        )
    }
}
