//! Audio matching (Müller, Kurth & Clausen 2005; Müller's ISMIR 2023
//! tutorial): a 10–30 s query against every recording of a library, on CENS
//! at 1 feature per second. Tempo invariance comes from several resampled
//! versions of the query (minimum over their matching curves); key
//! invariance from transposing the query by the shift that best matches each
//! recording's average chroma (optimal transposition index), keeping the best few shifts.

use sampleid_align::{CostMatrix, StepPattern, subsequence_dtw};
use serde::{Deserialize, Serialize};

use crate::{MatchError, cens_of_shares, transpose};

/// Settings of audio matching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchConfig {
    /// CENS smoothing in 10 Hz chroma frames (41 ≈ 4 s, as published).
    pub smoothing_frames: usize,
    /// CENS downsampling (10: 1 feature per second, as published).
    pub downsample: usize,
    /// Tempo factors tried (query tempo / reference tempo), covering about ±50 %.
    pub tempo_factors: Vec<f64>,
    /// Key shifts of the query tried per recording: the best ones by the
    /// recording's average chroma (optimal transposition index). 1: no
    /// transposition beyond the best; 12: all.
    pub transpositions: usize,
    /// Hits kept per recording.
    pub hits_per_recording: usize,
    /// Matches returned in all.
    pub max_matches: usize,
    /// Hits costlier than this (cosine distance per query feature) are dropped.
    pub max_cost: f64,
}

impl Default for MatchConfig {
    fn default() -> Self {
        Self {
            smoothing_frames: 41,
            downsample: 10,
            tempo_factors: vec![0.66, 0.74, 0.81, 0.89, 1.0, 1.12, 1.24, 1.36, 1.5],
            transpositions: 3,
            hits_per_recording: 2,
            max_matches: 10,
            max_cost: 0.35,
        }
    }
}

impl MatchConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.smoothing_frames == 0 || self.downsample == 0 {
            return Err("smoothing_frames and downsample must be at least 1".into());
        }
        if self.tempo_factors.is_empty() || self.tempo_factors.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
            return Err("tempo_factors must be a non-empty list of positive numbers".into());
        }
        if !(1..=12).contains(&self.transpositions) {
            return Err(format!("transpositions must lie in 1–12 (got {})", self.transpositions));
        }
        if self.hits_per_recording == 0 || self.max_matches == 0 {
            return Err("hits_per_recording and max_matches must be at least 1".into());
        }
        if self.max_cost.is_nan() || self.max_cost <= 0.0 {
            return Err(format!("max_cost must be positive (got {})", self.max_cost));
        }
        Ok(())
    }
}

/// A passage of a recording that plays the query's music.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionMatch {
    /// Which recording (index into the slice given to [`match_query`]).
    pub recording: usize,
    /// Start and end of the passage in the recording (s).
    pub start_s: f64,
    pub end_s: f64,
    /// Cost per query feature (cosine distance; 0 is identical).
    pub cost: f64,
    /// Query tempo / recording tempo.
    pub tempo_factor: f64,
    /// Semitones the query is transposed up relative to the recording.
    pub pitch_shift: i32,
}

/// Linear resampling of 10 Hz energy shares to `round(n · factor)` frames.
pub(crate) fn resample(shares: &[[u8; 12]], factor: f64) -> Vec<[u8; 12]> {
    let n = shares.len();
    let m = ((n as f64) * factor).round().max(1.0) as usize;
    (0..m)
        .map(|i| {
            let x = if m > 1 {
                i as f64 * (n - 1) as f64 / (m - 1) as f64
            } else {
                0.0
            };
            let (i0, t) = (x.floor() as usize, x - x.floor());
            let i1 = (i0 + 1).min(n - 1);
            let mut out = [0u8; 12];
            for (p, o) in out.iter_mut().enumerate() {
                *o = (shares[i0][p] as f64 * (1.0 - t) + shares[i1][p] as f64 * t).round() as u8;
            }
            out
        })
        .collect()
}

/// Key shifts of the query (−5 … 6), best first, by how well the
/// transposed recording's average chroma matches the query's.
pub fn transpositions(query: &[[f32; 12]], recording: &[[f32; 12]]) -> Vec<i32> {
    let mean = |v: &[[f32; 12]]| {
        let mut m = [0.0f32; 12];
        for f in v {
            for (a, b) in m.iter_mut().zip(f) {
                *a += b;
            }
        }
        m
    };
    let (q, r) = (mean(query), mean(recording));
    let mut scored: Vec<(i32, f32)> = (-5..=6)
        .map(|k| {
            let t = transpose(&r, k);
            (k, t.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>())
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.abs().cmp(&b.0.abs())));
    scored.into_iter().map(|(k, _)| k).collect()
}

