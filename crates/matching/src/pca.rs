//! Principal component analysis for shingle vectors: the covariance matrix
//! and its eigenvectors by the cyclic Jacobi method (exact for symmetric
//! matrices; a 240 × 240 covariance takes a few milliseconds per sweep).

use serde::{Deserialize, Serialize};

/// A fitted projection onto the leading principal components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    /// Mean of the training vectors.
    pub mean: Vec<f32>,
    /// Components, each a unit vector of the input dimension, by decreasing variance.
    pub components: Vec<Vec<f32>>,
    /// Variance along each component.
    pub variances: Vec<f64>,
}

impl Pca {
    /// Fits `dims` components to `rows` vectors of dimension `d` (row-major `data`).
    pub fn fit(data: &[f32], d: usize, dims: usize) -> Self {
        let n = data.len().checked_div(d).unwrap_or(0);
        let mut mean = vec![0.0f64; d];
        for row in data.chunks_exact(d) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += *v as f64;
            }
        }
        for m in &mut mean {
            *m /= n.max(1) as f64;
        }
        let mut cov = vec![0.0f64; d * d];
        let mut centred = vec![0.0f64; d];
        for row in data.chunks_exact(d) {
            for ((c, v), m) in centred.iter_mut().zip(row).zip(&mean) {
                *c = *v as f64 - m;
            }
            for i in 0..d {
                let ci = centred[i];
                for j in i..d {
                    cov[i * d + j] += ci * centred[j];
                }
            }
        }
        for i in 0..d {
            for j in i..d {
                let v = cov[i * d + j] / (n.max(2) - 1) as f64;
                cov[i * d + j] = v;
                cov[j * d + i] = v;
            }
        }
        let (values, vectors) = symmetric_eigen(&mut cov, d);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let take = dims.min(d);
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            components: order[..take]
                .iter()
                .map(|&k| (0..d).map(|i| vectors[i * d + k] as f32).collect())
                .collect(),
            variances: order[..take].iter().map(|&k| values[k]).collect(),
        }
    }

    /// The projection of `x` onto the components.
    pub fn project(&self, x: &[f32]) -> Vec<f32> {
        self.components
            .iter()
            .map(|c| c.iter().zip(x).zip(&self.mean).map(|((w, v), m)| w * (v - m)).sum())
            .collect()
    }
}

/// Eigenvalues and eigenvectors (columns of the returned row-major matrix) of
/// the symmetric `n × n` matrix `a` (destroyed), by cyclic Jacobi rotations.
pub fn symmetric_eigen(a: &mut [f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    for _sweep in 0..60 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j] * a[i * n + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-12 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigenpairs_satisfy_a_v_equals_lambda_v() {
        let n = 5;
        let orig: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                ((i * 7 + j * 7 + i * j) % 11) as f64 - 5.0
            })
            .collect();
        let mut a = orig.clone();
        let (values, vectors) = symmetric_eigen(&mut a, n);
        for k in 0..n {
            for i in 0..n {
                let av: f64 = (0..n).map(|j| orig[i * n + j] * vectors[j * n + k]).sum();
                assert!((av - values[k] * vectors[i * n + k]).abs() < 1e-9, "pair {k} row {i}");
            }
        }
    }

    #[test]
    fn the_first_component_follows_the_widest_spread() {
        // Points along (1, 1, 0) with a little noise in the other directions.
        let mut data = Vec::new();
        for i in 0..200 {
            let t = i as f32 / 10.0 - 10.0;
            let e = ((i * 37) % 13) as f32 / 100.0 - 0.06;
            data.extend([t + e, t - e, 0.5 * e]);
        }
        let p = Pca::fit(&data, 3, 2);
        let c = &p.components[0];
        let along = (c[0] + c[1]).abs() / 2f32.sqrt();
        assert!(along > 0.999, "{c:?}");
        assert!(p.variances[0] > 100.0 * p.variances[1]);
        assert_eq!(p.project(&[0.0, 0.0, 0.0]).len(), 2);
    }
}
