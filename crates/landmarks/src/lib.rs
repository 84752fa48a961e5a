//! Landmarks: hashes of the geometry of spectral peaks ([`sampleid_peaks`]).
//!
//! - **Pairs** (Wang 2003; audfprint, Olaf): an anchor peak and a nearby later
//!   peak, hashed as (anchor bin, bin difference, frame difference). Exact
//!   matches of absolute frequency and time difference: the fast path for
//!   unmodified audio, and robust to music mixed over the sample (two peaks
//!   must survive, not four).
//! - **Quads** (Sonnleitner & Widmer, TASLP 2016): a root A, a far peak B
//!   and two peaks C, D inside the box spanned by A and B. The hash is C and
//!   D in the coordinates where A = (0, 0) and B = (1, 1): any shift and any
//!   independent scaling of the time and frequency axes (tempo, pitch, speed
//!   changes) leaves it unchanged. The reference side keeps the strongest
//!   quads per second; the query side keeps more.

mod pairs;
mod quads;

pub use pairs::{PairConfig, PairHash, pairs};
pub use quads::{Quad, QuadConfig, quad_hash, quads};

/// Errors of the landmark stage.
#[derive(Debug, thiserror::Error)]
pub enum LandmarkError {
    /// Settings that describe no landmark.
    #[error("invalid landmark configuration: {0}")]
    InvalidConfig(String),
}

#[cfg(test)]
mod tests;
