//! `sampleid train reranker`: trains the cross-attention classifier of the
//! second search stage on the encoder's node matrices, with the encoder frozen.
//!
//! Data: pairs made exactly as for the encoder (stem subsets, pitch/tempo,
//! mixing under other music, noise, reverb, band-pass; plus a share of
//! audio-identification pairs), encoded once and kept in the run directory
//! (`views-train.bin`, `views-valid.bin`) so that classifiers of other sizes
//! can be trained on the same pairs. The query side of every example is the
//! transformed view and the reference side the clean one, as at search time.
//!
//! Hard negatives: for every pair, the `negatives` clean views of *other*
//! pairs in its group whose fingerprints are most similar to its transformed
//! view (never its own positive; the published code could pick it). One
//! positive to `negatives` hard + `random_negatives` random negatives (1:3
//! as published), each set's BCE averaged on its own as
//! published. Validation: AUROC and the false-accept rate at 0.5 on held-out
//! tracks, scored the way queries are (int8 stored reference nodes).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;
use sampleid_corpus::Split;
use sampleid_encoder::Encoder;
use sampleid_features::FrontendConfig;
use sampleid_fsio::AtomicFile;
use sampleid_rerank::{Reranker, RerankerConfig, RerankerInfo, RerankerModel};
use sampleid_transform::Rng;
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::pairs::{PairConfig, PairMaker, Pool};

/// Settings of a re-ranker run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RerankerTraining {
    pub reranker: RerankerConfig,
    pub pairs: PairConfig,
    /// Share of audio-identification pairs (no pitch/tempo change, noise).
    pub audio_id_share: f64,
    /// Training pairs (each gives 1 positive and `negatives` negatives).
    pub train_pairs: usize,
    /// Held-out pairs from the validation split.
    pub valid_pairs: usize,
    /// Hard negatives are mined within groups of this many pairs.
    pub mine_group: usize,
    /// Hard negatives per positive (published: 3 hard ones).
    pub negatives: usize,
    /// Extra random negatives per positive, drawn anew every epoch from all
    /// pairs. Without them the classifier only ever saw negatives from its own
    /// mining group and accepted 67 % of random cross-group negatives (epoch 1).
    pub random_negatives: usize,
    /// Passes over the training pairs (published 5).
    pub epochs: usize,
    /// Pairs per step (published 32).
    pub batch_size: usize,
    /// Adam learning rate (published 1e-4, no schedule).
    pub lr: f64,
    pub seed: u64,
}

impl Default for RerankerTraining {
    fn default() -> Self {
        Self {
            reranker: RerankerConfig::default(),
            pairs: PairConfig::default(),
            audio_id_share: 0.3,
            train_pairs: 8192,
            valid_pairs: 1024,
            mine_group: 256,
            negatives: 2,
            random_negatives: 1,
            epochs: 8,
            batch_size: 32,
            lr: 3e-4,
            seed: 7,
        }
    }
}

/// Encoded pairs: fingerprints and node matrices of both views.
#[derive(Debug, Clone, Default)]
pub struct Views {
    pub n: usize,
    pub fp_dim: usize,
    pub node_len: usize,
    /// Clean (reference-side) view: `n × fp_dim`, `n × node_len`.
    pub fp_ref: Vec<f32>,
    pub nodes_ref: Vec<f32>,
    /// Transformed (query-side) view.
    pub fp_query: Vec<f32>,
    pub nodes_query: Vec<f32>,
    /// Per pair, the indices of its hard negatives (reference views).
    pub negatives: Vec<Vec<usize>>,
}

