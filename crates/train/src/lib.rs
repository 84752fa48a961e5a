//! Training: contrastive pairs from the corpus (this crate's data side) and
//! the loops that train the encoder and the re-ranker on them.

pub mod cache;
pub mod encoder;
pub mod pairs;
pub mod reranker;
pub mod warp;

use std::path::{Path, PathBuf};

pub use encoder::{
    EncoderTraining, StepProfile, StepReport, TrainSummary, Validation, step_profile, train_encoder, train_encoder_on,
};
pub use pairs::{Augment, Pair, PairConfig, PairKind, PairMaker, PairPhase, PairTimes, Pool};
pub use reranker::{RerankerSummary, RerankerTraining, RerankerValidation, train_reranker};

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("training data: {0}")]
    Data(String),
    #[error(transparent)]
    Audio(#[from] sampleid_audio::AudioError),
    #[error(transparent)]
    Features(#[from] sampleid_features::FeatureError),
    #[error(transparent)]
    Transform(#[from] sampleid_transform::TransformError),
    #[error(transparent)]
    Corpus(#[from] sampleid_corpus::CorpusError),
}

impl TrainError {
    pub(crate) fn io(path: &Path, err: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            err,
        }
    }
}
