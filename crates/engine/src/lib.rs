//! # sampleid-engine
//!
//! Which recorded music does this audio contain? This crate is the one place
//! where sampleid's stages are joined; the `sampleid` binary (CLI and HTTP
//! server) and the benchmarks are thin adapters over it, and a Rust program
//! can embed it the same way.
//!
//! ## The facade
//!
//! - [`Engine`]: the models (loaded once, shared by every thread) and the
//!   [`Settings`] of every stage. [`Engine::load`] with
//!   [`ModelSource::Default`] uses the models compiled into the crate.
//! - [`Library`]: a library on disk opened with an engine.
//!   [`Library::open`] (queries) or [`Library::open_writer`] (also writes);
//!   then [`Library::identify`] (the songs a clip contains: two-stage search,
//!   then the chroma alignment that gives place, time ratio and pitch),
//!   [`Library::passages`] (audio matching), [`Library::add`] /
//!   [`Library::index`] (one input, or many with a worker pool and a single
//!   writer), [`Library::delete`], [`Library::compact`] (reclaims deleted
//!   songs' rows), [`Library::songs`], [`Library::stats`].
//! - [`Source`]: an input, a file or bytes in memory.
//! - Answers are plain serialisable types ([`Identification`], [`Passages`],
//!   [`IndexOutcome`], [`GenrePrediction`]); failures are one [`Error`] enum.
//!
//! ```no_run
//! use sampleid_engine::{Engine, IdentifyOptions, Library, ModelSource, Settings, Source};
//!
//! let engine = Engine::load(Settings::default(), ModelSource::Default)?;
//! let library = Library::open("mylib".as_ref(), &engine)?;
//! let answer = library.identify(&Source::file("clip.wav"), &IdentifyOptions::default())?;
//! for m in &answer.matches {
//!     println!("{} at {:.1} s (confidence {:.2})", m.reference, m.reference_start, m.score);
//! }
//! # Ok::<(), sampleid_engine::Error>(())
//! ```
//!
//! ## The pipeline
//!
//! audio (`sampleid-audio`: decode, resample to 16 kHz) → features
//! (`sampleid-features`: log-mel segments, chroma) → encoder
//! (`sampleid-encoder`: fingerprints and node matrices) → index
//! (`sampleid-index`: SQLite + row files + ANN) → search (`sampleid-search`:
//! ANN candidates, re-ranker `sampleid-rerank`) → refine
//! (`sampleid-matching`: chroma alignment) → answer. A new stage is a crate
//! of its own, called from [`pipeline`] (what it computes per input) and
//! [`library`] (how it joins the query path); see `docs/architecture.md`.

pub mod error;
pub mod fusion;
pub mod genre;
pub mod inspect;
pub mod library;
pub mod models;
pub mod pipeline;
pub mod results;
pub mod settings;

pub use error::{Error, Result};
pub use genre::GENRE_MODEL_FILE;
pub use library::{AUDIO_EXTENSIONS, IdentifyOptions, IndexEvent, IndexOptions, Library, collect_inputs};
pub use models::ModelSource;
pub use pipeline::{ChromaInput, Engine, Progress, QueryInput, ReferenceRows, SILENCE_PEAK, Source, Stage};
pub use results::{
    Compacted, GenrePrediction, Identification, IndexOutcome, IndexSummary, Match, Passage, Passages, Song, Stats,
};
pub use settings::{LandmarkSettings, Settings};

/// The stage crates, for what the facade does not cover.
pub mod stages {
    pub use sampleid_audio as audio;
    pub use sampleid_encoder as encoder;
    pub use sampleid_features as features;
    pub use sampleid_genre as genre;
    pub use sampleid_index as index;
    pub use sampleid_landmarks as landmarks;
    pub use sampleid_matching as matching;
    pub use sampleid_peaks as peaks;
    pub use sampleid_rerank as rerank;
    pub use sampleid_search as search;
}