impl Views {
    fn node<'a>(&self, side: &'a [f32], i: usize) -> &'a [f32] {
        &side[i * self.node_len..(i + 1) * self.node_len]
    }
    fn fp<'a>(&self, side: &'a [f32], i: usize) -> &'a [f32] {
        &side[i * self.fp_dim..(i + 1) * self.fp_dim]
    }

    fn write(&self, path: &Path, tag: &str) -> Result<(), TrainError> {
        let mut f = AtomicFile::create(path).map_err(|e| TrainError::io(path, e))?;
        let header =
            serde_json::json!({"tag": tag, "n": self.n, "fp_dim": self.fp_dim, "node_len": self.node_len}).to_string();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for side in [&self.fp_ref, &self.nodes_ref, &self.fp_query, &self.nodes_query] {
            for v in side.iter() {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        f.write_all(&bytes).map_err(|e| TrainError::io(path, e))?;
        f.commit().map_err(|e| TrainError::io(path, e))
    }

    /// Reads views written with the same `tag`; `None` if absent or different.
    fn read(path: &Path, tag: &str) -> Result<Option<Self>, TrainError> {
        let Ok(mut f) = std::fs::File::open(path) else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).map_err(|e| TrainError::io(path, e))?;
        if bytes.len() < 8 {
            return Ok(None);
        }
        let hl = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        let Some(header) = bytes.get(8..8 + hl) else {
            return Ok(None);
        };
        let h: serde_json::Value = serde_json::from_slice(header).map_err(|e| TrainError::Data(e.to_string()))?;
        if h["tag"] != tag {
            return Ok(None);
        }
        let get = |k: &str| h[k].as_u64().unwrap_or(0) as usize;
        let (n, fp_dim, node_len) = (get("n"), get("fp_dim"), get("node_len"));
        let body: Vec<f32> = bytes[8 + hl..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        if body.len() != 2 * n * (fp_dim + node_len) {
            return Ok(None);
        }
        let mut at = 0;
        let mut take = |len: usize| {
            let v = body[at..at + len].to_vec();
            at += len;
            v
        };
        Ok(Some(Self {
            n,
            fp_dim,
            node_len,
            fp_ref: take(n * fp_dim),
            nodes_ref: take(n * node_len),
            fp_query: take(n * fp_dim),
            nodes_query: take(n * node_len),
            negatives: Vec::new(),
        }))
    }

    /// Hard negatives within groups of `group` pairs: the clean views of
    /// other pairs most similar to each pair's transformed view.
    fn mine(&mut self, group: usize, k: usize) {
        self.negatives = (0..self.n)
            .map(|i| {
                let g0 = i / group * group;
                let g1 = (g0 + group).min(self.n);
                let q = self.fp(&self.fp_query, i);
                let mut sims: Vec<(usize, f32)> = (g0..g1)
                    .filter(|&j| j != i)
                    .map(|j| (j, q.iter().zip(self.fp(&self.fp_ref, j)).map(|(a, b)| a * b).sum()))
                    .collect();
                sims.sort_by(|a, b| b.1.total_cmp(&a.1));
                sims.into_iter().take(k).map(|(j, _)| j).collect()
            })
            .collect();
    }
}

/// Encodes `n` pairs from `pool` (in groups, in parallel).
fn make_views(
    pool: &Pool,
    cfg: &RerankerTraining,
    encoder: &Encoder,
    n: usize,
    seed: u64,
    progress: &dyn Fn(usize, usize),
) -> Result<Views, TrainError> {
    let frontend = FrontendConfig::default();
    let group = cfg.mine_group.max(2);
    let mut views = Views {
        fp_dim: encoder.config().out_dim,
        node_len: encoder.config().node_dim() * encoder.config().output_nodes(),
        ..Views::default()
    };
    let mut rng = Rng::new(seed);
    let mut done = 0;
    while done < n {
        let len = group.min(n - done);
        let audio_id = rng.chance(cfg.audio_id_share);
        let maker = PairMaker {
            pool,
            cfg: if audio_id {
                cfg.pairs.audio_id()
            } else {
                cfg.pairs.clone()
            },
            frontend: frontend.clone(),
        };
        let pairs = maker.batch(rng.next_u64(), len)?;
        let a: Vec<&[f32]> = pairs.iter().map(|p| p.anchor.as_slice()).collect();
        let q: Vec<&[f32]> = pairs.iter().map(|p| p.positive.as_slice()).collect();
        let ea = encoder.embed(&a).map_err(|e| TrainError::Data(e.to_string()))?;
        let eq = encoder.embed(&q).map_err(|e| TrainError::Data(e.to_string()))?;
        for (r, q) in ea.into_iter().zip(eq) {
            views.fp_ref.extend(r.fingerprint);
            views.nodes_ref.extend(r.nodes);
            views.fp_query.extend(q.fingerprint);
            views.nodes_query.extend(q.nodes);
        }
        done += len;
        views.n = done;
        progress(done, n);
    }
    Ok(views)
}

/// Held-out measurements of a classifier.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RerankerValidation {
    pub epoch: usize,
    /// Area under the ROC curve, positives vs all negatives.
    pub auroc: f64,
    /// Share of positives scored ≥ 0.5.
    pub true_accept: f64,
    /// Share of hard negatives scored ≥ 0.5.
    pub false_accept_hard: f64,
    /// Share of random negatives (another pair's clean view) scored ≥ 0.5.
    pub false_accept_random: f64,
}

