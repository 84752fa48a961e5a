//! Track features as graph nodes: standardisation, similarity and the
//! k-nearest-neighbour graph.

use serde::{Deserialize, Serialize};

/// How two tracks' (standardised) feature vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Metric {
    /// Cosine similarity of the z-scores.
    #[default]
    Cosine,
    /// Negative Euclidean distance of the z-scores.
    Euclidean,
    /// Weighted Jaccard (Σ min / Σ max) of the z-scores squashed to (0, 1)
    /// by a logistic: a set-overlap view of which features are high.
    Jaccard,
}

/// Per-feature z-scoring fitted on the training tracks (constant features
/// get unit scale, so they contribute 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Scaler {
    /// Fits on rows of equal length (at least one).
    pub fn fit(rows: &[Vec<f32>]) -> Self {
        let d = rows.first().map_or(0, Vec::len);
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0.0f64; d];
        for r in rows {
            for (m, &v) in mean.iter_mut().zip(r) {
                *m += v as f64 / n;
            }
        }
        let mut var = vec![0.0f64; d];
        for r in rows {
            for ((s, &v), m) in var.iter_mut().zip(r).zip(&mean) {
                *s += (v as f64 - m).powi(2) / n;
            }
        }
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: var
                .iter()
                .map(|&v| if v.sqrt() > 1e-9 { v.sqrt() as f32 } else { 1.0 })
                .collect(),
        }
    }

    /// z-scores of one row (non-finite inputs become 0).
    pub fn apply(&self, row: &[f32]) -> Vec<f32> {
        row.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(&v, (m, s))| {
                let z = (v - m) / s;
                if z.is_finite() { z } else { 0.0 }
            })
            .collect()
    }
}

/// Similarity of two standardised rows under `metric` (larger is closer).
pub fn similarity(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::Cosine => {
            let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
            for (x, y) in a.iter().zip(b) {
                ab += x * y;
                aa += x * x;
                bb += y * y;
            }
            ab / (aa.sqrt() * bb.sqrt()).max(1e-12)
        }
        Metric::Euclidean => -a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt(),
        Metric::Jaccard => {
            let squash = |v: f32| 1.0 / (1.0 + (-v).exp());
            let (mut lo, mut hi) = (0.0f32, 0.0f32);
            for (&x, &y) in a.iter().zip(b) {
                let (x, y) = (squash(x), squash(y));
                lo += x.min(y);
                hi += x.max(y);
            }
            lo / hi.max(1e-12)
        }
    }
}

/// The `k` rows of `pool` most similar to `q` (best first), skipping the
/// index `skip` (a node is not its own neighbour).
pub fn neighbours(metric: Metric, q: &[f32], pool: &[Vec<f32>], k: usize, skip: Option<usize>) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = pool
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != skip)
        .map(|(i, r)| (similarity(metric, q, r), i))
        .collect();
    let k = k.min(scored.len());
    if k == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.truncate(k);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, i)| i).collect()
}

/// Each row's `k` nearest other rows: the directed k-NN graph (node `i`
/// aggregates from `graph[i]`).
pub fn knn_graph(metric: Metric, rows: &[Vec<f32>], k: usize) -> Vec<Vec<usize>> {
    (0..rows.len())
        .map(|i| neighbours(metric, &rows[i], rows, k, Some(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaler_centres_and_scales_and_ignores_constant_columns() {
        let rows = vec![vec![1.0, 5.0], vec![3.0, 5.0]];
        let s = Scaler::fit(&rows);
        assert_eq!(s.apply(&rows[0]), vec![-1.0, 0.0]);
        assert_eq!(s.apply(&rows[1]), vec![1.0, 0.0]);
    }

    #[test]
    fn neighbours_are_the_closest_under_each_metric() {
        let pool = vec![vec![1.0, 0.0], vec![0.9, 0.1], vec![-1.0, 0.0], vec![0.0, 1.0]];
        for m in [Metric::Cosine, Metric::Euclidean, Metric::Jaccard] {
            assert_eq!(neighbours(m, &pool[0], &pool, 1, Some(0)), vec![1], "{m:?}");
            let g = knn_graph(m, &pool, 2);
            assert!(
                g.iter().enumerate().all(|(i, n)| n.len() == 2 && !n.contains(&i)),
                "{m:?}"
            );
        }
        assert_eq!(neighbours(Metric::Cosine, &pool[0], &pool, 10, None).len(), 4);
    }
}
