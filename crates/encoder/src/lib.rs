//! The encoder stage: normalised log-mel segments → 128-d fingerprints (for
//! search) and node matrices (for the re-ranker), with a graph neural network
//! as NeuralSampleID and GraFPrint describe it (the graph blocks really run).
//! Built on burn; runs on the CPU (and on CUDA with the `cuda` feature).

pub mod config;
pub mod knn;
pub mod loss;
pub mod model;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::store::{FloatCastAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::DType;
use sampleid_fsio::AtomicFile;
use sampleid_fsio::card::{self, CardError};
use serde::{Deserialize, Serialize};

pub use config::EncoderConfig;
pub use loss::{nt_xent, nt_xent_keys};
pub use model::{EncoderModel, EncoderOutput};

/// Errors of the encoder stage.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("model: {0}")]
    Model(String),
    #[error("input: {0}")]
    Input(String),
}

/// What is stored next to the weights (`NAME.json` beside `NAME.safetensors`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Version of the model (changes whenever fingerprints change).
    pub version: String,
    pub config: EncoderConfig,
    /// Free-form training facts (steps, data, …).
    #[serde(default)]
    pub training: serde_json::Value,
}

/// A segment's fingerprint and node matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// L2-normalised, `out_dim` values.
    pub fingerprint: Vec<f32>,
    /// `node_dim × output_nodes` values, channel-major (as NeuralSampleID's (512, 32)).
    pub nodes: Vec<f32>,
}

/// An encoder ready for inference.
#[derive(Debug, Clone)]
pub struct Encoder {
    model: EncoderModel,
    info: ModelInfo,
    device: Device,
    /// Segments per forward pass.
    pub batch_size: usize,
}

/// The CPU device.
pub fn cpu() -> Device {
    Device::flex()
}

impl Encoder {
    /// Wraps a model (its inference copy is taken: BatchNorm uses running statistics).
    pub fn new(model: &EncoderModel, info: ModelInfo) -> Self {
        let model = model.valid();
        let device = cpu();
        Self {
            model,
            info,
            device,
            batch_size: 32,
        }
    }

    /// A freshly initialised (untrained) encoder, for tests and benchmarks.
    pub fn random(cfg: &EncoderConfig, seed: u64) -> Self {
        let device = cpu();
        device.seed(seed);
        let model = EncoderModel::new(cfg, &device);
        Self::new(
            &model,
            ModelInfo {
                version: format!("untrained-{seed}"),
                config: cfg.clone(),
                training: serde_json::Value::Null,
            },
        )
    }

    /// Loads `NAME.safetensors` and its `NAME.json`.
    pub fn load(weights: &Path) -> Result<Self, EncoderError> {
        let info: ModelInfo = card::load(weights).map_err(|e| match e {
            CardError::Io { path, source } => EncoderError::Io { path, err: source },
            e @ CardError::Malformed { .. } => EncoderError::Model(e.to_string()),
        })?;
        let bytes = std::fs::read(weights).map_err(|err| EncoderError::Io {
            path: weights.to_path_buf(),
            err,
        })?;
        Self::from_bytes(&bytes, info)
    }

    /// Builds an encoder from safetensors bytes (f16 or f32) and its info.
    pub fn from_bytes(weights: &[u8], info: ModelInfo) -> Result<Self, EncoderError> {
        info.config.validate().map_err(EncoderError::Model)?;
        let device = cpu();
        let mut model = EncoderModel::new(&info.config, &device);
        let mut store =
            SafetensorsStore::from_bytes(Some(weights.to_vec())).with_from_adapter(FloatCastAdapter::to(DType::F32));
        let result = model
            .load_from(&mut store)
            .map_err(|e| EncoderError::Model(format!("cannot load weights: {e}")))?;
        if !result.missing.is_empty() || !result.errors.is_empty() {
            return Err(EncoderError::Model(format!(
                "weights do not fit the configuration: missing {:?}, errors {:?}",
                result.missing, result.errors
            )));
        }
        Ok(Self::new(&model, info))
    }

    /// Saves the weights as f16 safetensors plus `NAME.json`.
    pub fn save(&self, weights: &Path) -> Result<(), EncoderError> {
        save_model(&self.model, &self.info, weights)
    }

    /// Trainable parameters (BatchNorm statistics not counted).
    pub fn parameters(&self) -> usize {
        self.model.num_params()
    }

    /// Model facts.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Layer sizes.
    pub fn config(&self) -> &EncoderConfig {
        &self.info.config
    }

    /// Encodes segments (each `n_mels × n_frames` values, `[mel][time]`).
    pub fn embed(&self, segments: &[&[f32]]) -> Result<Vec<Embedding>, EncoderError> {
        let cfg = &self.info.config;
        let len = cfg.n_mels * cfg.n_frames;
        if let Some(bad) = segments.iter().find(|s| s.len() != len) {
            return Err(EncoderError::Input(format!(
                "a segment has {} values; expected {} × {}",
                bad.len(),
                cfg.n_mels,
                cfg.n_frames
            )));
        }
        let mut out = Vec::with_capacity(segments.len());
        for chunk in segments.chunks(self.batch_size.max(1)) {
            let flat: Vec<f32> = chunk.iter().flat_map(|s| s.iter().copied()).collect();
            let x = Tensor::<3>::from_data(
                TensorData::new(flat, [chunk.len(), cfg.n_mels, cfg.n_frames]),
                &self.device,
            );
            let y = self.model.forward(x);
            let fp = to_vec(y.fingerprint);
            let nodes = to_vec(y.nodes);
            let (d, m) = (fp.len() / chunk.len(), nodes.len() / chunk.len());
            for i in 0..chunk.len() {
                out.push(Embedding {
                    fingerprint: fp[i * d..(i + 1) * d].to_vec(),
                    nodes: nodes[i * m..(i + 1) * m].to_vec(),
                });
            }
        }
        Ok(out)
    }
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 data")
}

/// Saves a model's inference copy as f16 safetensors, with its info as JSON.
pub fn save_model(model: &EncoderModel, info: &ModelInfo, weights: &Path) -> Result<(), EncoderError> {
    if let Some(dir) = weights.parent() {
        std::fs::create_dir_all(dir).map_err(|err| EncoderError::Io {
            path: dir.to_path_buf(),
            err,
        })?;
    }
    let io = |path: &Path, err| EncoderError::Io {
        path: path.to_path_buf(),
        err,
    };
    // The weights are written under a temporary name; the card goes first,
    // then the weights appear under their name.
    let file = AtomicFile::create(weights).map_err(|e| io(weights, e))?;
    model
        .valid()
        .save_into(
            &mut SafetensorsStore::from_file(file.tmp_path())
                .with_to_adapter(FloatCastAdapter::to(DType::F16))
                .overwrite(true),
        )
        .map_err(|e| EncoderError::Model(format!("cannot save weights: {e}")))?;
    card::save(weights, info).map_err(|e| io(&card::path_of(weights), e))?;
    file.commit().map_err(|e| io(weights, e))
}
