//! [`LandmarkIndex`]: the in-memory search structures over a library's
//! landmarks, grown song by song (no rebuild when songs are added).
//!
//! - Pair hashes → postings (song, anchor frame), in a hash map.
//! - Quads in a uniform 4-D grid of cell [`CELL`]: a range query of radius
//!   r ≤ `CELL` / 2 probes at most 2⁴ cells per ln(A bin) cell, each a
//!   posting list of quad numbers (larger radii probe more cells). A measured alternative would be a k-d
//!   tree; the grid needs no rebalancing when songs are added, and the
//!   reference quads fill only part of [0, 1]⁴, so the lists stay short.
//! - Each song's peaks, frame-ordered, for verification.
//!
//! Deleting a song drops its peaks; its postings stay until the library is
//! opened again and are skipped (their song is gone).

use std::collections::HashMap;

use sampleid_peaks::Peak;

use crate::{PairConfig, Quad, pairs};

/// Width of a grid cell in hash space: twice the default search radius, so
/// that a range query probes at most 2⁴ cells per root-frequency cell.
/// Measured with `sampleid bench landmarks` (10 s queries, identical
/// answers): with 0.03 cells (3⁴ probes) the quad search took 25 ms at 1 h
/// and 213 ms at 100 h; with 0.06, 4.4 ms and 117 ms: hash-map probes cost
/// more than scanning the extra entries of larger cells.
pub const CELL: f32 = 0.06;
const CELLS: u32 = 18; // ⌈1 / CELL⌉ + 1: hash values lie in [0, 1].

/// A pair posting: the song and the anchor's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    pub song: u32,
    pub frame: u32,
}

/// A stored quad and its song.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefQuad {
    pub song: u32,
    pub quad: Quad,
}

/// Landmarks of the live songs of a library, ready to search.
#[derive(Debug, Default)]
pub struct LandmarkIndex {
    pair_cfg: PairConfig,
    pairs: HashMap<u32, Vec<Posting>>,
    /// Cell → its quads, whole and inline (hash quantised to 1/65535), so
    /// that a range query scans memory in order.
    grid: HashMap<u32, Vec<GridEntry>>,
    n_quads: usize,
    peaks: HashMap<u32, Vec<Peak>>,
    /// Live songs by key (keys are small: library song ids).
    live: Vec<bool>,
    n_pairs: usize,
}

/// A quad in a grid cell: its hash quantised to u16, its song and its A
/// and B (28 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GridEntry {
    hash: [u16; 4],
    song: u32,
    a_frame: u32,
    a_bin: u16,
    b_bin: u16,
    b_dt: u16,
}

impl GridEntry {
    fn quad(&self) -> RefQuad {
        RefQuad {
            song: self.song,
            quad: Quad {
                hash: self.hash.map(|h| h as f32 / 65535.0),
                a: (self.a_frame, self.a_bin as u32),
                b: (self.a_frame + self.b_dt as u32, self.b_bin as u32),
                strength: 0.0,
            },
        }
    }
}

fn quantise(v: f32) -> u16 {
    (v.clamp(0.0, 1.0) * 65535.0).round() as u16
}

fn cell(v: f32) -> u32 {
    ((v / CELL).floor().max(0.0) as u32).min(CELLS - 1)
}

/// Width of the fifth grid axis, ln(A's bin): a pitch change moves A by at
/// most the frequency-scale range (ln(1.26 / 0.79) ≈ 0.47), so a query
/// probes 2–3 of these cells instead of every root frequency. Measured at
/// 100 h (`sampleid bench landmarks`): the quad search without it took
/// 400–430 ms per 10 s query.
const LOG_BIN_CELL: f64 = 0.25;
const LOG_BIN_CELLS: u32 = 26; // ln(1023) / 0.25 < 28; bins above share the last cell

fn log_bin_cell(bin: f64) -> u32 {
    ((bin.max(1.0).ln() / LOG_BIN_CELL).floor() as u32).min(LOG_BIN_CELLS - 1)
}

