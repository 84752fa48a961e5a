//! Audio matching on chroma (Müller's music-retrieval methods): features
//! from the chroma shares a library stores, and the alignment that refines
//! a sample-identification match.
//!
//! [`refine`] aligns the whole query with a matched reference by subsequence
//! DTW on CENS-like features, once per circular shift of the query's pitch
//! classes. The best shift is the pitch change; the warping path gives where
//! the query's material lies in the reference and, from its slope, the time
//! ratio. Chroma ignores timbre and the step pattern allows local tempo
//! changes of up to 2×, so this finds a sample that the encoder matched to
//! the right song but the wrong place.

mod pairwise;
pub mod pca;
mod refine;
mod shingle;
mod version;

pub use pairwise::{AlignConfig, Alignment, align};
pub use refine::{RefineConfig, Refined, refine};
pub use shingle::{
    QueryShingle, SHINGLE_MODEL_VERSION, ShingleConfig, ShingleHit, ShingleIndex, ShingleModel, ShingleSearch,
    best_per_recording, new_hnsw,
};
pub use usearch::ScalarKind;
pub use version::{MatchConfig, VersionMatch, match_query, transpositions};

/// Errors of audio matching.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error(transparent)]
    Align(#[from] sampleid_align::AlignError),
    #[error("the query is too short to match ({seconds:.1} s; CENS needs a few seconds)")]
    TooShort { seconds: f64 },
    #[error(
        "the recordings are too long to align whole ({cells} cost cells, at most {max}; raise align.max_cells or cut them)"
    )]
    TooLarge { cells: usize, max: usize },
    #[error("shingle index: {0}")]
    Index(String),
}

use sampleid_features::{CensConfig, cens_from_energy, shares_to_energy};

/// CENS-like features of stored chroma shares (10 Hz): quantised, smoothed
/// over `smoothing_frames`, downsampled by `downsample`, ℓ2-normalised.
pub fn cens_of_shares(shares: &[[u8; 12]], smoothing_frames: usize, downsample: usize) -> Vec<[f32; 12]> {
    let cfg = CensConfig {
        smoothing_frames: smoothing_frames.max(1),
        downsample: downsample.max(1),
        ..CensConfig::default()
    };
    cens_from_energy(&shares_to_energy(shares), 0.0, &cfg)
}

/// `v` with its pitch classes moved up by `k` semitones: bin `(p + k) mod 12`
/// of the result holds bin `p` of `v`.
pub fn transpose(v: &[f32; 12], k: i32) -> [f32; 12] {
    let mut out = [0.0; 12];
    for (p, x) in v.iter().enumerate() {
        out[(p as i32 + k).rem_euclid(12) as usize] = *x;
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    /// A melody of `notes` (MIDI pitches, one per `note_s`) as chroma shares at 10 Hz.
    pub(crate) fn melody(notes: &[i32], note_s: f64) -> Vec<[u8; 12]> {
        let frames = (notes.len() as f64 * note_s * 10.0) as usize;
        (0..frames)
            .map(|f| {
                let n = notes[((f as f64 / 10.0) / note_s) as usize % notes.len()];
                let mut e = [0.02f32; 12];
                e[n.rem_euclid(12) as usize] = 1.0;
                e[(n + 7).rem_euclid(12) as usize] += 0.4; // a fifth: some harmonic content
                sampleid_features::quantise_shares(&e, 0.0)
            })
            .collect()
    }

    pub(crate) fn tune(len: usize, seed: u64) -> Vec<i32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                // A major scale: music has a key.
                60 + [0, 2, 4, 5, 7, 9, 11][((s >> 33) % 7) as usize]
            })
            .collect()
    }
}
