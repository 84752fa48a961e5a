//! Category identification: what kind of music a track is.
//!
//! Tracks are nodes of a k-nearest-neighbour graph over their whole-track
//! features (`sampleid-features::track_features`, optionally with the mean
//! of their fingerprints); GraphSAGE with the mean aggregator classifies the
//! nodes. A new track joins the graph inductively: its neighbours are its
//! k nearest training tracks, and the trained network reads their features,
//! with no retraining.
//!
//! - `graph`: standardisation, the similarity metrics, the k-NN graph.
//! - `sage`: the GraphSAGE network and its full-batch training (burn).
//! - `eval`: grouped, stratified k-fold cross-validation of GraphSAGE and of
//!   the two baselines on the same features and folds (k-NN vote, and the
//!   MLP that is GraphSAGE without its neighbour term).

#[cfg(any(feature = "train", test))]
pub mod eval;
pub mod graph;
pub mod sage;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use sampleid_fsio::AtomicFile;
use sampleid_fsio::card::{self, CardError};
use serde::{Deserialize, Serialize};

pub use graph::{Metric, Scaler};

/// Errors of the genre stage.
#[derive(Debug, thiserror::Error)]
pub enum GenreError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("genre model: {0}")]
    Model(String),
    #[error("{0}")]
    Input(String),
}

/// Settings of the graph and the classifier (`[genre]` in the config file).
///
/// Defaults: k = 10 neighbours and a 2-layer, 64-wide GraphSAGE with mean
/// aggregation, as in the seed study's setting of GraphSAGE on a k-NN graph of
/// GTZAN tracks; dropout, Adam and epochs are the usual full-batch
/// node-classification choices (Kipf & Welling / Hamilton et al.).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenreConfig {
    /// Neighbours per track in the graph (and the k-NN vote baseline).
    pub k: usize,
    pub metric: Metric,
    /// GraphSAGE layers (1 or 2 in the literature).
    pub layers: usize,
    /// Width of each layer.
    pub hidden: usize,
    pub dropout: f64,
    /// Full-batch Adam steps.
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub seed: u64,
}

impl Default for GenreConfig {
    fn default() -> Self {
        Self {
            k: 10,
            metric: Metric::Cosine,
            layers: 2,
            hidden: 64,
            dropout: 0.5,
            epochs: 200,
            lr: 0.01,
            weight_decay: 5e-4,
            seed: 1,
        }
    }
}

impl GenreConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), GenreError> {
        if self.k == 0 || self.hidden == 0 || self.layers == 0 || self.layers > 4 || self.epochs == 0 {
            return Err(GenreError::Input(
                "[genre] k, hidden, epochs must be positive and layers 1–4".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) || self.lr.is_nan() || self.lr <= 0.0 {
            return Err(GenreError::Input(
                "[genre] dropout must be in [0, 1) and lr positive".into(),
            ));
        }
        Ok(())
    }
}

/// What a trained classifier needs besides its weights: the training graph
/// (new tracks join it), the scaler and the class names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierInfo {
    pub config: GenreConfig,
    /// What the feature vectors are (e.g. "track-113"), checked at prediction.
    pub features: String,
    pub classes: Vec<String>,
    pub scaler: Scaler,
    /// Standardised features of the training tracks.
    pub rows: Vec<Vec<f32>>,
    /// Their class indices.
    pub labels: Vec<usize>,
    /// Their names (paths as given to training), to explain predictions.
    pub names: Vec<String>,
    /// The training graph (each track's neighbours).
    pub graph: Vec<Vec<usize>>,
}

/// A trained GraphSAGE classifier with its training graph.
pub struct Classifier {
    pub info: ClassifierInfo,
    model: sage::SageModel,
}

/// One track's prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub label: String,
    pub probability: f32,
    /// Every class with its probability, most likely first.
    pub classes: Vec<(String, f32)>,
    /// The training tracks it joined the graph through (nearest first).
    pub neighbours: Vec<String>,
}

