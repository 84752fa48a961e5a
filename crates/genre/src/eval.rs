//! Cross-validation of GraphSAGE against its two baselines on the same
//! features and folds.
//!
//! Folds are grouped and stratified: items of one group (renderings of one
//! groove, tracks of one package) stay in one fold, so that no test track has
//! a near-copy in training; groups are dealt to folds class by class. In each
//! fold the scaler and the graph are built from the training tracks only and
//! the test tracks join inductively, as in [`crate::Classifier::predict`].

use serde::Serialize;

use crate::graph::{Scaler, knn_graph, neighbours};
use crate::{GenreConfig, GenreError, sage};

/// The compared classifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// GraphSAGE (mean aggregator) on the k-NN graph.
    GraphSage,
    /// Majority label of the k nearest training tracks.
    KnnVote,
    /// The same network without the neighbour term.
    Mlp,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::GraphSage, Method::KnnVote, Method::Mlp];

    pub fn name(self) -> &'static str {
        match self {
            Method::GraphSage => "GraphSAGE",
            Method::KnnVote => "k-NN vote",
            Method::Mlp => "MLP (no graph)",
        }
    }
}

/// One method's cross-validated result.
#[derive(Debug, Clone, Serialize)]
pub struct MethodResult {
    pub method: Method,
    /// Accuracy of each fold.
    pub fold_accuracy: Vec<f64>,
    /// Accuracy over all items (each predicted once, in its test fold).
    pub accuracy: f64,
    /// Standard deviation of the fold accuracies.
    pub fold_std: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Fold of each item: `groups` keep together, classes spread evenly.
pub fn folds(labels: &[usize], groups: &[String], k: usize) -> Vec<usize> {
    // A group's class is its most common label.
    let mut by_group: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, g) in groups.iter().enumerate() {
        by_group.entry(g.as_str()).or_default().push(i);
    }
    let mut list: Vec<(usize, &str, Vec<usize>)> = by_group
        .into_iter()
        .map(|(g, items)| {
            let mut counts = std::collections::BTreeMap::new();
            for &i in &items {
                *counts.entry(labels[i]).or_insert(0) += 1;
            }
            let class = counts
                .into_iter()
                .max_by_key(|&(l, c)| (c, std::cmp::Reverse(l)))
                .map_or(0, |x| x.0);
            (class, g, items)
        })
        .collect();
    list.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    let mut out = vec![0; labels.len()];
    let mut load = vec![0usize; k.max(1)];
    let mut next = 0;
    for (_, _, items) in list {
        // Deal round-robin within a class, but never onto a fold that
        // already holds far more items than the lightest one.
        let lightest = *load.iter().min().unwrap_or(&0);
        let mut f = next % load.len();
        while load[f] > lightest + items.len() {
            f = (f + 1) % load.len();
        }
        next = f + 1;
        load[f] += items.len();
        for i in items {
            out[i] = f;
        }
    }
    out
}

/// Cross-validates every [`Method`] on `rows` (raw features) with class
/// indices `labels` in `0..classes`, folds from [`folds`].
///
/// Inductive (the default, as `predict` works): the scaler and graph come
/// from the training tracks, test tracks link to training tracks only.
/// `transductive`: the scaler and the k-NN graph cover all tracks (features
/// only, no test labels), so test tracks also link to each other, as in
/// node classification on a fixed graph; the k-NN vote still counts
/// training neighbours only.
pub fn cross_validate(
    rows: &[Vec<f32>],
    labels: &[usize],
    classes: usize,
    fold_of: &[usize],
    cfg: &GenreConfig,
    transductive: bool,
    progress: &dyn Fn(usize, usize),
) -> Result<Vec<MethodResult>, GenreError> {
    cfg.validate()?;
    let k = fold_of.iter().max().map_or(0, |m| m + 1);
    if k < 2 || rows.len() != labels.len() || rows.len() != fold_of.len() {
        return Err(GenreError::Input(
            "cross-validation needs two folds and one label per track".into(),
        ));
    }
    let mut results: Vec<MethodResult> = Method::ALL
        .iter()
        .map(|&method| MethodResult {
            method,
            fold_accuracy: Vec::new(),
            accuracy: 0.0,
            fold_std: 0.0,
            confusion: vec![vec![0; classes]; classes],
        })
        .collect();
    for f in 0..k {
        progress(f, k);
        let train: Vec<usize> = (0..rows.len()).filter(|&i| fold_of[i] != f).collect();
        let test: Vec<usize> = (0..rows.len()).filter(|&i| fold_of[i] == f).collect();
        if test.is_empty() || train.is_empty() {
            continue;
        }
        let train_rows: Vec<Vec<f32>> = train.iter().map(|&i| rows[i].clone()).collect();
        let scaler = if transductive {
            Scaler::fit(rows)
        } else {
            Scaler::fit(&train_rows)
        };
        let mut x: Vec<Vec<f32>> = train_rows.iter().map(|r| scaler.apply(r)).collect();
        let mut graph = knn_graph(cfg.metric, &x, cfg.k);
        let m = x.len();
        let train_labels: Vec<usize> = train.iter().map(|&i| labels[i]).collect();
        for &i in &test {
            let z = scaler.apply(&rows[i]);
            graph.push(neighbours(cfg.metric, &z, &x[..m], cfg.k, None));
            x.push(z);
        }
        // The vote always counts training neighbours.
        let vote_graph = graph.clone();
        if transductive {
            graph = knn_graph(cfg.metric, &x, cfg.k);
        }
        let mut all_labels = train_labels.clone();
        all_labels.extend(test.iter().map(|&i| labels[i]));
        let train_idx: Vec<usize> = (0..m).collect();
        for r in results.iter_mut() {
            let predicted: Vec<usize> = match r.method {
                Method::KnnVote => (m..x.len())
                    .map(|t| {
                        let mut votes = vec![0usize; classes];
                        for &j in &vote_graph[t] {
                            votes[train_labels[j]] += 1;
                        }
                        let best = votes.iter().max().copied().unwrap_or(0);
                        // Ties go to the class of the nearest tied neighbour.
                        vote_graph[t]
                            .iter()
                            .map(|&j| train_labels[j])
                            .find(|&l| votes[l] == best)
                            .unwrap_or(0)
                    })
                    .collect(),
                Method::GraphSage | Method::Mlp => {
                    let graph_on = r.method == Method::GraphSage;
                    let model = sage::train(&x, &graph, &all_labels, &train_idx, classes, cfg, graph_on);
                    sage::predict(&model, &x, &graph)[m..]
                        .iter()
                        .map(|p| {
                            p.iter()
                                .enumerate()
                                .max_by(|a, b| a.1.total_cmp(b.1))
                                .map_or(0, |(c, _)| c)
                        })
                        .collect()
                }
            };
            let mut right = 0;
            for (&i, &p) in test.iter().zip(&predicted) {
                r.confusion[labels[i]][p] += 1;
                right += usize::from(labels[i] == p);
            }
            r.fold_accuracy.push(right as f64 / test.len() as f64);
        }
    }
    progress(k, k);
    for r in results.iter_mut() {
        let total: usize = r.confusion.iter().flatten().sum();
        let right: usize = (0..classes).map(|c| r.confusion[c][c]).sum();
        r.accuracy = right as f64 / total.max(1) as f64;
        let n = r.fold_accuracy.len().max(1) as f64;
        let mean = r.fold_accuracy.iter().sum::<f64>() / n;
        r.fold_std = (r.fold_accuracy.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n).sqrt();
    }
    Ok(results)
}
