//! The multi-head cross-attention (MHCA) classifier of NeuralSampleID §4, as
//! a burn module for training.
//!
//! Query-segment nodes attend to candidate reference-segment nodes; the
//! attended outputs are averaged over the query nodes and an MLP gives the
//! logit of "the same music". One change from the published layer: the
//! reference nodes first pass through a learned projection to `store_dim`
//! channels, because that projection (not the full node matrix) is what the
//! index stores for every reference segment. The query side keeps all
//! channels. Positional embeddings are learned (published: a fixed random
//! buffer) and added on both sides.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{relu, softmax};

use crate::RerankerConfig;

/// The classifier's weights.
#[derive(Module, Debug)]
pub struct RerankerModel {
    /// Reference nodes: `node_dim` → `store_dim` (what the index keeps).
    pub store: Linear,
    /// Positional embedding of query nodes, `nodes × node_dim`.
    pub q_pos: Param<Tensor<2>>,
    /// Positional embedding of stored reference nodes, `nodes × store_dim`.
    pub r_pos: Param<Tensor<2>>,
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    pub wo: Linear,
    pub fc1: Linear,
    pub dropout: Dropout,
    pub fc2: Linear,
    heads: usize,
}

impl RerankerModel {
    /// A freshly initialised classifier.
    pub fn new(cfg: &RerankerConfig, device: &Device) -> Self {
        let pos = |n: usize, d: usize| {
            Param::from_tensor(Tensor::<2>::random([n, d], Distribution::Normal(0.0, 0.02), device))
        };
        Self {
            store: LinearConfig::new(cfg.node_dim, cfg.store_dim).init(device),
            q_pos: pos(cfg.nodes, cfg.node_dim),
            r_pos: pos(cfg.nodes, cfg.store_dim),
            wq: LinearConfig::new(cfg.node_dim, cfg.model_dim).init(device),
            wk: LinearConfig::new(cfg.store_dim, cfg.model_dim).init(device),
            wv: LinearConfig::new(cfg.store_dim, cfg.model_dim).init(device),
            wo: LinearConfig::new(cfg.model_dim, cfg.model_dim).init(device),
            fc1: LinearConfig::new(cfg.model_dim, cfg.hidden).init(device),
            dropout: DropoutConfig::new(cfg.dropout).init(),
            fc2: LinearConfig::new(cfg.hidden, 1).init(device),
            heads: cfg.heads,
        }
    }

    /// Reference nodes `(B, nodes, node_dim)` → stored form `(B, nodes, store_dim)`.
    pub fn project(&self, reference: Tensor<3>) -> Tensor<3> {
        self.store.forward(reference)
    }

    /// Logits `(B)` of query nodes `(B, nodes, node_dim)` against stored
    /// reference nodes `(B, nodes, store_dim)`.
    pub fn forward_stored(&self, query: Tensor<3>, stored: Tensor<3>) -> Tensor<1> {
        let [b, n, _] = query.dims();
        let q = self.wq.forward(query + self.q_pos.val().unsqueeze::<3>());
        let r = stored + self.r_pos.val().unsqueeze::<3>();
        let k = self.wk.forward(r.clone());
        let v = self.wv.forward(r);
        let [_, m, d] = k.dims();
        let h = self.heads;
        let dh = d / h;
        let split = |x: Tensor<3>, len: usize| x.reshape([b, len, h, dh]).swap_dims(1, 2); // (B, H, len, dh)
        let (q, k, v) = (split(q, n), split(k, m), split(v, m));
        let att = softmax(q.matmul(k.swap_dims(2, 3)).div_scalar((dh as f64).sqrt()), 3);
        let o = att.matmul(v).swap_dims(1, 2).reshape([b, n, d]);
        let pooled = self.wo.forward(o).mean_dim(1).reshape([b, d]);
        let hidden = self.dropout.forward(relu(self.fc1.forward(pooled)));
        self.fc2.forward(hidden).reshape([b])
    }

    /// Logits `(B)` of query nodes against full reference nodes (both `(B, nodes, node_dim)`).
    pub fn forward(&self, query: Tensor<3>, reference: Tensor<3>) -> Tensor<1> {
        self.forward_stored(query, self.project(reference))
    }
}