impl Classifier {
    #[cfg(any(feature = "train", test))]
    /// Trains on every labelled track.
    pub fn train(
        rows: &[Vec<f32>],
        labels: &[String],
        names: &[String],
        features: &str,
        cfg: &GenreConfig,
    ) -> Result<Self, GenreError> {
        cfg.validate()?;
        if rows.len() != labels.len() || rows.len() != names.len() || rows.len() < 2 {
            return Err(GenreError::Input("training needs at least two labelled tracks".into()));
        }
        let mut classes: Vec<String> = labels.to_vec();
        classes.sort();
        classes.dedup();
        if classes.len() < 2 {
            return Err(GenreError::Input("training needs at least two classes".into()));
        }
        let ids: Vec<usize> = labels
            .iter()
            .map(|l| classes.binary_search(l).expect("listed"))
            .collect();
        let scaler = Scaler::fit(rows);
        let scaled: Vec<Vec<f32>> = rows.iter().map(|r| scaler.apply(r)).collect();
        let graph = graph::knn_graph(cfg.metric, &scaled, cfg.k);
        let all: Vec<usize> = (0..scaled.len()).collect();
        let model = sage::train(&scaled, &graph, &ids, &all, classes.len(), cfg, true);
        Ok(Self {
            info: ClassifierInfo {
                config: cfg.clone(),
                features: features.to_string(),
                classes,
                scaler,
                rows: scaled,
                labels: ids,
                names: names.to_vec(),
                graph,
            },
            model,
        })
    }

    /// Classifies new tracks inductively: each joins the training graph
    /// through its k nearest training tracks.
    pub fn predict(&self, rows: &[Vec<f32>]) -> Result<Vec<Prediction>, GenreError> {
        let d = self.info.scaler.mean.len();
        if let Some(r) = rows.iter().find(|r| r.len() != d) {
            return Err(GenreError::Input(format!(
                "a feature vector has {} values; the model was trained on {d} ({})",
                r.len(),
                self.info.features
            )));
        }
        let m = self.info.rows.len();
        let mut x = self.info.rows.clone();
        let mut graph = self.info.graph.clone();
        let mut joined = Vec::new();
        for r in rows {
            let z = self.info.scaler.apply(r);
            let n = graph::neighbours(self.info.config.metric, &z, &self.info.rows, self.info.config.k, None);
            joined.push(n.clone());
            x.push(z);
            graph.push(n);
        }
        let p = sage::predict(&self.model, &x, &graph);
        Ok(p[m..]
            .iter()
            .zip(joined)
            .map(|(probs, n)| {
                let mut classes: Vec<(String, f32)> =
                    self.info.classes.iter().cloned().zip(probs.iter().copied()).collect();
                classes.sort_by(|a, b| b.1.total_cmp(&a.1));
                Prediction {
                    label: classes[0].0.clone(),
                    probability: classes[0].1,
                    classes,
                    neighbours: n.iter().map(|&i| self.info.names[i].clone()).collect(),
                }
            })
            .collect())
    }

    /// Saves the weights (`FILE.safetensors`) and the info (`FILE.json`).
    pub fn save(&self, weights: &Path) -> Result<(), GenreError> {
        let io = |path: &Path, err| GenreError::Io {
            path: path.to_path_buf(),
            err,
        };
        if let Some(dir) = weights.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        // The weights are written under a temporary name; the card goes
        // first, then the weights appear under their name.
        let file = AtomicFile::create(weights).map_err(|e| io(weights, e))?;
        self.model
            .save_into(&mut SafetensorsStore::from_file(file.tmp_path()).overwrite(true))
            .map_err(|e| GenreError::Model(format!("cannot save weights: {e}")))?;
        // Compact: the card holds the whole training graph.
        card::save_compact(weights, &self.info).map_err(|e| io(&card::path_of(weights), e))?;
        file.commit().map_err(|e| io(weights, e))
    }

    /// Loads what [`Classifier::save`] wrote.
    pub fn load(weights: &Path) -> Result<Self, GenreError> {
        let info: ClassifierInfo = card::load(weights).map_err(|e| match e {
            CardError::Io { path, source } => GenreError::Io { path, err: source },
            e @ CardError::Malformed { .. } => GenreError::Model(e.to_string()),
        })?;
        let bytes = std::fs::read(weights).map_err(|err| GenreError::Io {
            path: weights.to_path_buf(),
            err,
        })?;
        let device = Device::flex();
        let mut model = sage::SageModel::new(info.scaler.mean.len(), info.classes.len(), &info.config, true, &device);
        let result = model
            .load_from(&mut SafetensorsStore::from_bytes(Some(bytes)))
            .map_err(|e| GenreError::Model(format!("cannot load weights: {e}")))?;
        if !result.missing.is_empty() || !result.errors.is_empty() {
            return Err(GenreError::Model(format!(
                "weights do not fit the configuration: missing {:?}, errors {:?}",
                result.missing, result.errors
            )));
        }
        Ok(Self { info, model })
    }
}

#[cfg(test)]
mod tests;
