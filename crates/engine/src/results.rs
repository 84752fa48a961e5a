//! What the engine answers, one type per answer. The CLI's `--json` lines
//! and the HTTP API serialise these same types, so the two cannot drift.

use serde::Serialize;

pub use sampleid_index::{Compacted, Song, Stats};
pub use sampleid_search::Match;

/// The songs a clip contains (`sampleid query --json`, `POST /v1/query`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identification {
    /// The clip, as named by the caller.
    pub query: String,
    /// The clip's decoded duration (s).
    pub duration_s: f64,
    /// Hours of audio in the library searched: the confidences are
    /// calibrated for a library of this size (chance matches grow with it).
    pub library_hours: f64,
    /// Best first; empty for "no match".
    pub matches: Vec<Match>,
}

/// One passage of a library song that plays the clip's music.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passage {
    /// The song's path, as indexed.
    pub reference: String,
    /// The song's id in the library.
    pub song_id: i64,
    /// Where the passage starts and ends in the song (s), within the song.
    pub start: f64,
    /// End of the passage (s), at most the song's duration.
    pub end: f64,
    /// Mean alignment cost (lower is closer).
    pub cost: f64,
    /// Song tempo / query tempo of the passage.
    pub tempo_factor: f64,
    /// Key change from the song to the query (semitones).
    pub pitch_shift: i32,
}

/// The passages a clip matches (`sampleid match --json`, `POST /v1/match`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passages {
    /// The clip, as named by the caller.
    pub query: String,
    /// The clip's decoded duration (s).
    pub duration_s: f64,
    /// Cheapest first; empty when nothing matches.
    pub matches: Vec<Passage>,
}

/// The style of a track (`sampleid genre predict --json`, `POST /v1/genre`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GenrePrediction {
    /// The track, as named by the caller.
    pub input: String,
    /// The most likely class.
    pub label: String,
    /// Its probability.
    pub probability: f32,
    /// Every class with its probability, most likely first.
    pub classes: Vec<(String, f32)>,
    /// The training tracks the track joined the graph through.
    pub neighbours: Vec<String>,
}

/// What indexing one input did (`sampleid index --json`, `POST /v1/songs`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum IndexOutcome {
    /// Added: durable when reported.
    Indexed {
        /// The input, as named by the caller (the song's path in the library).
        path: String,
        /// The new song's id.
        id: i64,
        /// Decoded duration (s).
        duration_s: f64,
        /// Fingerprinted segments.
        segments: u64,
    },
    /// Its content is in the library already (same SHA-256), or earlier in this batch.
    Skipped {
        /// The input, as named by the caller.
        path: String,
        /// The song that holds the same content, when it is committed.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<i64>,
        /// Which song holds the content.
        reason: String,
    },
    /// Not indexed; nothing of it was written.
    Failed {
        /// The input, as named by the caller.
        path: String,
        /// Why, without the input's name.
        error: String,
    },
}

impl IndexOutcome {
    /// The input this outcome is about.
    pub fn path(&self) -> &str {
        match self {
            Self::Indexed { path, .. } | Self::Skipped { path, .. } | Self::Failed { path, .. } => path,
        }
    }

    /// "indexed", "skipped" or "failed".
    pub fn status(&self) -> &'static str {
        match self {
            Self::Indexed { .. } => "indexed",
            Self::Skipped { .. } => "skipped",
            Self::Failed { .. } => "failed",
        }
    }
}

/// What a batch of [`crate::Library::index`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexSummary {
    /// Inputs added.
    pub indexed: usize,
    /// Inputs whose content was already indexed.
    pub skipped: usize,
    /// Inputs that could not be indexed.
    pub failed: usize,
    /// Audio indexed in this run (h).
    pub hours: f64,
    /// Wall-clock time of the run (s).
    pub seconds: f64,
    /// Audio seconds indexed per wall-clock second.
    pub realtime: f64,
    /// Songs in the library afterwards.
    pub library_songs: usize,
    /// Audio in the library afterwards (h).
    pub library_hours: f64,
}
