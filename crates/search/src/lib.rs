//! The search stage: which songs of a library (`sampleid-index`) a query's
//! segments come from, and where. [`query`] searches in two stages:
//!
//! 1. every query segment asks the library's ANN index for its `top_k`
//!    nearest reference segments (cosine similarity of unit fingerprints);
//! 2. the re-ranker (`sampleid-rerank`, a cross-attention classifier) scores
//!    every distinct candidate against every query segment and keeps the
//!    maximum; without a re-ranker the best similarity of stage 1 is the score.
//!
//! Candidates scoring below the acceptance threshold are rejected; the
//! accepted ones are gathered per song, a line `ref = a · query + b` is
//! fitted to each song's (query segment, reference segment) pairs
//! ([`locate`]), and it gives where the match starts in both and the tempo
//! ratio. A song's score sums its accepted candidates (by default only those
//! on the line).

pub mod evidence;
pub mod query;

pub use evidence::{ChromaEvidence, Evidence, LandmarkEvidence, NeuralEvidence, ShingleEvidence};
pub use query::{Guide, Located, Match, Pair, QueryConfig, QuerySegment, SearchError, locate, query, query_guided};
