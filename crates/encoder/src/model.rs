//! The graph encoder: node embedding → stem → four stages of graph blocks
//! (Grapher + FFN) with strided downsampling → node matrix → projection,
//! mean pooling and an MLP head → L2-normalised fingerprint.
//!
//! Grapher (ViG / GraFPrint, as the papers intend it): 1×1 conv + BN; a k-NN
//! graph rebuilt on the L2-normalised node features; max-relative graph
//! convolution `max_j (x_j − x_i)`; channels interleaved `[x0, m0, x1, m1, …]`;
//! grouped 1×1 conv (4 groups) + BN + ReLU; 1×1 conv back + BN; residual.
//! FFN: 1×1 conv to 4C + BN + ReLU, 1×1 conv back + BN, residual. Both
//! residual branches use stochastic depth while training.

use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig1d};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::{elu, leaky_relu, relu};

use crate::config::EncoderConfig;
use crate::knn::knn_indices;

/// L2-normalises along `dim`.
pub fn l2_normalize<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let n = x.clone().square().sum_dim(dim).sqrt().clamp_min(1e-12);
    x / n
}

/// Keeps each example's residual branch with probability `1 − rate` (scaled),
/// only while training.
fn drop_path(x: Tensor<3>, rate: f64) -> Tensor<3> {
    if rate <= 0.0 || !x.device().is_autodiff() {
        return x;
    }
    let [b, _, _] = x.dims();
    let keep = 1.0 - rate;
    let mask = Tensor::<3>::random([b, 1, 1], Distribution::Bernoulli(keep), &x.device());
    x * mask.div_scalar(keep)
}

fn conv1x1(cin: usize, cout: usize, bias: bool, device: &Device) -> Conv1d {
    Conv1dConfig::new(cin, cout, 1).with_bias(bias).init(device)
}

/// The k-NN graph of each example's nodes, on L2-normalised features:
/// neighbour indices into the flattened `(B·N)` node list. No gradient flows
/// into the graph (only into the gathered features).
pub fn knn_graph(x: &Tensor<3>, k: usize, dilation: usize) -> Tensor<1, Int> {
    let [b, _c, n] = x.dims();
    let xn = l2_normalize(x.clone().inner(), 1);
    let inner = xn.clone().swap_dims(1, 2).matmul(xn); // (B, N, N) cosine similarities
    // Squared distance of unit vectors: 2 − 2·cos; ranking by −cos is the same.
    let dist: Vec<f32> = inner
        .neg()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data");
    let idx = knn_indices(&dist, b, n, n, k, dilation);
    Tensor::<1, Int>::from_data(TensorData::new(idx, [b * n * k]), &x.device())
}

/// Max-relative graph convolution's aggregation: `max_j(x_j) − x_i` over the
/// `k` neighbours of each node (equal to `max_j(x_j − x_i)`), shape (B, C, N).
pub fn max_relative(x: Tensor<3>, idx: Tensor<1, Int>, k: usize) -> Tensor<3> {
    let [b, c, n] = x.dims();
    let flat = x.swap_dims(1, 2).reshape([b * n, c]);
    let neighbours = flat.clone().select(0, idx).reshape([b, n, k, c]);
    let mx = neighbours.max_dim(2).reshape([b, n, c]);
    (mx - flat.reshape([b, n, c])).swap_dims(1, 2)
}

/// Grapher block.
#[derive(Module, Debug)]
pub struct Grapher {
    fc1: Conv1d,
    bn1: BatchNorm,
    graph_conv: Conv1d,
    bn_graph: BatchNorm,
    fc2: Conv1d,
    bn2: BatchNorm,
    k: usize,
    dilation: usize,
    drop_path: f64,
}

