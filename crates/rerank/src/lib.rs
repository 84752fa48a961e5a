//! The re-ranking stage (NeuralSampleID §4): a multi-head cross-attention
//! classifier decides whether a candidate reference segment and a query
//! segment hold the same music, so that candidates from the approximate
//! search can be accepted (score ≥ 0.5) or rejected.
//!
//! Training uses the burn module in [`model`]; queries use [`Reranker`], a
//! plain-Rust copy of the same arithmetic that splits the work so that each
//! query segment and each candidate is projected once and only the attention
//! itself is paid per (query segment, candidate) pair.

pub mod model;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::store::{FloatCastAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::DType;
use sampleid_fsio::AtomicFile;
use sampleid_fsio::card::{self, CardError};
use serde::{Deserialize, Serialize};

pub use model::RerankerModel;

/// Errors of the re-ranking stage.
#[derive(Debug, thiserror::Error)]
pub enum RerankError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("re-ranker model: {0}")]
    Model(String),
    #[error("re-ranker input: {0}")]
    Input(String),
}

/// Sizes of the classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RerankerConfig {
    /// Channels of the encoder's node matrix (published: 512; our small encoder: 128).
    pub node_dim: usize,
    /// Nodes per segment (32).
    pub nodes: usize,
    /// Channels kept per stored reference node. The index stores
    /// `nodes × store_dim` bytes (int8) per segment: 16 → 512 B per
    /// segment, 3.6 MB per hour of audio at a 0.512 s hop.
    pub store_dim: usize,
    /// Width of the attention (published: 512, i.e. the node dimension).
    pub model_dim: usize,
    /// Attention heads (published: 4).
    pub heads: usize,
    /// Hidden units of the output MLP (published: 128).
    pub hidden: usize,
    /// Dropout before the last layer (published: 0.3).
    pub dropout: f64,
}

impl Default for RerankerConfig {
    fn default() -> Self {
        Self {
            node_dim: 128,
            nodes: 32,
            store_dim: 16,
            model_dim: 64,
            heads: 4,
            hidden: 128,
            dropout: 0.3,
        }
    }
}

impl RerankerConfig {
    /// Checks that the sizes fit together.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_dim == 0 || self.nodes == 0 || self.store_dim == 0 || self.hidden == 0 {
            return Err("re-ranker sizes must be positive".into());
        }
        if self.heads == 0 || !self.model_dim.is_multiple_of(self.heads) {
            return Err(format!(
                "model_dim {} must be a multiple of heads {}",
                self.model_dim, self.heads
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err("dropout must be in [0, 1)".into());
        }
        Ok(())
    }

    /// Bytes that the index stores per reference segment.
    pub fn stored_bytes(&self) -> usize {
        4 + self.nodes * self.store_dim
    }
}

/// What is stored next to the weights (`NAME.json` beside `NAME.safetensors`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RerankerInfo {
    /// Version of the classifier; an index records it with its stored nodes.
    pub version: String,
    /// The encoder version whose node matrices it was trained on.
    pub encoder: String,
    pub config: RerankerConfig,
    /// Free-form training facts and held-out measurements.
    #[serde(default)]
    pub training: serde_json::Value,
}

/// A query segment prepared for scoring: its attention queries.
#[derive(Debug, Clone)]
pub struct PreparedQuery {
    /// `nodes × model_dim`, already scaled by 1/√(head dim).
    q: Vec<f32>,
}

/// A candidate reference segment prepared for scoring: attention keys and values.
#[derive(Debug, Clone)]
pub struct PreparedReference {
    k: Vec<f32>,
    v: Vec<f32>,
}

/// A linear layer in plain memory: `out = x · w + b`, `w` is `[in][out]`.
#[derive(Debug, Clone)]
struct Dense {
    w: Vec<f32>,
    b: Vec<f32>,
    d_in: usize,
    d_out: usize,
}

impl Dense {
    fn from(l: &burn::nn::Linear) -> Self {
        let w = l.weight.val();
        let [d_in, d_out] = w.dims();
        let b = l
            .bias
            .as_ref()
            .map(|b| to_vec(b.val()))
            .unwrap_or_else(|| vec![0.0; d_out]);
        Self {
            w: to_vec(w),
            b,
            d_in,
            d_out,
        }
    }

