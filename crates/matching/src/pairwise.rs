//! Aligning two whole recordings (`sampleid align`): DTW on CENS-like
//! features, the warping path in seconds.

use sampleid_align::{CostMatrix, StepPattern, dtw};
use serde::{Deserialize, Serialize};

use crate::{MatchError, cens_of_shares};

/// Settings of the alignment of two recordings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlignConfig {
    /// Hann smoothing of the 10 Hz chroma, in frames.
    pub smoothing_frames: usize,
    /// Keep every n-th smoothed frame (2: 5 features per second).
    pub downsample: usize,
    /// Step pattern of the warping path.
    pub step_pattern: StepPattern,
    /// Refuse cost matrices larger than this many cells (memory: 16 bytes each).
    pub max_cells: usize,
}

impl Default for AlignConfig {
    fn default() -> Self {
        Self {
            smoothing_frames: 9,
            downsample: 2,
            step_pattern: StepPattern::Classic,
            max_cells: 40_000_000,
        }
    }
}

impl AlignConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.smoothing_frames == 0 || self.downsample == 0 || self.max_cells == 0 {
            return Err("smoothing_frames, downsample and max_cells must be at least 1".into());
        }
        Ok(())
    }
}

/// The alignment of recording A (rows) with recording B (columns).
#[derive(Debug, Clone)]
pub struct Alignment {
    /// Features per second.
    pub rate: f64,
    /// Total cost of the path.
    pub cost: f64,
    /// Path as (A frame, B frame).
    pub path: Vec<(usize, usize)>,
    /// The local cost matrix (for plotting).
    pub matrix: CostMatrix,
}

impl Alignment {
    /// The path in seconds.
    pub fn path_s(&self) -> Vec<(f64, f64)> {
        self.path
            .iter()
            .map(|&(a, b)| (a as f64 / self.rate, b as f64 / self.rate))
            .collect()
    }

    /// Cost per path step.
    pub fn mean_cost(&self) -> f64 {
        self.cost / self.path.len().max(1) as f64
    }
}

/// Aligns two recordings given as 10 Hz chroma shares (`frame_rate` frames/s).
pub fn align(a: &[[u8; 12]], b: &[[u8; 12]], frame_rate: f64, cfg: &AlignConfig) -> Result<Alignment, MatchError> {
    let x = cens_of_shares(a, cfg.smoothing_frames, cfg.downsample);
    let y = cens_of_shares(b, cfg.smoothing_frames, cfg.downsample);
    let cells = x.len().saturating_mul(y.len());
    if cells > cfg.max_cells {
        return Err(MatchError::TooLarge {
            cells,
            max: cfg.max_cells,
        });
    }
    let matrix = CostMatrix::cosine(&x, &y)?;
    let d = dtw(&matrix, cfg.step_pattern)?;
    Ok(Alignment {
        rate: frame_rate / cfg.downsample.max(1) as f64,
        cost: d.cost,
        path: d.path,
        matrix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{melody, tune};

    #[test]
    fn a_slower_performance_aligns_along_its_tempo() {
        let t = tune(40, 5);
        let a = melody(&t, 0.5); // 20 s
        let b = melody(&t, 0.75); // the same at 2/3 the tempo: 30 s
        let al = align(&a, &b, 10.0, &AlignConfig::default()).unwrap();
        let path = al.path_s();
        assert_eq!(path.first(), Some(&(0.0, 0.0)));
        // Halfway through A (10 s) is halfway through B (15 s).
        let mid = path.iter().find(|p| p.0 >= 10.0).unwrap();
        assert!((mid.1 - 15.0).abs() <= 1.0, "{mid:?}");
        assert!(al.mean_cost() < 0.1, "{}", al.mean_cost());
        let tiny = AlignConfig {
            max_cells: 10,
            ..AlignConfig::default()
        };
        assert!(matches!(align(&a, &b, 10.0, &tiny), Err(MatchError::TooLarge { .. })));
    }
}
