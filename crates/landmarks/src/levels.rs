//! The query's spectrogram levels, max-pooled: what verification reads to
//! tell a reference peak that the query *hides* from one the query *lacks*.
//!
//! Noise, reverb, a codec and music mixed over a sample all add energy (or
//! keep it): where a song's peak was, the query has at least about as much
//! energy as the song had, times the clip's gain, even when no query peak
//! is left there. Another recording that shares some of the song's notes
//! (the same synthesiser sample at the same pitch and tempo in another
//! piece) matches those notes' peaks but is quiet where the song plays
//! notes it does not. [`QueryLevels`] keeps the magnitude spectrogram's
//! maxima over small cells so that verification can ask "how loud is the
//! query around here?" for every mapped peak.

/// Frames per pooled cell (4 ms each): a quarter of the default
/// verification box's width, so that a box read from cells overshoots it
/// by at most one cell on each side.
pub const CELL_FRAMES: u32 = 3;
/// Bins per pooled cell (7.8 Hz each).
pub const CELL_BINS: u32 = 2;

/// Max-pooled log magnitudes of a query's spectrogram.
#[derive(Debug, Clone, Default)]
pub struct QueryLevels {
    /// Pooled columns (frequency cells) per row.
    cols: usize,
    /// ln(max magnitude) per cell, row-major (a row is `CELL_FRAMES` frames).
    cells: Vec<f32>,
    /// Per frequency cell, the loudest cell over the whole query.
    ceiling: Vec<f32>,
}

/// Builds [`QueryLevels`] from spectrogram columns as they come.
#[derive(Debug, Clone)]
pub struct LevelsBuilder {
    bins: usize,
    cols: usize,
    row: Vec<f32>,
    in_row: u32,
    cells: Vec<f32>,
}

/// Level of silence (ln of a magnitude of 1e-9).
const SILENT: f32 = -20.7;

impl LevelsBuilder {
    /// A builder for columns of `bins` magnitudes.
    pub fn new(bins: usize) -> Self {
        let cols = bins.div_ceil(CELL_BINS as usize);
        Self {
            bins,
            cols,
            row: vec![0.0; cols],
            in_row: 0,
            cells: Vec::new(),
        }
    }

    /// Adds the next frame's magnitudes (1.0 for a full-scale sine).
    pub fn push(&mut self, column: &[f32]) {
        for (b, &m) in column.iter().take(self.bins).enumerate() {
            let c = &mut self.row[b / CELL_BINS as usize];
            *c = c.max(m);
        }
        self.in_row += 1;
        if self.in_row == CELL_FRAMES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.cells
            .extend(self.row.iter().map(|&m| m.max(1e-9).ln().max(SILENT)));
        self.row.iter_mut().for_each(|m| *m = 0.0);
        self.in_row = 0;
    }

    /// The levels of every frame pushed.
    pub fn finish(mut self) -> QueryLevels {
        if self.in_row > 0 {
            self.flush();
        }
        let mut ceiling = vec![SILENT; self.cols];
        for row in self.cells.chunks(self.cols.max(1)) {
            for (c, &v) in ceiling.iter_mut().zip(row) {
                *c = c.max(v);
            }
        }
        QueryLevels {
            cols: self.cols,
            cells: self.cells,
            ceiling,
        }
    }
}

impl QueryLevels {
    /// Pooled rows.
    fn rows(&self) -> usize {
        self.cells.len() / self.cols.max(1)
    }

    /// ln of the loudest magnitude in the cells that cover frames `t ± half_t`
    /// and bins `f ± half_f`; `None` outside the query.
    pub fn box_max(&self, t: f64, f: f64, half_t: f64, half_f: f64) -> Option<f32> {
        let rows = self.rows();
        if rows == 0 || t < 0.0 || f < 0.0 {
            return None;
        }
        let r0 = ((t - half_t).max(0.0) / CELL_FRAMES as f64) as usize;
        let r1 = (((t + half_t) / CELL_FRAMES as f64) as usize).min(rows - 1);
        let c0 = ((f - half_f).max(0.0) / CELL_BINS as f64) as usize;
        let c1 = (((f + half_f) / CELL_BINS as f64) as usize).min(self.cols - 1);
        if r0 > r1 || c0 > c1 {
            return None;
        }
        let mut best = f32::NEG_INFINITY;
        for r in r0..=r1 {
            let row = &self.cells[r * self.cols..(r + 1) * self.cols];
            for &v in &row[c0..=c1] {
                best = best.max(v);
            }
        }
        Some(best)
    }

    /// ln of the loudest magnitude anywhere in the query within bins `f ± half_f`.
    pub fn ceiling(&self, f: f64, half_f: f64) -> Option<f32> {
        if self.cols == 0 || f < 0.0 {
            return None;
        }
        let c0 = ((f - half_f).max(0.0) / CELL_BINS as f64) as usize;
        let c1 = (((f + half_f) / CELL_BINS as f64) as usize).min(self.cols - 1);
        (c0 <= c1).then(|| self.ceiling[c0..=c1].iter().copied().fold(f32::NEG_INFINITY, f32::max))
    }
}