impl Grapher {
    fn new(c: usize, k: usize, dilation: usize, drop_path: f64, device: &Device) -> Self {
        Self {
            fc1: conv1x1(c, c, true, device),
            bn1: BatchNormConfig::new(c).init(device),
            graph_conv: Conv1dConfig::new(2 * c, 2 * c, 1).with_groups(4).init(device),
            bn_graph: BatchNormConfig::new(2 * c).init(device),
            fc2: conv1x1(2 * c, c, true, device),
            bn2: BatchNormConfig::new(c).init(device),
            k,
            dilation,
            drop_path,
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, c, n] = x.dims();
        let shortcut = x.clone();
        let h = self.bn1.forward(self.fc1.forward(x));
        let idx = knn_graph(&h, self.k, self.dilation);
        let m = max_relative(h.clone(), idx, self.k);
        let interleaved = Tensor::stack::<4>(vec![h, m], 2).reshape([b, 2 * c, n]);
        let g = relu(self.bn_graph.forward(self.graph_conv.forward(interleaved)));
        let out = self.bn2.forward(self.fc2.forward(g));
        drop_path(out, self.drop_path) + shortcut
    }
}

/// Feed-forward block.
#[derive(Module, Debug)]
pub struct Ffn {
    fc1: Conv1d,
    bn1: BatchNorm,
    fc2: Conv1d,
    bn2: BatchNorm,
    drop_path: f64,
}

impl Ffn {
    fn new(c: usize, drop_path: f64, device: &Device) -> Self {
        Self {
            fc1: conv1x1(c, 4 * c, true, device),
            bn1: BatchNormConfig::new(4 * c).init(device),
            fc2: conv1x1(4 * c, c, true, device),
            bn2: BatchNormConfig::new(c).init(device),
            drop_path,
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = relu(self.bn1.forward(self.fc1.forward(x.clone())));
        let h = self.bn2.forward(self.fc2.forward(h));
        drop_path(h, self.drop_path) + x
    }
}

/// One graph block: Grapher then FFN.
#[derive(Module, Debug)]
pub struct GraphBlock {
    grapher: Grapher,
    ffn: Ffn,
}

/// Strided downsampling between stages: halves the nodes.
#[derive(Module, Debug)]
pub struct Downsample {
    conv: Conv1d,
    bn: BatchNorm,
}

impl Downsample {
    fn new(cin: usize, cout: usize, device: &Device) -> Self {
        Self {
            conv: Conv1dConfig::new(cin, cout, 3)
                .with_stride(2)
                .with_padding(PaddingConfig1d::Explicit(1, 1))
                .init(device),
            bn: BatchNormConfig::new(cout).init(device),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        relu(self.bn.forward(self.conv.forward(x)))
    }
}

/// One stage: optional downsampling, then its graph blocks.
#[derive(Module, Debug)]
pub struct Stage {
    down: Option<Downsample>,
    blocks: Vec<GraphBlock>,
}

/// Fingerprints and node matrices of a batch of segments.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// L2-normalised fingerprints, (B, out_dim).
    pub fingerprint: Tensor<2>,
    /// Final node matrices, (B, node_dim, output_nodes): the re-ranker's input.
    pub nodes: Tensor<3>,
}

/// The encoder network.
#[derive(Module, Debug)]
pub struct EncoderModel {
    patch: Conv2d,
    stem: Conv1d,
    stem_bn: BatchNorm,
    stages: Vec<Stage>,
    proj: Conv1d,
    head1: Linear,
    head2: Linear,
    n_mels: usize,
    n_frames: usize,
}

impl EncoderModel {
    /// A freshly initialised encoder on `device`.
    pub fn new(cfg: &EncoderConfig, device: &Device) -> Self {
        let total_blocks: usize = if cfg.graph { cfg.blocks.iter().sum() } else { 0 };
        let mut block_index = 0usize;
        let mut layer_index = 0usize;
        let mut stages = Vec::new();
        for (s, (&c, &nb)) in cfg.channels.iter().zip(&cfg.blocks).enumerate() {
            let down = (s > 0).then(|| {
                layer_index += 1;
                Downsample::new(cfg.channels[s - 1], c, device)
            });
            let mut blocks = Vec::new();
            if cfg.graph {
                for _ in 0..nb {
                    let rate = if total_blocks > 1 {
                        cfg.drop_path * block_index as f64 / (total_blocks - 1) as f64
                    } else {
                        0.0
                    };
                    // Dilation grows with depth as NeuralSampleID intends: 1, 2, then 3.
                    let dilation = (layer_index / 4 + 1).min(3);
                    blocks.push(GraphBlock {
                        grapher: Grapher::new(c, cfg.k, dilation, rate, device),
                        ffn: Ffn::new(c, rate, device),
                    });
                    block_index += 1;
                    layer_index += 1;
                }
            }
            stages.push(Stage { down, blocks });
        }
        let node_dim = cfg.node_dim();
        Self {
            patch: Conv2dConfig::new([3, cfg.node_channels], cfg.patch)
                .with_stride(cfg.patch)
                .init(device),
            stem: conv1x1(cfg.node_channels, cfg.channels[0], false, device),
            stem_bn: BatchNormConfig::new(cfg.channels[0]).init(device),
            stages,
            proj: conv1x1(node_dim, cfg.embed_dim, true, device),
            head1: LinearConfig::new(cfg.embed_dim, cfg.head_hidden).init(device),
            head2: LinearConfig::new(cfg.head_hidden, cfg.out_dim).init(device),
            n_mels: cfg.n_mels,
            n_frames: cfg.n_frames,
        }
    }

