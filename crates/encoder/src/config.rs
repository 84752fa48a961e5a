//! Encoder sizes: one config for the layer sizes, with the published full
//! size and a small one that trains on a CPU.

use serde::{Deserialize, Serialize};

/// Layer sizes of the graph encoder (see `neuralsampleid-spec.md` §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncoderConfig {
    /// Mel bands of an input segment.
    pub n_mels: usize,
    /// Frames of an input segment.
    pub n_frames: usize,
    /// Patch size (mel bands, frames) of the node embedding: 4 × 8 → 16 × 16 = 256 nodes.
    pub patch: [usize; 2],
    /// Channels of the node embedding convolution.
    pub node_channels: usize,
    /// Channels of the four stages.
    pub channels: Vec<usize>,
    /// Graph blocks (Grapher + FFN) per stage.
    pub blocks: Vec<usize>,
    /// Neighbours of each node in the k-NN graph.
    pub k: usize,
    /// Whether the graph blocks run. `false` gives the network the published
    /// NeuralSampleID code actually ran (its graph blocks are bypassed, §2.2):
    /// node embedding, stem, strided convolutions, head.
    pub graph: bool,
    /// Channels of the 1×1 projection before pooling.
    pub embed_dim: usize,
    /// Hidden units of the projector MLP.
    pub head_hidden: usize,
    /// Dimension of the fingerprint.
    pub out_dim: usize,
    /// Stochastic-depth rate of the last block (linear ramp from 0).
    pub drop_path: f64,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self::small()
    }
}

impl EncoderConfig {
    /// The published size: channels 64/128/256/512, blocks 2/2/6/2, embedding
    /// 1024, projector 4096 → 128 (about 17 M parameters with real graph blocks).
    pub fn full() -> Self {
        Self {
            n_mels: 64,
            n_frames: 128,
            patch: [4, 8],
            node_channels: 8,
            channels: vec![64, 128, 256, 512],
            blocks: vec![2, 2, 6, 2],
            k: 5,
            graph: true,
            embed_dim: 1024,
            head_hidden: 4096,
            out_dim: 128,
            drop_path: 0.1,
        }
    }

    /// A small encoder that trains on a 2-core CPU: channels 32/64/96/128,
    /// blocks 1/1/2/1, embedding 256, projector 512 → 128.
    pub fn small() -> Self {
        Self {
            channels: vec![32, 64, 96, 128],
            blocks: vec![1, 1, 2, 1],
            embed_dim: 256,
            head_hidden: 512,
            drop_path: 0.05,
            ..Self::full()
        }
    }

    /// Nodes after the node embedding (256 by default).
    pub fn input_nodes(&self) -> usize {
        (self.n_mels / self.patch[0]) * (self.n_frames / self.patch[1])
    }

    /// Nodes of the final node matrix (halved by each downsampling: 32).
    pub fn output_nodes(&self) -> usize {
        let mut n = self.input_nodes();
        for _ in 1..self.channels.len() {
            n = n.div_ceil(2);
        }
        n
    }

    /// Channels of the final node matrix.
    pub fn node_dim(&self) -> usize {
        *self.channels.last().unwrap_or(&0)
    }

    /// Checks that the sizes fit together.
    pub fn validate(&self) -> Result<(), String> {
        if self.channels.is_empty() || self.channels.len() != self.blocks.len() {
            return Err("channels and blocks need one entry per stage".into());
        }
        if !self.n_mels.is_multiple_of(self.patch[0]) || !self.n_frames.is_multiple_of(self.patch[1]) {
            return Err("the patch size must divide the segment".into());
        }
        if self.k == 0 || self.out_dim == 0 || self.embed_dim == 0 {
            return Err("k, embed_dim and out_dim must be > 0".into());
        }
        if self.channels.iter().any(|c| c % 2 != 0) {
            return Err("stage channels must be even (grouped convolutions)".into());
        }
        Ok(())
    }
}
