//! Classic dynamic time warping: accumulated cost and the optimal warping path.

use serde::{Deserialize, Serialize};

use crate::{AlignError, CostMatrix};

/// Which steps a warping path may take, and the weight of the cell each step reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepPattern {
    /// Steps (1, 0), (0, 1), (1, 1), all of weight 1: any monotonic, continuous path.
    #[default]
    Classic,
    /// Steps (1, 1), (2, 1), (1, 2), all of weight 1: no horizontal or
    /// vertical runs, so the local tempo ratio stays within [1/2, 2]; the
    /// usual choice for matching performances of different tempi.
    Tempo,
}

impl StepPattern {
    /// `(query step, reference step, weight)` of each allowed step.
    pub fn steps(self) -> &'static [(usize, usize, f64)] {
        match self {
            StepPattern::Classic => &[(1, 0, 1.0), (0, 1, 1.0), (1, 1, 1.0)],
            StepPattern::Tempo => &[(1, 1, 1.0), (2, 1, 1.0), (1, 2, 1.0)],
        }
    }
}

/// The result of [`dtw`].
#[derive(Debug, Clone, PartialEq)]
pub struct Dtw {
    /// Total cost of the optimal path: the sum of its weighted local costs.
    pub cost: f64,
    /// The optimal warping path, `(query frame, reference frame)` from
    /// `(0, 0)` to `(rows − 1, cols − 1)`.
    pub path: Vec<(usize, usize)>,
    /// Accumulated cost `D(i, j)`, row-major; `f64::INFINITY` where no path reaches.
    pub accumulated: Vec<f64>,
}

/// Accumulated cost. With `free_start`, a path may begin at any cell of the
/// first row (subsequence DTW); otherwise only at (0, 0).
pub(crate) fn accumulate(c: &CostMatrix, pattern: StepPattern, free_start: bool) -> Vec<f64> {
    let (n, m) = (c.rows(), c.cols());
    let mut d = vec![f64::INFINITY; n * m];
    for i in 0..n {
        for j in 0..m {
            let local = c.at(i, j);
            if i == 0 && (j == 0 || free_start) {
                d[j] = local;
                continue;
            }
            let mut best = f64::INFINITY;
            for &(di, dj, w) in pattern.steps() {
                if i >= di && j >= dj {
                    let v = d[(i - di) * m + (j - dj)] + w * local;
                    if v < best {
                        best = v;
                    }
                }
            }
            d[i * m + j] = best;
        }
    }
    d
}

/// The optimal path ending at `(i, j)`, walking back through `d` until (0, 0),
/// or until the first row with `free_start`.
pub(crate) fn backtrack(
    c: &CostMatrix,
    d: &[f64],
    pattern: StepPattern,
    end: (usize, usize),
    free_start: bool,
) -> Vec<(usize, usize)> {
    let m = c.cols();
    let (mut i, mut j) = end;
    let mut path = vec![(i, j)];
    while i > 0 || (j > 0 && !free_start) {
        let local = c.at(i, j);
        let mut best: Option<(f64, usize, usize)> = None;
        for &(di, dj, w) in pattern.steps() {
            if i >= di && j >= dj {
                let v = d[(i - di) * m + (j - dj)] + w * local;
                if v.is_finite() && best.is_none_or(|b| v < b.0) {
                    best = Some((v, i - di, j - dj));
                }
            }
        }
        let Some((_, pi, pj)) = best else { break };
        (i, j) = (pi, pj);
        path.push((i, j));
    }
    path.reverse();
    path
}

/// Aligns the whole query with the whole reference.
pub fn dtw(c: &CostMatrix, pattern: StepPattern) -> Result<Dtw, AlignError> {
    let d = accumulate(c, pattern, false);
    let (n, m) = (c.rows(), c.cols());
    let cost = d[n * m - 1];
    if !cost.is_finite() {
        return Err(AlignError::NoPath(n, m));
    }
    let path = backtrack(c, &d, pattern, (n - 1, m - 1), false);
    Ok(Dtw {
        cost,
        path,
        accumulated: d,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small deterministic generator for test matrices.
    pub(crate) fn matrix(rows: usize, cols: usize, seed: u64) -> CostMatrix {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let data = (0..rows * cols)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) % 1000) as f64 / 100.0
            })
            .collect();
        CostMatrix::new(rows, cols, data).unwrap()
    }

    /// The cheapest of all paths from `start` to `end` by brute force.
    pub(crate) fn brute(c: &CostMatrix, pattern: StepPattern, start: (usize, usize), end: (usize, usize)) -> f64 {
        fn go(c: &CostMatrix, p: StepPattern, at: (usize, usize), end: (usize, usize), acc: f64, best: &mut f64) {
            if at == end {
                *best = best.min(acc);
                return;
            }
            for &(di, dj, w) in p.steps() {
                let next = (at.0 + di, at.1 + dj);
                if next.0 <= end.0 && next.1 <= end.1 {
                    go(c, p, next, end, acc + w * c.at(next.0, next.1), best);
                }
            }
        }
        let mut best = f64::INFINITY;
        go(c, pattern, start, end, c.at(start.0, start.1), &mut best);
        best
    }

    fn path_cost(c: &CostMatrix, pattern: StepPattern, path: &[(usize, usize)]) -> f64 {
        let mut total = c.at(path[0].0, path[0].1);
        for w in path.windows(2) {
            let step = (w[1].0 - w[0].0, w[1].1 - w[0].1);
            let weight = pattern
                .steps()
                .iter()
                .find(|s| (s.0, s.1) == step)
                .map(|s| s.2)
                .unwrap_or_else(|| panic!("step {step:?} is not in {pattern:?}"));
            total += weight * c.at(w[1].0, w[1].1);
        }
        total
    }

    #[test]
    fn dtw_equals_brute_force_over_all_paths() {
        for pattern in [StepPattern::Classic, StepPattern::Tempo] {
            for (seed, (n, m)) in [(2, 5), (3, 4), (4, 3), (4, 6), (5, 5), (1, 3), (6, 4)]
                .into_iter()
                .enumerate()
            {
                let c = matrix(n, m, seed as u64);
                let want = brute(&c, pattern, (0, 0), (n - 1, m - 1));
                match dtw(&c, pattern) {
                    Ok(got) => {
                        assert!(
                            (got.cost - want).abs() < 1e-9,
                            "{pattern:?} {n}×{m}: {} vs {want}",
                            got.cost
                        );
                        assert_eq!(got.path.first(), Some(&(0, 0)));
                        assert_eq!(got.path.last(), Some(&(n - 1, m - 1)));
                        assert!((path_cost(&c, pattern, &got.path) - want).abs() < 1e-9);
                    }
                    Err(e) => {
                        assert_eq!(e, AlignError::NoPath(n, m));
                        assert!(want.is_infinite(), "{pattern:?} {n}×{m} has a path of cost {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_repeated_frame_is_absorbed_by_the_path() {
        let x = [[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let y = [[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let r = dtw(&CostMatrix::cosine(&x, &y).unwrap(), StepPattern::Classic).unwrap();
        assert!(r.cost.abs() < 1e-12);
        assert_eq!(r.path, vec![(0, 0), (1, 1), (1, 2), (2, 3)]);
    }
}