    /// Rows of `x` (`rows × d_in`) → `rows × d_out`.
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        let rows = x.len() / self.d_in;
        let mut out = Vec::with_capacity(rows * self.d_out);
        for r in 0..rows {
            let xr = &x[r * self.d_in..(r + 1) * self.d_in];
            let mut acc = self.b.clone();
            for (i, &xi) in xr.iter().enumerate() {
                if xi == 0.0 {
                    continue;
                }
                let wr = &self.w[i * self.d_out..(i + 1) * self.d_out];
                for (a, &w) in acc.iter_mut().zip(wr) {
                    *a += xi * w;
                }
            }
            out.extend_from_slice(&acc);
        }
        out
    }
}

/// The classifier, ready for queries.
#[derive(Debug)]
pub struct Reranker {
    info: RerankerInfo,
    model: RerankerModel,
    store: Dense,
    q_pos: Vec<f32>,
    r_pos: Vec<f32>,
    wq: Dense,
    wk: Dense,
    wv: Dense,
    wo: Dense,
    fc1: Dense,
    fc2: Dense,
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32 data")
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Reranker {
    /// Wraps a trained module (its inference copy: dropout off).
    pub fn new(model: &RerankerModel, info: RerankerInfo) -> Self {
        let model = model.valid();
        Self {
            store: Dense::from(&model.store),
            q_pos: to_vec(model.q_pos.val()),
            r_pos: to_vec(model.r_pos.val()),
            wq: Dense::from(&model.wq),
            wk: Dense::from(&model.wk),
            wv: Dense::from(&model.wv),
            wo: Dense::from(&model.wo),
            fc1: Dense::from(&model.fc1),
            fc2: Dense::from(&model.fc2),
            model,
            info,
        }
    }

    /// A freshly initialised (untrained) classifier, for tests.
    pub fn random(cfg: &RerankerConfig, seed: u64) -> Self {
        let device = Device::flex();
        device.seed(seed);
        let model = RerankerModel::new(cfg, &device);
        Self::new(
            &model,
            RerankerInfo {
                version: format!("untrained-{seed}"),
                encoder: String::new(),
                config: cfg.clone(),
                training: serde_json::Value::Null,
            },
        )
    }

    /// Loads `NAME.safetensors` and its `NAME.json`.
    pub fn load(weights: &Path) -> Result<Self, RerankError> {
        let info: RerankerInfo = card::load(weights).map_err(|e| match e {
            CardError::Io { path, source } => RerankError::Io { path, err: source },
            e @ CardError::Malformed { .. } => RerankError::Model(e.to_string()),
        })?;
        let bytes = std::fs::read(weights).map_err(|err| RerankError::Io {
            path: weights.to_path_buf(),
            err,
        })?;
        Self::from_bytes(&bytes, info)
    }

    /// Builds the classifier from safetensors bytes (f16 or f32) and its info.
    pub fn from_bytes(weights: &[u8], info: RerankerInfo) -> Result<Self, RerankError> {
        info.config.validate().map_err(RerankError::Model)?;
        let device = Device::flex();
        let mut model = RerankerModel::new(&info.config, &device);
        let mut store =
            SafetensorsStore::from_bytes(Some(weights.to_vec())).with_from_adapter(FloatCastAdapter::to(DType::F32));
        let result = model
            .load_from(&mut store)
            .map_err(|e| RerankError::Model(format!("cannot load weights: {e}")))?;
        if !result.missing.is_empty() || !result.errors.is_empty() {
            return Err(RerankError::Model(format!(
                "weights do not fit the configuration: missing {:?}, errors {:?}",
                result.missing, result.errors
            )));
        }
        Ok(Self::new(&model, info))
    }

    /// Saves the weights as f16 safetensors plus `NAME.json`.
    pub fn save(&self, weights: &Path) -> Result<(), RerankError> {
        save_model(&self.model, &self.info, weights)
    }

    /// Model facts.
    pub fn info(&self) -> &RerankerInfo {
        &self.info
    }

    /// Identifies what the index stores: the version plus a hash of the
    /// projection weights (a library built with another projection would
    /// score wrongly, so it must be refused even under the same version).
    pub fn storage_id(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for v in self.store.w.iter().chain(&self.store.b) {
            for byte in v.to_bits().to_le_bytes() {
                h ^= byte as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{}#{:016x}", self.info.version, h)
    }

    /// Layer sizes.
    pub fn config(&self) -> &RerankerConfig {
        &self.info.config
    }

    /// The trained module.
    pub fn module(&self) -> &RerankerModel {
        &self.model
    }

    fn check_nodes(&self, nodes: &[f32]) -> Result<(), RerankError> {
        let c = &self.info.config;
        if nodes.len() != c.node_dim * c.nodes {
            return Err(RerankError::Input(format!(
                "a node matrix has {} values; expected {} × {}",
                nodes.len(),
                c.node_dim,
                c.nodes
            )));
        }
        Ok(())
    }

    /// The encoder's node matrix (channel-major, `node_dim × nodes`) as
    /// node rows (`nodes × node_dim`).
    fn node_rows(&self, channel_major: &[f32]) -> Vec<f32> {
        let c = &self.info.config;
        let mut out = vec![0.0; c.nodes * c.node_dim];
        for ch in 0..c.node_dim {
            for n in 0..c.nodes {
                out[n * c.node_dim + ch] = channel_major[ch * c.nodes + n];
            }
        }
        out
    }

    /// What the index keeps of a reference segment: its node matrix
    /// (channel-major, as the encoder gives it) projected to `store_dim`
    /// channels and quantised to int8 with one scale per segment.
    pub fn store(&self, channel_major: &[f32]) -> Result<Vec<u8>, RerankError> {
        self.check_nodes(channel_major)?;
        Ok(quantize(&self.store.apply(&self.node_rows(channel_major))))
    }

    /// Prepares a query segment (channel-major node matrix).
    pub fn prepare_query(&self, channel_major: &[f32]) -> Result<PreparedQuery, RerankError> {
        self.check_nodes(channel_major)?;
        let mut x = self.node_rows(channel_major);
        for (a, p) in x.iter_mut().zip(&self.q_pos) {
            *a += p;
        }
        let mut q = self.wq.apply(&x);
        let c = &self.info.config;
        let scale = 1.0 / ((c.model_dim / c.heads) as f32).sqrt();
        q.iter_mut().for_each(|v| *v *= scale);
        Ok(PreparedQuery { q })
    }

    /// Prepares a stored reference segment (bytes from [`Reranker::store`]).
    pub fn prepare_reference(&self, stored: &[u8]) -> Result<PreparedReference, RerankError> {
        let c = &self.info.config;
        if stored.len() != c.stored_bytes() {
            return Err(RerankError::Input(format!(
                "stored nodes have {} bytes; expected {}",
                stored.len(),
                c.stored_bytes()
            )));
        }
        let mut r = dequantize(stored);
        for (a, p) in r.iter_mut().zip(&self.r_pos) {
            *a += p;
        }
        Ok(PreparedReference {
            k: self.wk.apply(&r),
            v: self.wv.apply(&r),
        })
    }

    /// Probability that the query segment and the reference segment hold the same music.
    pub fn score(&self, q: &PreparedQuery, r: &PreparedReference) -> f32 {
        let c = &self.info.config;
        let (n, d, h) = (c.nodes, c.model_dim, c.heads);
        let dh = d / h;
        let m = r.k.len() / d;
        // mean over query nodes of softmax(q kᵀ) v, per head: the mean of the
        // attention rows first, then one product with v.
        let mut pooled = vec![0.0f32; d];
        let mut row = vec![0.0f32; m];
        let mut mean_att = vec![0.0f32; m];
        for head in 0..h {
            mean_att.iter_mut().for_each(|v| *v = 0.0);
            for i in 0..n {
                let qi = &q.q[i * d + head * dh..i * d + (head + 1) * dh];
                let mut top = f32::NEG_INFINITY;
                for (j, s) in row.iter_mut().enumerate() {
                    let kj = &r.k[j * d + head * dh..j * d + (head + 1) * dh];
                    *s = qi.iter().zip(kj).map(|(a, b)| a * b).sum();
                    top = top.max(*s);
                }
                let mut total = 0.0;
                for s in row.iter_mut() {
                    *s = (*s - top).exp();
                    total += *s;
                }
                for (a, s) in mean_att.iter_mut().zip(&row) {
                    *a += s / total;
                }
            }
            for (j, a) in mean_att.iter().enumerate() {
                let w = a / n as f32;
                let vj = &r.v[j * d + head * dh..j * d + (head + 1) * dh];
                for (p, v) in pooled[head * dh..(head + 1) * dh].iter_mut().zip(vj) {
                    *p += w * v;
                }
            }
        }
        let o = self.wo.apply(&pooled);
        let mut hidden = self.fc1.apply(&o);
        hidden.iter_mut().for_each(|v| *v = v.max(0.0));
        sigmoid(self.fc2.apply(&hidden)[0])
    }
}

/// int8 codes with one f32 scale in front (little-endian).
pub fn quantize(x: &[f32]) -> Vec<u8> {
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = if peak > 0.0 { peak / 127.0 } else { 1.0 };
    let mut out = Vec::with_capacity(4 + x.len());
    out.extend_from_slice(&scale.to_le_bytes());
    out.extend(x.iter().map(|v| ((v / scale).round().clamp(-127.0, 127.0) as i8) as u8));
    out
}

/// Inverse of [`quantize`].
pub fn dequantize(bytes: &[u8]) -> Vec<f32> {
    let scale = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    bytes[4..].iter().map(|&b| (b as i8) as f32 * scale).collect()
}

/// Saves a module's inference copy as f16 safetensors, with its info as JSON.
pub fn save_model(model: &RerankerModel, info: &RerankerInfo, weights: &Path) -> Result<(), RerankError> {
    let io = |path: &Path, err| RerankError::Io {
        path: path.to_path_buf(),
        err,
    };
    if let Some(dir) = weights.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
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
        .map_err(|e| RerankError::Model(format!("cannot save weights: {e}")))?;
    card::save(weights, info).map_err(|e| io(&card::path_of(weights), e))?;
    file.commit().map_err(|e| io(weights, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn plain_scoring_equals_the_burn_module() {
        let cfg = RerankerConfig::default();
        let r = Reranker::random(&cfg, 3);
        let device = Device::flex();
        let len = cfg.node_dim * cfg.nodes;
        for seed in 0..3 {
            let (qa, ra) = (nodes(seed, len), nodes(seed + 100, len));
            // Burn path on unquantised stored nodes.
            let rows = |x: &[f32]| {
                Tensor::<3>::from_data(TensorData::new(r.node_rows(x), [1, cfg.nodes, cfg.node_dim]), &device)
            };
            let logit = to_vec(r.module().forward(rows(&qa), rows(&ra)))[0];
            let stored = quantize(&r.store.apply(&r.node_rows(&ra)));
            let plain = r.score(&r.prepare_query(&qa).unwrap(), &r.prepare_reference(&stored).unwrap());
            assert!(
                (plain - sigmoid(logit)).abs() < 2e-3,
                "plain {plain} vs burn {} (int8 storage only)",
                sigmoid(logit)
            );
        }
    }

    #[test]
    fn int8_storage_round_trips_within_half_a_step() {
        let x = nodes(9, 512);
        let q = quantize(&x);
        assert_eq!(q.len(), 4 + 512);
        let y = dequantize(&q);
        let step = x.iter().fold(0.0f32, |m, v| m.max(v.abs())) / 127.0;
        assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() <= step * 0.5 + 1e-6));
        assert!(dequantize(&quantize(&[0.0; 8])).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn weights_round_trip_through_safetensors() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = RerankerConfig::default();
        let r = Reranker::random(&cfg, 5);
        let path = dir.path().join("rerank.safetensors");
        r.save(&path).unwrap();
        let back = Reranker::load(&path).unwrap();
        let len = cfg.node_dim * cfg.nodes;
        let (qa, ra) = (nodes(1, len), nodes(2, len));
        let s1 = r.score(
            &r.prepare_query(&qa).unwrap(),
            &r.prepare_reference(&r.store(&ra).unwrap()).unwrap(),
        );
        let s2 = back.score(
            &back.prepare_query(&qa).unwrap(),
            &back.prepare_reference(&back.store(&ra).unwrap()).unwrap(),
        );
        assert!(
            (s1 - s2).abs() < 5e-3,
            "f16 storage changes the score little: {s1} vs {s2}"
        );
        assert!(r.prepare_query(&qa[..10]).is_err());
        assert!(r.prepare_reference(&[0u8; 3]).is_err());
    }
}
