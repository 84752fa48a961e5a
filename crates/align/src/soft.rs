//! Soft-DTW (Cuturi & Blondel 2017): DTW with the minimum replaced by a soft
//! minimum of temperature γ, which makes the alignment cost differentiable.
//! Its gradient with respect to the cost matrix is the expected alignment
//! (each cell's probability of lying on the path under the Gibbs distribution
//! over paths). Both in O(rows · cols). Step pattern: classic.

use crate::{AlignError, CostMatrix};

/// The result of [`soft_dtw`].
#[derive(Debug, Clone, PartialEq)]
pub struct SoftDtw {
    /// The soft alignment cost; tends to the DTW cost as γ → 0.
    pub value: f64,
    /// ∂value / ∂C(i, j), row-major: the expected alignment matrix.
    pub expected: Vec<f64>,
}

fn softmin(a: f64, b: f64, c: f64, gamma: f64) -> f64 {
    let m = a.min(b).min(c);
    if m.is_infinite() {
        return m;
    }
    let s: f64 = [a, b, c].iter().map(|&x| (-(x - m) / gamma).exp()).sum();
    m - gamma * s.ln()
}

/// Soft-DTW value and gradient of a cost matrix at temperature `gamma`.
pub fn soft_dtw(c: &CostMatrix, gamma: f64) -> Result<SoftDtw, AlignError> {
    if !(gamma > 0.0 && gamma.is_finite()) {
        return Err(AlignError::Gamma(gamma));
    }
    let (n, m) = (c.rows(), c.cols());
    let w = m + 2;
    let at = |i: usize, j: usize| i * w + j;
    // R padded by one row/column on each side; indices 1..=n, 1..=m hold the matrix.
    let mut r = vec![f64::INFINITY; (n + 2) * w];
    r[at(0, 0)] = 0.0;
    for i in 1..=n {
        for j in 1..=m {
            r[at(i, j)] = c.at(i - 1, j - 1) + softmin(r[at(i - 1, j - 1)], r[at(i - 1, j)], r[at(i, j - 1)], gamma);
        }
    }
    let value = r[at(n, m)];
    // Backward pass for E = ∂R(n, m) / ∂C.
    let local = |i: usize, j: usize| if i <= n && j <= m { c.at(i - 1, j - 1) } else { 0.0 };
    for i in 0..=n + 1 {
        r[at(i, m + 1)] = f64::NEG_INFINITY;
    }
    for j in 0..=m + 1 {
        r[at(n + 1, j)] = f64::NEG_INFINITY;
    }
    r[at(n + 1, m + 1)] = r[at(n, m)];
    let mut e = vec![0.0f64; (n + 2) * w];
    e[at(n + 1, m + 1)] = 1.0;
    for j in (1..=m).rev() {
        for i in (1..=n).rev() {
            let here = r[at(i, j)];
            let a = ((r[at(i + 1, j)] - here - local(i + 1, j)) / gamma).exp();
            let b = ((r[at(i, j + 1)] - here - local(i, j + 1)) / gamma).exp();
            let d = ((r[at(i + 1, j + 1)] - here - local(i + 1, j + 1)) / gamma).exp();
            e[at(i, j)] = e[at(i + 1, j)] * a + e[at(i, j + 1)] * b + e[at(i + 1, j + 1)] * d;
        }
    }
    let expected = (1..=n)
        .flat_map(|i| (1..=m).map(move |j| (i, j)))
        .map(|(i, j)| e[at(i, j)])
        .collect();
    Ok(SoftDtw { value, expected })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtw::tests::matrix;
    use crate::{StepPattern, dtw};

    #[test]
    fn small_gamma_tends_to_dtw() {
        for (seed, (n, m)) in [(3, 4), (5, 2), (6, 6)].into_iter().enumerate() {
            let c = matrix(n, m, 7 + seed as u64);
            let hard = dtw(&c, StepPattern::Classic).unwrap();
            let mut last_gap = f64::INFINITY;
            for gamma in [1.0, 0.1, 0.01, 0.001] {
                let s = soft_dtw(&c, gamma).unwrap();
                // softmin ≥ min − γ ln 3 per cell on the path, and ≤ min.
                let gap = hard.cost - s.value;
                assert!(gap >= -1e-9, "soft-DTW exceeds DTW: {} > {}", s.value, hard.cost);
                assert!(gap <= gamma * 3f64.ln() * (n + m) as f64 + 1e-9, "γ {gamma}: gap {gap}");
                assert!(gap <= last_gap + 1e-12);
                last_gap = gap;
            }
            // The expected alignment becomes the optimal path.
            let s = soft_dtw(&c, 1e-3).unwrap();
            for i in 0..n {
                for j in 0..m {
                    let on = hard.path.contains(&(i, j));
                    let p = s.expected[i * m + j];
                    assert!(
                        (p - if on { 1.0 } else { 0.0 }).abs() < 1e-3,
                        "({i},{j}) {p} on path {on}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let c = matrix(4, 5, 42);
        for gamma in [0.5, 2.0] {
            let s = soft_dtw(&c, gamma).unwrap();
            let h = 1e-6;
            for k in 0..c.values().len() {
                let mut plus = c.values().to_vec();
                let mut minus = plus.clone();
                plus[k] += h;
                minus[k] -= h;
                let f = |v: Vec<f64>| soft_dtw(&CostMatrix::new(4, 5, v).unwrap(), gamma).unwrap().value;
                let numeric = (f(plus) - f(minus)) / (2.0 * h);
                assert!(
                    (numeric - s.expected[k]).abs() < 1e-6,
                    "γ {gamma} cell {k}: {numeric} vs {}",
                    s.expected[k]
                );
            }
            // Each row of a classic path is visited at least once in expectation.
            for i in 0..4 {
                assert!(s.expected[i * 5..i * 5 + 5].iter().sum::<f64>() >= 1.0 - 1e-9);
            }
        }
    }

    #[test]
    fn gamma_must_be_positive() {
        let c = matrix(2, 2, 1);
        assert_eq!(soft_dtw(&c, 0.0), Err(AlignError::Gamma(0.0)));
    }
}
