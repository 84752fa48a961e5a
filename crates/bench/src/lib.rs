//! Benchmarks: `bench make` builds query sets with exact ground truth from the
//! corpus's test split (two protocols: GraFPrint audio identification and
//! NeuralSampleID sample identification), and `bench run` scores answers in
//! the `sampleid query --json` format, from sampleid or any other system.

pub mod make;
pub mod metrics;
pub mod repeats;
pub mod report;
pub mod score;
pub mod spec;
pub mod styles;
pub mod versions;

use std::path::{Path, PathBuf};

pub use make::{MakeOptions, Suite, make};
pub use repeats::RepeatCheck;
pub use score::{Scores, is_right, query_id, read_results, score, score_with};
pub use spec::{Benchmark, Protocol, Query, Reference, Target};
pub use versions::{VersionOptions, make_versions};

/// Errors of the benchmark tools.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{0}")]
    Format(String),
    #[error("corpus: {0}")]
    Corpus(String),
    #[error("query {id}: {reason}")]
    Query { id: String, reason: String },
    #[error(transparent)]
    Manifest(#[from] sampleid_corpus::CorpusError),
    #[error(transparent)]
    Audio(#[from] sampleid_audio::AudioError),
}

impl BenchError {
    pub(crate) fn io(path: &Path, err: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            err,
        }
    }
}