    /// Encodes a batch of normalised log-mel segments, (B, n_mels, n_frames).
    pub fn forward(&self, x: Tensor<3>) -> EncoderOutput {
        let [b, f, t] = x.dims();
        let device = x.device();
        // Node embedding input: [time coordinate, frequency coordinate, spectrum].
        let time = Tensor::<1>::from_data(
            TensorData::new(
                (0..t).map(|i| i as f32 / (t.max(2) - 1) as f32).collect::<Vec<_>>(),
                [t],
            ),
            &device,
        )
        .reshape([1, 1, 1, t])
        .expand([b, 1, f, t]);
        let freq = Tensor::<1>::from_data(
            TensorData::new(
                (0..f).map(|i| i as f32 / (f.max(2) - 1) as f32).collect::<Vec<_>>(),
                [f],
            ),
            &device,
        )
        .reshape([1, 1, f, 1])
        .expand([b, 1, f, t]);
        let input = Tensor::cat(vec![time, freq, x.reshape([b, 1, f, t])], 1);
        let patches = relu(self.patch.forward(input)); // (B, node_channels, F/4, T/8)
        let [_, pc, ph, pw] = patches.dims();
        let nodes = patches.reshape([b, pc, ph * pw]); // nodes = f_idx · W + t_idx
        let mut h = leaky_relu(self.stem_bn.forward(self.stem.forward(nodes)), 0.2);
        for stage in &self.stages {
            if let Some(d) = &stage.down {
                h = d.forward(h);
            }
            for block in &stage.blocks {
                h = block.ffn.forward(block.grapher.forward(h));
            }
        }
        let pooled = self.proj.forward(h.clone()).mean_dim(2); // (B, E, 1)
        let [_, e, _] = pooled.dims();
        let z = self.head2.forward(elu(self.head1.forward(pooled.reshape([b, e])), 1.0));
        EncoderOutput {
            fingerprint: l2_normalize(z, 1),
            nodes: h,
        }
    }