fn key(c: [u32; 4], a: u32) -> u32 {
    c[0] + CELLS * (c[1] + CELLS * (c[2] + CELLS * (c[3] + CELLS * a)))
}

impl LandmarkIndex {
    /// An empty index whose pair hashes follow `pair_cfg` (the reference side).
    pub fn new(pair_cfg: PairConfig) -> Self {
        Self {
            pair_cfg,
            ..Self::default()
        }
    }

    /// Adds a song's peaks (frame order) and quads.
    pub fn insert(&mut self, song: u32, peaks: Vec<Peak>, quads: &[Quad]) {
        for h in pairs(&peaks, &self.pair_cfg) {
            self.pairs
                .entry(h.hash)
                .or_default()
                .push(Posting { song, frame: h.frame });
            self.n_pairs += 1;
        }
        for q in quads {
            self.n_quads += 1;
            self.grid
                .entry(key(q.hash.map(cell), log_bin_cell(q.a.1 as f64)))
                .or_default()
                .push(GridEntry {
                    hash: q.hash.map(quantise),
                    song,
                    a_frame: q.a.0,
                    a_bin: q.a.1.min(u16::MAX as u32) as u16,
                    b_bin: q.b.1.min(u16::MAX as u32) as u16,
                    b_dt: q.b.0.saturating_sub(q.a.0).min(u16::MAX as u32) as u16,
                });
        }
        self.peaks.insert(song, peaks);
        if self.live.len() <= song as usize {
            self.live.resize(song as usize + 1, false);
        }
        self.live[song as usize] = true;
    }

    /// Forgets a song: its peaks go, its postings are skipped from now on.
    pub fn remove(&mut self, song: u32) {
        self.peaks.remove(&song);
        if let Some(l) = self.live.get_mut(song as usize) {
            *l = false;
        }
    }

    /// Whether `song` is live.
    pub fn contains(&self, song: u32) -> bool {
        self.live.get(song as usize).copied().unwrap_or(false)
    }

    /// The stored peaks of a live song.
    pub fn peaks(&self, song: u32) -> Option<&[Peak]> {
        self.peaks.get(&song).map(|p| p.as_slice())
    }

    /// The postings of a pair hash (including those of deleted songs).
    pub fn pair_postings(&self, hash: u32) -> &[Posting] {
        self.pairs.get(&hash).map_or(&[], |v| v.as_slice())
    }

    /// Calls `on` with every stored quad whose hash lies within `radius` of
    /// `hash` in every coordinate (live songs only) and whose root A's bin
    /// may lie in `a_bins` (a superset may be returned: the bin range is
    /// probed by whole cells).
    pub fn quads_near(&self, hash: [f32; 4], radius: f32, a_bins: (f64, f64), on: &mut dyn FnMut(&RefQuad)) {
        let lo = hash.map(|v| cell(v - radius));
        let hi = hash.map(|v| cell(v + radius));
        let qlo = hash.map(|v| quantise(v - radius));
        let qhi = hash.map(|v| quantise(v + radius));
        for ca in log_bin_cell(a_bins.0)..=log_bin_cell(a_bins.1) {
            for c3 in lo[3]..=hi[3] {
                for c2 in lo[2]..=hi[2] {
                    for c1 in lo[1]..=hi[1] {
                        for c0 in lo[0]..=hi[0] {
                            let Some(list) = self.grid.get(&key([c0, c1, c2, c3], ca)) else {
                                continue;
                            };
                            for e in list {
                                let inside = (0..4).all(|k| qlo[k] <= e.hash[k] && e.hash[k] <= qhi[k]);
                                if inside && self.contains(e.song) {
                                    on(&e.quad());
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// (live songs, stored peaks, pair postings, quads).
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        (
            self.peaks.len(),
            self.peaks.values().map(Vec::len).sum(),
            self.n_pairs,
            self.n_quads,
        )
    }
}
