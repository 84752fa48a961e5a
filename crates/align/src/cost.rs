//! The local cost matrix between two feature sequences.

use crate::AlignError;

/// Local costs `C(i, j)` between query frame `i` (row) and reference frame `j` (column).
#[derive(Debug, Clone, PartialEq)]
pub struct CostMatrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl CostMatrix {
    /// A matrix from row-major values.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self, AlignError> {
        if rows == 0 || cols == 0 {
            return Err(AlignError::Empty);
        }
        if data.len() != rows * cols {
            return Err(AlignError::Shape {
                rows,
                cols,
                got: data.len(),
            });
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(AlignError::NotFinite);
        }
        Ok(Self { rows, cols, data })
    }

    /// Cosine distance `1 − ⟨x, y⟩ / (‖x‖ ‖y‖)` (0 for identical directions,
    /// the usual cost for chroma and CENS); a zero vector costs 1 against anything.
    pub fn cosine<X: AsRef<[f32]>, Y: AsRef<[f32]>>(x: &[X], y: &[Y]) -> Result<Self, AlignError> {
        Self::build(x, y, |a, b| {
            let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
            for (&p, &q) in a.iter().zip(b) {
                dot += p as f64 * q as f64;
                na += p as f64 * p as f64;
                nb += q as f64 * q as f64;
            }
            if na <= 0.0 || nb <= 0.0 {
                1.0
            } else {
                (1.0 - dot / (na.sqrt() * nb.sqrt())).max(0.0)
            }
        })
    }

    /// `1 − ⟨x, y⟩` for frames that are already unit vectors (CENS, ℓ2 chroma):
    /// the cosine distance without the norms, about three times cheaper.
    pub fn unit_dot<X: AsRef<[f32]>, Y: AsRef<[f32]>>(x: &[X], y: &[Y]) -> Result<Self, AlignError> {
        Self::build(x, y, |a, b| {
            let dot: f32 = a.iter().zip(b).map(|(p, q)| p * q).sum();
            (1.0 - dot as f64).max(0.0)
        })
    }

    /// Euclidean distance between frames.
    pub fn euclidean<X: AsRef<[f32]>, Y: AsRef<[f32]>>(x: &[X], y: &[Y]) -> Result<Self, AlignError> {
        Self::build(x, y, |a, b| {
            a.iter()
                .zip(b)
                .map(|(&p, &q)| (p as f64 - q as f64).powi(2))
                .sum::<f64>()
                .sqrt()
        })
    }

    fn build<X: AsRef<[f32]>, Y: AsRef<[f32]>>(
        x: &[X],
        y: &[Y],
        f: impl Fn(&[f32], &[f32]) -> f64,
    ) -> Result<Self, AlignError> {
        let (Some(x0), Some(_)) = (x.first(), y.first()) else {
            return Err(AlignError::Empty);
        };
        let d = x0.as_ref().len();
        let dims = x
            .iter()
            .map(|v| v.as_ref().len())
            .chain(y.iter().map(|v| v.as_ref().len()));
        if let Some(bad) = dims.into_iter().find(|&n| n != d) {
            return Err(AlignError::Dimension(d, bad));
        }
        let mut data = Vec::with_capacity(x.len() * y.len());
        for a in x {
            for b in y {
                data.push(f(a.as_ref(), b.as_ref()));
            }
        }
        Self::new(x.len(), y.len(), data)
    }

    /// Query frames.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Reference frames.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `C(i, j)`.
    #[inline]
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    /// Row-major values.
    pub fn values(&self) -> &[f64] {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_costs_are_zero_on_equal_directions_and_one_on_orthogonal() {
        let c = CostMatrix::cosine(&[[1.0f32, 0.0], [0.0, 2.0]], &[[3.0f32, 0.0]]).unwrap();
        assert_eq!((c.rows(), c.cols()), (2, 1));
        assert!(c.at(0, 0).abs() < 1e-12);
        assert!((c.at(1, 0) - 1.0).abs() < 1e-12);
        let unit = CostMatrix::unit_dot(&[[0.6f32, 0.8]], &[[0.6f32, 0.8], [0.8, -0.6]]).unwrap();
        assert!(unit.at(0, 0).abs() < 1e-6 && (unit.at(0, 1) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn bad_shapes_are_refused() {
        let empty: [[f32; 2]; 0] = [];
        assert_eq!(CostMatrix::cosine(&empty, &[[1.0f32, 0.0]]), Err(AlignError::Empty));
        assert_eq!(
            CostMatrix::euclidean(&[vec![1.0f32, 0.0]], &[vec![1.0f32]]),
            Err(AlignError::Dimension(2, 1))
        );
        assert!(matches!(
            CostMatrix::new(2, 2, vec![0.0; 3]),
            Err(AlignError::Shape { .. })
        ));
        assert_eq!(CostMatrix::new(1, 1, vec![f64::NAN]), Err(AlignError::NotFinite));
    }
}
