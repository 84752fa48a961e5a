//! GraphSAGE (Hamilton et al. 2017) with the mean aggregator, in burn:
//! `h'ᵢ = ReLU(W_self hᵢ + W_neigh · mean_{j ∈ N(i)} hⱼ)`, one or two layers,
//! then a linear classifier. With `graph = false` the neighbour term is
//! dropped and the same network is the MLP baseline.
//!
//! Training is full-batch node classification: every node's features pass
//! through the network, the loss is taken on the labelled (training) nodes.
//! The aggregation is a dense row-normalised adjacency (n × n): libraries of
//! labelled tracks are thousands of nodes, not millions.

use burn::module::Module;
#[cfg(any(feature = "train", test))]
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
#[cfg(any(feature = "train", test))]
use burn::optim::decay::WeightDecayConfig;
#[cfg(any(feature = "train", test))]
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};

use crate::GenreConfig;

/// One GraphSAGE layer.
#[derive(Module, Debug)]
pub struct SageLayer {
    own: Linear,
    /// Absent in the MLP baseline.
    neigh: Option<Linear>,
}

/// GraphSAGE layers and the classifier.
#[derive(Module, Debug)]
pub struct SageModel {
    layers: Vec<SageLayer>,
    out: Linear,
    dropout: Dropout,
}

impl SageModel {
    /// A fresh network: `inputs` features → `cfg.hidden` (× `cfg.layers`) → `classes`.
    pub fn new(inputs: usize, classes: usize, cfg: &GenreConfig, graph: bool, device: &Device) -> Self {
        let mut layers = Vec::new();
        let mut d = inputs;
        for _ in 0..cfg.layers.max(1) {
            layers.push(SageLayer {
                own: LinearConfig::new(d, cfg.hidden).init(device),
                neigh: graph.then(|| LinearConfig::new(d, cfg.hidden).with_bias(false).init(device)),
            });
            d = cfg.hidden;
        }
        Self {
            layers,
            out: LinearConfig::new(d, classes).init(device),
            dropout: DropoutConfig::new(cfg.dropout).init(),
        }
    }

    /// Logits `(n, classes)` of every node: `x` is `(n, features)`, `agg` the
    /// row-normalised adjacency `(n, n)` (unused without the graph).
    pub fn forward(&self, x: Tensor<2>, agg: &Tensor<2>) -> Tensor<2> {
        let mut h = self.dropout.forward(x);
        for l in &self.layers {
            let own = l.own.forward(h.clone());
            h = match &l.neigh {
                Some(n) => relu(own + n.forward(agg.clone().matmul(h))),
                None => relu(own),
            };
            h = self.dropout.forward(h);
        }
        self.out.forward(h)
    }
}

/// The row-normalised adjacency of a directed neighbour list (a node without
/// neighbours aggregates nothing).
pub fn adjacency(neighbours: &[Vec<usize>], device: &Device) -> Tensor<2> {
    let n = neighbours.len();
    let mut a = vec![0.0f32; n * n];
    for (i, ns) in neighbours.iter().enumerate() {
        for &j in ns {
            a[i * n + j] += 1.0 / ns.len() as f32;
        }
    }
    Tensor::<2>::from_data(TensorData::new(a, [n, n]), device)
}

fn matrix(rows: &[Vec<f32>], device: &Device) -> Tensor<2> {
    let d = rows.first().map_or(0, Vec::len);
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::<2>::from_data(TensorData::new(flat, [rows.len(), d]), device)
}

#[cfg(any(feature = "train", test))]
/// Trains on the nodes `train` (with `labels[i]` for those) of the graph
/// `neighbours` over `x`; returns the inference copy.
pub fn train(
    x: &[Vec<f32>],
    neighbours: &[Vec<usize>],
    labels: &[usize],
    train: &[usize],
    classes: usize,
    cfg: &GenreConfig,
    graph: bool,
) -> SageModel {
    let device = Device::flex().autodiff();
    device.seed(cfg.seed);
    let d = x.first().map_or(0, Vec::len);
    let mut model = SageModel::new(d, classes, cfg, graph, &device);
    let mut optim = AdamConfig::new()
        .with_weight_decay(Some(WeightDecayConfig::new(cfg.weight_decay as f32)))
        .init();
    let xt = matrix(x, &device);
    let agg = adjacency(neighbours, &device);
    let idx: Vec<i64> = train.iter().map(|&i| i as i64).collect();
    let target: Vec<i64> = train.iter().map(|&i| labels[i] as i64).collect();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [train.len()]), &device);
    let target = Tensor::<1, Int>::from_data(TensorData::new(target, [train.len()]), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    for _ in 0..cfg.epochs {
        let logits = model.forward(xt.clone(), &agg).select(0, idx.clone());
        let loss = loss_fn.forward(logits, target.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(cfg.lr, model, grads);
    }
    model.valid()
}

/// Class probabilities `(n × classes)` of every node.
pub fn predict(model: &SageModel, x: &[Vec<f32>], neighbours: &[Vec<usize>]) -> Vec<Vec<f32>> {
    let device = Device::flex();
    let logits = model.forward(matrix(x, &device), &adjacency(neighbours, &device));
    let [n, c] = logits.dims();
    let p: Vec<f32> = softmax(logits, 1)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data");
    (0..n).map(|i| p[i * c..(i + 1) * c].to_vec()).collect()
}
