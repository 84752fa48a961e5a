//! Subsequence DTW: the query may start and end anywhere in the reference.

use crate::dtw::{accumulate, backtrack};
use crate::{AlignError, CostMatrix, StepPattern};

/// The accumulated cost of a subsequence alignment and its matching curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Subsequence {
    /// Accumulated cost `D(i, j)` with a free start in the first row.
    pub accumulated: Vec<f64>,
    /// Matching curve `Δ(j) = D(rows − 1, j) / rows`: the cost of the best
    /// alignment of the whole query that ends at reference frame `j`, per
    /// query frame (so queries of different lengths compare).
    pub curve: Vec<f64>,
    pattern: StepPattern,
}

/// One match of the query in the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// First reference frame of the match.
    pub start: usize,
    /// Last reference frame of the match (inclusive).
    pub end: usize,
    /// Matching-curve value at `end` (cost per query frame).
    pub cost: f64,
}

/// Accumulated cost and matching curve of the query (rows) in the reference (columns).
pub fn subsequence_dtw(c: &CostMatrix, pattern: StepPattern) -> Result<Subsequence, AlignError> {
    let (n, m) = (c.rows(), c.cols());
    let d = accumulate(c, pattern, true);
    let curve: Vec<f64> = (0..m).map(|j| d[(n - 1) * m + j] / n as f64).collect();
    if curve.iter().all(|v| !v.is_finite()) {
        return Err(AlignError::NoPath(n, m));
    }
    Ok(Subsequence {
        accumulated: d,
        curve,
        pattern,
    })
}

impl Subsequence {
    /// The optimal path of the match ending at reference frame `end`.
    pub fn path(&self, c: &CostMatrix, end: usize) -> Vec<(usize, usize)> {
        backtrack(c, &self.accumulated, self.pattern, (c.rows() - 1, end), true)
    }

    /// Up to `count` best matches, cheapest first, whose cost is at most
    /// `max_cost`. After each hit its span, widened by `exclusion` frames on
    /// both sides, is removed from the curve, so hits do not overlap.
    pub fn hits(&self, c: &CostMatrix, count: usize, max_cost: f64, exclusion: usize) -> Vec<Hit> {
        let mut curve = self.curve.clone();
        let mut out = Vec::new();
        while out.len() < count {
            let Some((end, cost)) = curve
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .min_by(|a, b| a.1.total_cmp(&b.1))
            else {
                break;
            };
            if cost > max_cost {
                break;
            }
            let start = self.path(c, end).first().map(|p| p.1).unwrap_or(end);
            let lo = start.saturating_sub(exclusion);
            let hi = (end + exclusion).min(curve.len() - 1);
            for v in &mut curve[lo..=hi] {
                *v = f64::INFINITY;
            }
            out.push(Hit { start, end, cost });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtw::tests::{brute, matrix};

    #[test]
    fn the_matching_curve_is_the_best_over_all_starts() {
        for pattern in [StepPattern::Classic, StepPattern::Tempo] {
            for (seed, (n, m)) in [(2, 6), (3, 7), (4, 5), (1, 4)].into_iter().enumerate() {
                let c = matrix(n, m, 100 + seed as u64);
                let s = subsequence_dtw(&c, pattern).unwrap();
                for end in 0..m {
                    let want = (0..=end)
                        .map(|start| brute(&c, pattern, (0, start), (n - 1, end)))
                        .fold(f64::INFINITY, f64::min);
                    let got = s.curve[end] * n as f64;
                    assert!(
                        (got - want).abs() < 1e-9 || (got.is_infinite() && want.is_infinite()),
                        "{pattern:?} {n}×{m} end {end}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_query_hidden_in_a_reference_is_found_twice() {
        // Reference: noise, the query, noise, the query played at half speed.
        let q: Vec<[f32; 3]> = vec![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]];
        let filler = [0.3f32, 0.3, 0.9];
        let mut r: Vec<[f32; 3]> = vec![filler; 5];
        r.extend(&q);
        r.extend(vec![filler; 6]);
        for f in &q {
            r.push(*f);
            r.push(*f);
        }
        let c = CostMatrix::cosine(&q, &r).unwrap();
        let s = subsequence_dtw(&c, StepPattern::Tempo).unwrap();
        let hits = s.hits(&c, 3, 0.05, 2);
        assert_eq!(hits.len(), 2, "{hits:?}");
        assert_eq!((hits[0].start, hits[0].end), (5, 8));
        assert!(hits[0].cost < 1e-9);
        assert!((15..=16).contains(&hits[1].start), "{hits:?}"); // frame 15 repeats at 16
        assert!(hits[1].end >= 21);
    }
}
