//! Alignment of two feature sequences (Müller, *Fundamentals of Music
//! Processing*, ch. 3 and 7): the cost matrix, classic DTW with its optimal
//! warping path, subsequence DTW (the query may start and end anywhere in the
//! reference) with its matching curve and best hits, and soft-DTW (Cuturi &
//! Blondel 2017) with its gradient, the expected alignment.
//!
//! Everything works on a [`CostMatrix`] (query rows × reference columns), so
//! the same code aligns chroma, CENS, or any other feature.

mod cost;
mod dtw;
mod soft;
mod subseq;

pub use cost::CostMatrix;
pub use dtw::{Dtw, StepPattern, dtw};
pub use soft::{SoftDtw, soft_dtw};
pub use subseq::{Hit, Subsequence, subsequence_dtw};

/// Errors of the alignment library.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AlignError {
    #[error("cannot align an empty sequence")]
    Empty,
    #[error("features have different dimensions ({0} and {1})")]
    Dimension(usize, usize),
    #[error("cost matrix data has {got} values, {rows} × {cols} expected")]
    Shape { rows: usize, cols: usize, got: usize },
    #[error("no warping path of this step pattern joins a {0} × {1} matrix")]
    NoPath(usize, usize),
    #[error("soft-DTW needs gamma > 0 (got {0})")]
    Gamma(f64),
    #[error("cost matrix holds a value that is not finite")]
    NotFinite,
}
