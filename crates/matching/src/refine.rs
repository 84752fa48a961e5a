//! Refining a match: where, at what time ratio and pitch shift, the query's
//! material lies in the reference.

use rayon::prelude::*;
use sampleid_align::{CostMatrix, StepPattern, Subsequence, subsequence_dtw};
use serde::{Deserialize, Serialize};

use crate::{cens_of_shares, transpose};

/// Settings of the alignment that refines sample-identification matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefineConfig {
    /// Refine matches at all.
    pub enabled: bool,
    /// Matches refined per query (best first).
    pub top: usize,
    /// Hann smoothing of the 10 Hz chroma, in frames.
    pub smoothing_frames: usize,
    /// Keep every n-th smoothed frame (2: 5 features per second).
    pub downsample: usize,
    /// Queries shorter than this (s) are not refined: too few frames to align.
    pub min_query_s: f64,
    /// The alignment is used only when its cost is at most this fraction of
    /// the median of its matching curve (how much better than chance).
    pub max_relative_cost: f64,
    /// A pitch shift is reported only when the best shift's cost is at most
    /// this fraction of the best cost of shifts more than one semitone away.
    pub max_pitch_ambiguity: f64,
}

impl Default for RefineConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            top: 3,
            smoothing_frames: 9,
            downsample: 2,
            min_query_s: 3.0,
            max_relative_cost: 0.6,
            max_pitch_ambiguity: 0.9,
        }
    }
}

impl RefineConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.smoothing_frames == 0 || self.downsample == 0 {
            return Err("smoothing_frames and downsample must be at least 1".into());
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.max_relative_cost)
            || !positive(self.max_pitch_ambiguity)
            || self.min_query_s.is_nan()
            || self.min_query_s < 0.0
        {
            return Err("max_relative_cost and max_pitch_ambiguity must be positive, min_query_s at least 0".into());
        }
        Ok(())
    }
}

/// Where the query's material lies in the reference, by alignment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refined {
    /// Reference time (s) aligned with the query's start.
    pub reference_start: f64,
    /// Reference time (s) aligned with the query's end.
    pub reference_end: f64,
    /// Query duration / reference duration of the aligned material.
    pub time_ratio: f64,
    /// Pitch change from reference to query (semitones, −5.5 … 6.5);
    /// `None` when another shift aligns nearly as well.
    pub pitch_shift: Option<f64>,
    /// Alignment cost per query frame (cosine distance).
    pub cost: f64,
    /// `cost` / median of the matching curve.
    pub relative_cost: f64,
}

impl Refined {
    /// The reference time aligned with query time `t` (s), on the fitted line.
    pub fn reference_time(&self, query_s: f64, t: f64) -> f64 {
        let span = (self.reference_end - self.reference_start).max(0.0);
        self.reference_start + (t / query_s.max(1e-9)).clamp(0.0, 1.0) * span
    }
}

