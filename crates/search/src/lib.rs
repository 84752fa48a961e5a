//! The search stage: for every query segment, the nearest reference segments
//! (cosine similarity of unit fingerprints); then, as GraFPrint does, every
//! candidate alignment (song, start) that a hit implies is scored by the mean
//! similarity of all query segments to the reference segments they align with.
//! The best alignment per song gives its score and where the match is.
//!
//! The search here is exact (every reference row is compared). It is the
//! ground truth that approximate indexes (HNSW, IVF-PQ) are measured against,
//! and fast enough for libraries of a few hours.

pub mod query;

use std::collections::{HashMap, HashSet};

pub use query::{Match, QueryConfig, QuerySegment, SearchError, query};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Search settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// Nearest reference segments per query segment (GraFPrint: 20).
    pub top_k: usize,
    /// Alignments whose mean similarity is below this are rejected.
    pub min_score: f32,
    /// At most this many songs per query.
    pub max_matches: usize,
    /// An alignment must cover at least this share of the query's segments.
    pub min_overlap: f32,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            top_k: 20,
            min_score: 0.0,
            max_matches: 10,
            min_overlap: 0.5,
        }
    }
}

/// Fingerprints of the songs of a library, in memory.
#[derive(Debug, Clone)]
pub struct Library {
    dim: usize,
    rows: Vec<f32>,
    /// Per row: (song, segment index in the song).
    owner: Vec<(u32, u32)>,
    /// Per song: first row, number of rows.
    songs: Vec<(usize, usize)>,
}

/// A song found in a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SongMatch {
    /// Index of the song in the library (order of [`Library::add`]).
    pub song: usize,
    /// Mean cosine similarity of the aligned segments.
    pub score: f32,
    /// First query segment of the alignment.
    pub query_segment: usize,
    /// Reference segment aligned with it.
    pub reference_segment: usize,
    /// Query segments the alignment covers.
    pub segments: usize,
}

