//! The streaming 2-D maximum filter that picks peaks from spectrogram columns.

use std::collections::VecDeque;

use crate::filter::running_max;
use crate::{Peak, PeakConfig, PeakError};

/// Picks the peaks of a spectrogram pushed column by column (see the crate
/// docs for the rule). A column's peaks are final `filter_frames / 2`
/// columns later; memory is that many columns.
pub struct PeakPicker {
    half_t: usize,
    half_f: usize,
    bins: usize,
    floor: f32,
    /// Raw columns of frames `first ..`; the last `half_t + 2` are kept.
    raw: VecDeque<Vec<f32>>,
    first: usize,
    /// Per bin: (frame, frequency-filtered value), values non-increasing
    /// from the front; the front is the window's maximum at its earliest frame.
    queues: Vec<VecDeque<(usize, f32)>>,
    /// Frames pushed.
    frames: usize,
    /// Next frame whose peaks are decided.
    centre: usize,
    scratch: (Vec<f32>, Vec<f32>, Vec<f32>),
}

impl PeakPicker {
    /// A picker for columns of `cfg.bins()` values.
    pub fn new(cfg: &PeakConfig) -> Result<Self, PeakError> {
        cfg.validate()?;
        Ok(Self::with_shape(
            cfg.bins(),
            cfg.filter_frames,
            cfg.filter_bins,
            10f32.powf(cfg.floor_db / 20.0),
        ))
    }

    /// A picker for columns of `bins` values with a `frames` × `height`
    /// filter (both odd) and a linear magnitude floor.
    pub fn with_shape(bins: usize, frames: usize, height: usize, floor: f32) -> Self {
        Self {
            half_t: frames / 2,
            half_f: height / 2,
            bins,
            floor,
            raw: VecDeque::new(),
            first: 0,
            queues: vec![VecDeque::new(); bins],
            frames: 0,
            centre: 0,
            scratch: (Vec::new(), Vec::new(), Vec::new()),
        }
    }

    /// Pushes the next column (`bins` values); calls `on` with the peaks of
    /// the column that became final, lowest bin first.
    pub fn push(&mut self, column: &[f32], on: &mut dyn FnMut(Peak)) {
        assert_eq!(column.len(), self.bins, "a column has one value per bin");
        let t = self.frames;
        let (fmax, pre, suf) = &mut self.scratch;
        running_max(column, self.half_f, fmax, pre, suf);
        for (q, &v) in self.queues.iter_mut().zip(fmax.iter()) {
            // Equal values stay: the earliest frame of the maximum wins ties.
            while q.back().is_some_and(|&(_, b)| b < v) {
                q.pop_back();
            }
            q.push_back((t, v));
        }
        let mut col = if self.raw.len() > self.half_t + 2 {
            self.first += 1;
            self.raw.pop_front().expect("non-empty")
        } else {
            Vec::with_capacity(self.bins)
        };
        col.clear();
        col.extend_from_slice(column);
        self.raw.push_back(col);
        self.frames += 1;
        if t >= self.half_t {
            self.decide(on);
        }
    }

    /// Ends the input: decides the last columns.
    pub fn finish(&mut self, on: &mut dyn FnMut(Peak)) {
        while self.centre < self.frames {
            self.decide(on);
        }
    }

    /// Decides the peaks of frame `centre`, whose window is complete (or
    /// clipped at the end of the input).
    fn decide(&mut self, on: &mut dyn FnMut(Peak)) {
        let c = self.centre;
        self.centre += 1;
        let oldest = c.saturating_sub(self.half_t);
        for q in &mut self.queues {
            while q.front().is_some_and(|&(t, _)| t < oldest) {
                q.pop_front();
            }
        }
        let col = |t: usize| -> Option<&Vec<f32>> { t.checked_sub(self.first).and_then(|i| self.raw.get(i)) };
        let Some(here) = col(c) else { return };
        for f in 0..self.bins {
            let v = here[f];
            let Some(&(t_max, max)) = self.queues[f].front() else {
                continue;
            };
            if t_max != c || v != max || v < self.floor {
                continue;
            }
            // Ties in frequency go to the lowest bin.
            let lo = f.saturating_sub(self.half_f);
            if here[lo..f].contains(&v) {
                continue;
            }
            // Not flat: some 3 × 3 neighbour is lower.
            let (f0, f1) = (f.saturating_sub(1), (f + 1).min(self.bins - 1));
            let mut min = f32::INFINITY;
            for t in c.saturating_sub(1)..=c + 1 {
                if let Some(column) = col(t) {
                    min = column[f0..=f1].iter().fold(min, |m, &u| m.min(u));
                }
            }
            if min < v {
                on(Peak {
                    frame: c as u32,
                    bin: f as u32,
                    magnitude: v,
                });
            }
        }
    }
}