/// Matches the query's 10 Hz chroma shares against every recording's
/// (`frame_rate` frames/s); best (cheapest) first.
pub fn match_query(
    query: &[[u8; 12]],
    recordings: &[Vec<[u8; 12]>],
    frame_rate: f64,
    cfg: &MatchConfig,
) -> Result<Vec<VersionMatch>, MatchError> {
    let rate = frame_rate / cfg.downsample.max(1) as f64;
    let base = cens_of_shares(query, cfg.smoothing_frames, cfg.downsample);
    if base.len() < 3 {
        return Err(MatchError::TooShort {
            seconds: query.len() as f64 / frame_rate,
        });
    }
    let versions: Vec<(f64, Vec<[f32; 12]>)> = cfg
        .tempo_factors
        .iter()
        .map(|&f| {
            (
                f,
                cens_of_shares(&resample(query, f), cfg.smoothing_frames, cfg.downsample),
            )
        })
        .filter(|(_, v)| v.len() >= 2)
        .collect();
    let mut out = Vec::new();
    for (ri, shares) in recordings.iter().enumerate() {
        let r = cens_of_shares(shares, cfg.smoothing_frames, cfg.downsample);
        if r.len() < 2 {
            continue;
        }
        let mut shifts = transpositions(&base, &r);
        shifts.truncate(cfg.transpositions.clamp(1, 12));
        let mut hits: Vec<VersionMatch> = Vec::new();
        for &k in &shifts {
            for (f, v) in &versions {
                let q: Vec<[f32; 12]> = v.iter().map(|x| transpose(x, -k)).collect();
                let c = CostMatrix::unit_dot(&q, &r)?;
                let Ok(s) = subsequence_dtw(&c, StepPattern::Tempo) else {
                    continue;
                };
                for h in s.hits(&c, cfg.hits_per_recording, cfg.max_cost, q.len() / 2) {
                    hits.push(VersionMatch {
                        recording: ri,
                        start_s: h.start as f64 / rate,
                        end_s: (h.end + 1) as f64 / rate,
                        cost: h.cost,
                        tempo_factor: *f,
                        pitch_shift: k,
                    });
                }
            }
        }
        // Minimum over versions: keep the cheapest of overlapping hits.
        hits.sort_by(|a, b| a.cost.total_cmp(&b.cost));
        let mut kept: Vec<VersionMatch> = Vec::new();
        for h in hits {
            if kept.len() >= cfg.hits_per_recording {
                break;
            }
            if kept.iter().all(|k| h.end_s <= k.start_s || h.start_s >= k.end_s) {
                kept.push(h);
            }
        }
        out.extend(kept);
    }
    out.sort_by(|a, b| a.cost.total_cmp(&b.cost));
    out.truncate(cfg.max_matches);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{melody, tune};

    #[test]
    fn a_faster_transposed_version_is_found_in_the_right_recording() {
        let songs: Vec<Vec<i32>> = (0..4).map(|s| tune(100, 10 + s)).collect(); // 100 notes of 1 s
        let recordings: Vec<Vec<[u8; 12]>> = songs.iter().map(|t| melody(t, 1.0)).collect();
        // 25 s of song 2 from note 50, 2 semitones up, played 1.2× faster.
        let excerpt: Vec<i32> = songs[2][50..75].iter().map(|n| n + 2).collect();
        let query = melody(&excerpt, 1.0 / 1.2);
        let got = match_query(&query, &recordings, 10.0, &MatchConfig::default()).unwrap();
        let best = &got[0];
        assert_eq!(best.recording, 2, "{got:?}");
        assert!((best.start_s - 50.0).abs() <= 3.0, "{best:?}");
        assert!((best.end_s - 75.0).abs() <= 3.0, "{best:?}");
        assert_eq!(best.pitch_shift, 2, "{best:?}");
        assert!((best.tempo_factor - 1.2).abs() <= 0.1, "{best:?}");
        assert!(
            got.iter()
                .filter(|m| m.recording != 2)
                .all(|m| m.cost > best.cost + 0.05),
            "{got:?}"
        );
    }

    #[test]
    fn a_query_shorter_than_three_features_is_refused() {
        let q = melody(&[60, 62], 1.0);
        assert!(matches!(
            match_query(&q, &[melody(&[60; 10], 1.0)], 10.0, &MatchConfig::default()),
            Err(MatchError::TooShort { .. })
        ));
    }
}
