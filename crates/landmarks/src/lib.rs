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

pub mod codec;
pub mod index;
pub mod levels;
mod pairs;
mod quads;
pub mod search;

pub use index::LandmarkIndex;
pub use levels::{LevelsBuilder, QueryLevels};
pub use pairs::{PairConfig, PairHash, pairs};
pub use quads::{Quad, QuadConfig, quad_hash, quads};
pub use search::{LandmarkMatch, Method, QueryLandmarks, SearchConfig, search};

/// Version of the stored landmark rows (peak and quad settings of the
/// reference side and the row formats) that new libraries get; a library
/// records its version, and rows of different versions are never searched
/// together.
pub const STORED_VERSION: &str = "peaks-115x51-4ms/quads-151x75-225-425-b6-q18/v3";

/// The version before [`STORED_VERSION`]: the same peaks, 3 B per root and
/// at most 9 quads per second. A library made with it keeps it, and the
/// songs added to it get the same quads ([`reference_quads`]).
pub const STORED_VERSION_V2: &str = "peaks-115x51-4ms/quads-151x75-225-425-b3-q9/v2";

/// The reference side's quad settings of a stored landmark version; `None`
/// for a version this build does not know.
pub fn reference_quads(version: &str) -> Option<QuadConfig> {
    match version {
        STORED_VERSION => Some(QuadConfig::reference()),
        STORED_VERSION_V2 => Some(QuadConfig::reference_v2()),
        _ => None,
    }
}

/// The peaks a library stores for each song (pairs and verification): the
/// query side's denser extraction (115 × 51 filter, about 17 peaks/s), so
/// that a clip of unmodified audio finds nearly every stored peak again.
/// Quads are built from the sparser reference extraction
/// ([`sampleid_peaks::PeakConfig::reference`], 151 × 75) as in the paper.
/// Measured on bench-small (30 songs, 1.39 h): with the sparse peaks stored
/// (8.8/s) a quiet passage had 12 peaks in 5 s, too few to verify.
pub fn stored_peak_config() -> sampleid_peaks::PeakConfig {
    sampleid_peaks::PeakConfig::query()
}

/// Errors of the landmark stage.
#[derive(Debug, thiserror::Error)]
pub enum LandmarkError {
    /// Settings that describe no landmark.
    #[error("invalid landmark configuration: {0}")]
    InvalidConfig(String),
    /// Stored rows that do not decode.
    #[error("landmark rows: {0}")]
    Format(String),
}

#[cfg(test)]
mod tests;