/// Aligns the query's stored-format chroma shares (10 Hz, `frame_rate`
/// frames/s) with a reference's; `None` when either is too short or the
/// alignment is not clearly better than chance.
pub fn refine(query: &[[u8; 12]], reference: &[[u8; 12]], frame_rate: f64, cfg: &RefineConfig) -> Option<Refined> {
    if query.len() as f64 / frame_rate < cfg.min_query_s || reference.len() < query.len() / 2 {
        return None;
    }
    let q = cens_of_shares(query, cfg.smoothing_frames, cfg.downsample);
    let r = cens_of_shares(reference, cfg.smoothing_frames, cfg.downsample);
    let rate = frame_rate / cfg.downsample.max(1) as f64;
    // One matching curve per pitch shift: the query transposed down by k
    // semitones against the reference (in parallel; only the best end of each
    // is kept, and the winner's alignment is recomputed for its path).
    let costs = |k: i32| -> Option<(CostMatrix, Subsequence)> {
        let shifted: Vec<[f32; 12]> = q.iter().map(|v| transpose(v, -k)).collect();
        let c = CostMatrix::unit_dot(&shifted, &r).ok()?;
        let s = subsequence_dtw(&c, StepPattern::Tempo).ok()?;
        Some((c, s))
    };
    let per_shift: Vec<(i32, f64, usize)> = (-5..=6)
        .into_par_iter()
        .filter_map(|k| {
            let (_, s) = costs(k)?;
            let (end, cost) = s
                .curve
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .min_by(|a, b| a.1.total_cmp(&b.1))?;
            Some((k, cost, end))
        })
        .collect();
    let &(k, cost, end) = per_shift.iter().min_by(|a, b| a.1.total_cmp(&b.1))?;
    let (c, s) = costs(k)?;
    let per_shift: Vec<(i32, f64)> = per_shift.iter().map(|p| (p.0, p.1)).collect();
    let mut finite: Vec<f64> = s.curve.iter().copied().filter(|v| v.is_finite()).collect();
    finite.sort_by(f64::total_cmp);
    let median = finite[finite.len() / 2];
    let relative_cost = if median > 0.0 { cost / median } else { 1.0 };
    if relative_cost > cfg.max_relative_cost {
        return None;
    }
    let path = s.path(&c, end);
    // Least-squares slope of reference frame on query frame.
    let n = path.len() as f64;
    let (mx, my) = (
        path.iter().map(|p| p.0 as f64).sum::<f64>() / n,
        path.iter().map(|p| p.1 as f64).sum::<f64>() / n,
    );
    let sxx: f64 = path.iter().map(|p| (p.0 as f64 - mx).powi(2)).sum();
    let sxy: f64 = path.iter().map(|p| (p.0 as f64 - mx) * (p.1 as f64 - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 1.0 };
    if slope.is_nan() || slope <= 0.0 {
        return None;
    }
    let last_q = (q.len() - 1) as f64;
    let (start_f, end_f) = (my - slope * mx, my + slope * (last_q - mx));
    // Pitch: clear of the shifts more than a semitone away; sub-semitone by
    // a parabola through the best shift and its neighbours.
    let cost_of = |j: i32| per_shift.iter().find(|p| p.0 == j).map(|p| p.1);
    let wrap = |j: i32| {
        if j > 6 {
            j - 12
        } else if j < -5 {
            j + 12
        } else {
            j
        }
    };
    let rival = per_shift
        .iter()
        .filter(|p| {
            let d = (p.0 - k).rem_euclid(12);
            d > 1 && d < 11
        })
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min);
    let pitch_shift = (cost <= cfg.max_pitch_ambiguity * rival).then(|| {
        let (lo, hi) = (cost_of(wrap(k - 1)), cost_of(wrap(k + 1)));
        let delta = match (lo, hi) {
            (Some(a), Some(b)) if a + b - 2.0 * cost > 1e-12 => (0.5 * (a - b) / (a + b - 2.0 * cost)).clamp(-0.5, 0.5),
            _ => 0.0,
        };
        k as f64 + delta
    });
    Some(Refined {
        reference_start: start_f.max(0.0) / rate,
        reference_end: end_f.max(0.0) / rate,
        time_ratio: 1.0 / slope,
        pitch_shift,
        cost,
        relative_cost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{melody, tune};

    #[test]
    fn a_transposed_slower_excerpt_is_located_with_its_ratio_and_pitch() {
        let song = tune(120, 3); // 120 notes of 0.5 s: 60 s
        let reference = melody(&song, 0.5);
        // Query: notes 40..60 (reference 20–30 s), 3 semitones up, played 1.25× slower.
        let excerpt: Vec<i32> = song[40..60].iter().map(|n| n + 3).collect();
        let query = melody(&excerpt, 0.5 * 1.25);
        let cfg = RefineConfig::default();
        let r = refine(&query, &reference, 10.0, &cfg).expect("aligned");
        assert!((r.reference_start - 20.0).abs() < 1.0, "{r:?}");
        assert!((r.reference_end - 30.0).abs() < 1.0, "{r:?}");
        assert!((r.time_ratio - 1.25).abs() < 0.08, "{r:?}");
        let p = r.pitch_shift.expect("pitch");
        assert!((p - 3.0).abs() < 0.5, "{r:?}");
        // Halfway through the query is halfway through the excerpt.
        assert!((r.reference_time(12.5, 6.25) - 25.0).abs() < 1.0);
    }

    #[test]
    fn unrelated_music_is_not_refined_and_short_queries_are_skipped() {
        let reference = melody(&tune(120, 3), 0.5);
        let other = melody(&tune(20, 99), 0.5);
        let cfg = RefineConfig::default();
        assert_eq!(refine(&other, &reference, 10.0, &cfg), None);
        assert_eq!(
            refine(&reference[..20], &reference, 10.0, &cfg),
            None,
            "2 s is too short"
        );
    }
}