/// AUROC by ranks (ties count half).
pub fn auroc(pos: &[f32], neg: &[f32]) -> f64 {
    if pos.is_empty() || neg.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f32, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let mid = (i + j + 1) as f64 / 2.0; // 1-based mean rank of the tie block
        rank_sum += mid * all[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let (p, n) = (pos.len() as f64, neg.len() as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

/// Scores the held-out views as queries do (int8 stored reference nodes).
pub fn validate(reranker: &Reranker, views: &Views, epoch: usize) -> Result<RerankerValidation, TrainError> {
    use rayon::prelude::*;
    let err = |e: sampleid_rerank::RerankError| TrainError::Data(e.to_string());
    let refs: Vec<_> = (0..views.n)
        .into_par_iter()
        .map(|i| {
            let stored = reranker.store(views.node(&views.nodes_ref, i))?;
            reranker.prepare_reference(&stored)
        })
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let queries: Vec<_> = (0..views.n)
        .into_par_iter()
        .map(|i| reranker.prepare_query(views.node(&views.nodes_query, i)))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    let pos: Vec<f32> = (0..views.n).map(|i| reranker.score(&queries[i], &refs[i])).collect();
    let hard: Vec<f32> = (0..views.n)
        .flat_map(|i| views.negatives[i].iter().map(move |&j| (i, j)))
        .map(|(i, j)| reranker.score(&queries[i], &refs[j]))
        .collect();
    let random: Vec<f32> = (0..views.n)
        .map(|i| reranker.score(&queries[i], &refs[(i + views.n / 2 + 1) % views.n]))
        .collect();
    let rate = |x: &[f32]| x.iter().filter(|&&s| s >= 0.5).count() as f64 / x.len().max(1) as f64;
    let all_neg: Vec<f32> = hard.iter().chain(&random).copied().collect();
    Ok(RerankerValidation {
        epoch,
        auroc: auroc(&pos, &all_neg),
        true_accept: rate(&pos),
        false_accept_hard: rate(&hard),
        false_accept_random: rate(&random),
    })
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RerankerSummary {
    pub epochs: usize,
    pub seconds: f64,
    pub best: RerankerValidation,
    pub best_model: std::path::PathBuf,
}

/// Trains a classifier in `run` for `encoder` on the corpus's training split,
/// validating on its validation split. `progress(stage, done, total)`.
pub fn train_reranker(
    corpus: &Path,
    run: &Path,
    cfg: &RerankerTraining,
    encoder: &Encoder,
    device: &Device,
    progress: &dyn Fn(&str, usize, usize),
) -> Result<RerankerSummary, TrainError> {
    let mut rcfg = cfg.reranker.clone();
    rcfg.node_dim = encoder.config().node_dim();
    rcfg.nodes = encoder.config().output_nodes();
    rcfg.validate().map_err(TrainError::Data)?;
    if cfg.batch_size == 0 || cfg.epochs == 0 || cfg.train_pairs < 2 || cfg.valid_pairs < 2 {
        return Err(TrainError::Data(
            "batch_size, epochs ≥ 1 and ≥ 2 pairs are needed".into(),
        ));
    }
    std::fs::create_dir_all(run).map_err(|e| TrainError::io(run, e))?;
    let started = Instant::now();
    let cache_dir = crate::encoder::cache_dir(corpus);
    let tag = |split: &str, n: usize| {
        format!(
            "{split}:{}:{n}:{}:{}:{}",
            encoder.info().version,
            cfg.seed,
            cfg.mine_group,
            serde_json::to_string(&(&cfg.pairs, cfg.audio_id_share)).unwrap_or_default()
        )
    };
    let mut sets = Vec::new();
    for (split, n, name, seed) in [
        (Split::Train, cfg.train_pairs, "train", cfg.seed),
        (Split::Validation, cfg.valid_pairs, "valid", cfg.seed ^ 0x5eed),
    ] {
        let path = run.join(format!("views-{name}.bin"));
        let t = tag(name, n);
        let mut views = match Views::read(&path, &t)? {
            Some(v) => v,
            None => {
                let pool = Pool::load(corpus, &cache_dir, split, &|_, _| {})?;
                let v = make_views(&pool, cfg, encoder, n, seed, &|d, t| progress(name, d, t))?;
                v.write(&path, &t)?;
                v
            }
        };
        views.mine(cfg.mine_group.max(2), cfg.negatives);
        sets.push(views);
    }
    let valid = sets.pop().expect("two sets");
    let train = sets.pop().expect("two sets");

    device.seed(cfg.seed);
    let mut model = RerankerModel::new(&rcfg, device);
    let mut optim = AdamConfig::new().init();
    let info = |v: &RerankerValidation| RerankerInfo {
        version: format!("rerank-{}-s{}", encoder.info().version, rcfg.store_dim),
        encoder: encoder.info().version.clone(),
        config: rcfg.clone(),
        training: serde_json::json!({
            "train_pairs": cfg.train_pairs, "valid_pairs": cfg.valid_pairs, "epochs": cfg.epochs,
            "batch_size": cfg.batch_size, "negatives": cfg.negatives, "random_negatives": cfg.random_negatives, "lr": cfg.lr, "validation": v,
        }),
    };
    let metrics_path = run.join("metrics.jsonl");
    let mut metrics = std::fs::File::create(&metrics_path).map_err(|e| TrainError::io(&metrics_path, e))?;
    let mut best: Option<RerankerValidation> = None;
    let best_model = run.join("best.safetensors");
    let steps_per_epoch = train.n.div_ceil(cfg.batch_size);
    let (nodes, node_dim) = (rcfg.nodes, rcfg.node_dim);
    let batch_tensor = |side: &[f32], idx: &[usize]| {
        let flat: Vec<f32> = idx.iter().flat_map(|&i| train.node(side, i).iter().copied()).collect();
        // Encoder node matrices are channel-major: (B, C, N) → (B, N, C).
        Tensor::<3>::from_data(TensorData::new(flat, [idx.len(), node_dim, nodes]), device).swap_dims(1, 2)
    };
    let mut rng = Rng::new(cfg.seed ^ 0xabcd);
    for epoch in 1..=cfg.epochs {
        let mut order: Vec<usize> = (0..train.n).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let mut loss_sum = 0.0;
        for (s, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let mut q_idx: Vec<usize> = chunk.to_vec();
            let mut r_idx: Vec<usize> = chunk.to_vec();
            for &i in chunk {
                for &j in &train.negatives[i] {
                    q_idx.push(i);
                    r_idx.push(j);
                }
                for _ in 0..cfg.random_negatives {
                    let j = (i + 1 + rng.below(train.n - 1)) % train.n;
                    q_idx.push(i);
                    r_idx.push(j);
                }
            }
            let b = chunk.len();
            let logits = model.forward(
                batch_tensor(&train.nodes_query, &q_idx),
                batch_tensor(&train.nodes_ref, &r_idx),
            );
            let n_all = q_idx.len();
            let pos = logits.clone().slice(0..b);
            let neg = logits.slice(b..n_all);
            let loss = log_sigmoid(pos).mean().neg() + log_sigmoid(neg.neg()).mean().neg();
            let value = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                return Err(TrainError::Data(format!("the loss became {value} in epoch {epoch}")));
            }
            loss_sum += value;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.lr, model, grads);
            progress(
                "epoch",
                (epoch - 1) * steps_per_epoch + s + 1,
                cfg.epochs * steps_per_epoch,
            );
        }
        let scorer = Reranker::new(
            &model,
            info(&RerankerValidation {
                epoch,
                auroc: 0.0,
                true_accept: 0.0,
                false_accept_hard: 0.0,
                false_accept_random: 0.0,
            }),
        );
        let v = validate(&scorer, &valid, epoch)?;
        let line = serde_json::json!({"epoch": epoch, "loss": loss_sum / steps_per_epoch as f64, "validation": v, "elapsed_s": started.elapsed().as_secs_f64()});
        writeln!(metrics, "{line}").map_err(|e| TrainError::io(&metrics_path, e))?;
        tracing::info!(%line, "epoch");
        if best.as_ref().is_none_or(|b| v.auroc > b.auroc) {
            sampleid_rerank::save_model(&model.valid(), &info(&v), &best_model)
                .map_err(|e| TrainError::Data(e.to_string()))?;
            best = Some(v);
        }
    }
    Ok(RerankerSummary {
        epochs: cfg.epochs,
        seconds: started.elapsed().as_secs_f64(),
        best: best.expect("at least one epoch"),
        best_model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_counts_ranks_and_ties() {
        assert_eq!(auroc(&[0.9, 0.8], &[0.1, 0.2]), 1.0);
        assert_eq!(auroc(&[0.1], &[0.9]), 0.0);
        assert_eq!(auroc(&[0.5], &[0.5]), 0.5);
        assert!((auroc(&[0.9, 0.3], &[0.5, 0.1]) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn mining_never_picks_the_pair_itself_and_prefers_similar_views() {
        let mut v = Views {
            n: 4,
            fp_dim: 2,
            node_len: 1,
            fp_ref: vec![1.0, 0.0, 0.0, 1.0, 0.8, 0.6, -1.0, 0.0],
            fp_query: vec![1.0, 0.0, 0.0, 1.0, 0.8, 0.6, -1.0, 0.0],
            nodes_ref: vec![0.0; 4],
            nodes_query: vec![0.0; 4],
            negatives: Vec::new(),
        };
        v.mine(4, 2);
        for (i, n) in v.negatives.iter().enumerate() {
            assert!(!n.contains(&i), "pair {i} mined its own positive: {n:?}");
            assert_eq!(n.len(), 2);
        }
        assert_eq!(v.negatives[0], vec![2, 1], "most similar other clean views first");
    }
}