impl Library {
    /// An empty library of `dim`-dimensional fingerprints.
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            rows: Vec::new(),
            owner: Vec::new(),
            songs: Vec::new(),
        }
    }

    /// Adds a song's fingerprints (`n × dim`, row-major); returns its index.
    pub fn add(&mut self, fingerprints: &[f32]) -> usize {
        let n = fingerprints.len() / self.dim;
        let song = self.songs.len();
        self.songs.push((self.owner.len(), n));
        self.rows.extend_from_slice(&fingerprints[..n * self.dim]);
        self.owner.extend((0..n).map(|j| (song as u32, j as u32)));
        song
    }

    /// Number of songs.
    pub fn songs(&self) -> usize {
        self.songs.len()
    }

    /// Number of segments over all songs.
    pub fn segments(&self) -> usize {
        self.owner.len()
    }

    fn row(&self, r: usize) -> &[f32] {
        &self.rows[r * self.dim..(r + 1) * self.dim]
    }

    /// The `k` rows most similar to `q`, best first: (row, similarity).
    pub fn nearest(&self, q: &[f32], k: usize) -> Vec<(usize, f32)> {
        let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
        for r in 0..self.owner.len() {
            let s = dot(q, self.row(r));
            if best.len() < k || s > best[best.len() - 1].1 {
                let at = best.partition_point(|&(_, b)| b >= s);
                best.insert(at, (r, s));
                best.truncate(k);
            }
        }
        best
    }

    /// Songs in a query of `n × dim` fingerprints (consecutive segments), best first.
    pub fn search(&self, query: &[f32], cfg: &SearchConfig) -> Vec<SongMatch> {
        let n = query.len() / self.dim;
        if n == 0 || self.owner.is_empty() {
            return Vec::new();
        }
        let q = |i: usize| &query[i * self.dim..(i + 1) * self.dim];
        let hits: Vec<Vec<(usize, f32)>> = (0..n).into_par_iter().map(|i| self.nearest(q(i), cfg.top_k)).collect();
        // Candidate alignments: song and the reference segment where query segment 0 falls.
        let mut candidates: HashSet<(u32, i64)> = HashSet::new();
        for (i, h) in hits.iter().enumerate() {
            for &(r, _) in h {
                let (song, seg) = self.owner[r];
                candidates.insert((song, seg as i64 - i as i64));
            }
        }
        let need = ((n as f32 * cfg.min_overlap).ceil() as usize).max(1);
        let mut per_song: HashMap<u32, SongMatch> = HashMap::new();
        for (song, start) in candidates {
            let (first, len) = self.songs[song as usize];
            let lo = (-start).max(0) as usize;
            let hi = ((len as i64 - start).max(0) as usize).min(n);
            if hi <= lo || hi - lo < need {
                continue;
            }
            let total: f32 = (lo..hi)
                .map(|i| dot(q(i), self.row(first + (start + i as i64) as usize)))
                .sum();
            let m = SongMatch {
                song: song as usize,
                score: total / (hi - lo) as f32,
                query_segment: lo,
                reference_segment: (start + lo as i64) as usize,
                segments: hi - lo,
            };
            let e = per_song.entry(song).or_insert_with(|| m.clone());
            if m.score > e.score {
                *e = m;
            }
        }
        let mut out: Vec<SongMatch> = per_song.into_values().filter(|m| m.score >= cfg.min_score).collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.song.cmp(&b.song)));
        out.truncate(cfg.max_matches);
        out
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic unit vectors.
    fn unit(seed: u64, dim: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let v: Vec<f32> = (0..dim)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    fn song(seed: u64, n: usize) -> Vec<f32> {
        (0..n).flat_map(|j| unit(seed * 1000 + j as u64, 16)).collect()
    }

    #[test]
    fn nearest_is_exact_and_sorted() {
        let mut lib = Library::new(16);
        lib.add(&song(1, 50));
        lib.add(&song(2, 50));
        let q = unit(7, 16);
        let got = lib.nearest(&q, 5);
        let mut all: Vec<(usize, f32)> = (0..100).map(|r| (r, dot(&q, lib.row(r)))).collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(got, all[..5].to_vec());
    }

    #[test]
    fn an_excerpt_is_found_at_its_offset_and_noise_is_not() {
        let mut lib = Library::new(16);
        for s in 1..=5 {
            lib.add(&song(s, 40));
        }
        // Segments 12..20 of song 3 (index 2), slightly perturbed.
        let src = song(3, 40);
        let query: Vec<f32> = src[12 * 16..20 * 16]
            .chunks(16)
            .enumerate()
            .flat_map(|(i, v)| {
                let noise = unit(500 + i as u64, 16);
                let w: Vec<f32> = v.iter().zip(&noise).map(|(a, b)| a + 0.3 * b).collect();
                let n = w.iter().map(|x| x * x).sum::<f32>().sqrt();
                w.into_iter().map(move |x| x / n)
            })
            .collect();
        let cfg = SearchConfig {
            min_score: 0.5,
            ..SearchConfig::default()
        };
        let m = lib.search(&query, &cfg);
        assert_eq!(m[0].song, 2);
        assert_eq!((m[0].query_segment, m[0].reference_segment, m[0].segments), (0, 12, 8));
        assert!(m[0].score > 0.8);
        assert_eq!(m.len(), 1, "unrelated songs fall below min_score: {m:?}");
        // Audio that is not in the library: nothing above the threshold.
        let other = song(99, 8);
        assert!(lib.search(&other, &cfg).is_empty());
    }

    #[test]
    fn a_query_that_starts_before_the_song_aligns_with_its_beginning() {
        let mut lib = Library::new(16);
        lib.add(&song(1, 30));
        lib.add(&song(2, 10));
        // 4 unrelated segments, then the first 6 of song 2.
        let mut query = song(77, 4);
        query.extend_from_slice(&song(2, 10)[..6 * 16]);
        let m = lib.search(&query, &SearchConfig::default());
        assert_eq!(m[0].song, 1);
        assert_eq!((m[0].query_segment, m[0].reference_segment, m[0].segments), (4, 0, 6));
    }
}