    /// Segment shape this model reads.
    pub fn input_shape(&self) -> (usize, usize) {
        (self.n_mels, self.n_frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::nt_xent;
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::Gradients;

    fn batch(b: usize, cfg: &EncoderConfig, device: &Device, seed: u64) -> Tensor<3> {
        device.seed(seed);
        Tensor::<3>::random([b, cfg.n_mels, cfg.n_frames], Distribution::Uniform(0.0, 1.0), device)
    }

    #[test]
    fn output_shapes_and_unit_fingerprints() {
        let cfg = EncoderConfig::small();
        let device = Device::flex();
        let model = EncoderModel::new(&cfg, &device).valid();
        let out = model.forward(batch(3, &cfg, &device, 1));
        assert_eq!(out.fingerprint.dims(), [3, cfg.out_dim]);
        assert_eq!(out.nodes.dims(), [3, cfg.node_dim(), cfg.output_nodes()]);
        assert_eq!(cfg.output_nodes(), 32);
        let norms: Vec<f32> = out
            .fingerprint
            .square()
            .sum_dim(1)
            .sqrt()
            .into_data()
            .try_into_vec()
            .unwrap();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4), "{norms:?}");
    }

    /// Collects every float parameter id of a module with its gradient's norm.
    struct GradCheck<'a> {
        grads: &'a Gradients,
        seen: usize,
        zero: Vec<String>,
    }

    impl ModuleVisitor for GradCheck<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            // BatchNorm running statistics are visited too, but they are buffers.
            if !param.val().is_require_grad() {
                return;
            }
            self.seen += 1;
            let norm = param
                .val()
                .grad(self.grads)
                .map(|g| g.abs().sum().into_scalar::<f32>())
                .unwrap_or(0.0);
            if norm <= 0.0 || norm.is_nan() {
                self.zero.push(format!("{:?} {:?}", param.id, param.val().dims()));
            }
        }
    }

    #[test]
    fn gradients_reach_every_graph_block_parameter() {
        let cfg = EncoderConfig::small();
        let device = Device::flex().autodiff();
        let model = EncoderModel::new(&cfg, &device);
        let x1 = batch(4, &cfg, &device, 2);
        let x2 = (x1.clone() + batch(4, &cfg, &device, 3).mul_scalar(0.1)).clamp(0.0, 1.0);
        let loss = nt_xent(model.forward(x1).fingerprint, model.forward(x2).fingerprint, 0.05, None);
        let grads = loss.backward();
        for (s, stage) in model.stages.iter().enumerate() {
            for (i, block) in stage.blocks.iter().enumerate() {
                let mut check = GradCheck {
                    grads: &grads,
                    seen: 0,
                    zero: vec![],
                };
                block.visit(&mut check);
                // Grapher: 3 convs (weight + bias) + 3 BNs (γ, β); FFN: 2 convs + 2 BNs.
                assert_eq!(check.seen, 20, "stage {s} block {i}: trainable tensors");
                assert!(
                    check.zero.is_empty(),
                    "stage {s} block {i}: no gradient for {:?}",
                    check.zero
                );
            }
        }
        let g = model.patch.weight.val().grad(&grads).unwrap();
        assert!(g.abs().sum().into_scalar::<f32>() > 0.0);
    }

    #[test]
    fn without_graph_blocks_the_network_is_the_published_one() {
        let with = EncoderConfig::small();
        let without = EncoderConfig {
            graph: false,
            ..with.clone()
        };
        let device = Device::flex();
        let a = EncoderModel::new(&with, &device);
        let b = EncoderModel::new(&without, &device);
        assert!(
            b.num_params() < a.num_params() / 2,
            "{} vs {}",
            b.num_params(),
            a.num_params()
        );
        assert!(b.stages.iter().all(|s| s.blocks.is_empty()));
        let out = b.valid().forward(batch(2, &without, &device, 4));
        assert_eq!(out.nodes.dims(), [2, 128, 32]);
    }

    #[test]
    fn full_size_is_about_the_published_parameter_count() {
        // Counted on the meta device would be nicer; a real init of the full
        // model on the CPU takes a moment but is the honest count.
        let cfg = EncoderConfig::full();
        let m = EncoderModel::new(&cfg, &Device::flex());
        let n = m.num_params();
        assert!((15_000_000..22_000_000).contains(&n), "{n} parameters");
    }
}
