//! The library's chroma shingles (`shingles.usearch` with `shingles.json`):
//! every second of every song's stored chroma as a shingle of the
//! [`ShingleModel`] the engine gives, in an HNSW graph. Like the ANN index it
//! is a cache: rebuilt from `chroma.u8` when missing, stale, damaged or made
//! by another model, and extended with the songs added since it was saved.

use std::collections::HashSet;
use std::path::Path;

use sampleid_matching::{QueryShingle, ScalarKind, ShingleHit, ShingleModel, best_per_recording, new_hnsw};
use serde::{Deserialize, Serialize};
use usearch::Index;

use crate::{IndexError, Library, Song};

/// Bits of a key that hold the shingle's start (seconds into the song); the
/// song id is above them. 2^24 s is 194 days of audio per song.
const START_BITS: u32 = 24;

fn key(song: i64, start: u32) -> u64 {
    ((song as u64) << START_BITS) | start as u64
}

fn err(e: impl std::fmt::Display) -> IndexError {
    IndexError::Ann(format!("shingle index: {e}"))
}

#[derive(Serialize, Deserialize)]
struct Saved {
    /// [`ShingleModel::id`] of the model that made the vectors.
    model: String,
    /// Songs with ids up to this one were added when the file was written.
    last_song: i64,
    /// Vectors present.
    size: usize,
    /// SHA-256 of `shingles.usearch` (absent before it was recorded: rebuilt).
    #[serde(default)]
    sha256: Option<String>,
}

pub(crate) struct Shingles {
    model: ShingleModel,
    index: Index,
    /// Songs whose shingles are in the graph (a saved graph may still hold
    /// songs deleted since: they are never returned).
    live: HashSet<i64>,
    /// Chroma frames per second of the stored chroma.
    frame_rate: f64,
}

impl Shingles {
    /// Loads the saved graph if it belongs to `model` and adds the songs
    /// added since; builds it from the stored chroma otherwise.
    pub(crate) fn open(lib: &Library, model: ShingleModel, frame_rate: f64, writer: bool) -> Result<Self, IndexError> {
        let index = new_hnsw(model.dim(), ScalarKind::F32).map_err(err)?;
        let saved: Option<Saved> = std::fs::read(lib.dir.join("shingles.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut from = 0;
        if let Some(s) = saved.filter(|s| s.model == model.id()) {
            match crate::ann::load_usearch(&index, &lib.dir.join("shingles.usearch"), s.sha256.as_deref()) {
                true if index.size() == s.size && index.dimensions() == model.dim() => from = s.last_song,
                _ => {
                    tracing::warn!("the saved shingle index is stale or damaged; rebuilding it");
                    index.reset().map_err(err)?;
                }
            }
        }
        index
            .reserve_capacity_and_threads(index.capacity(), crate::ann::search_threads())
            .map_err(err)?;
        let mut me = Self {
            model,
            index,
            live: lib
                .songs
                .iter()
                .filter(|s| s.chroma_frames > 0 && s.id <= from)
                .map(|s| s.id)
                .collect(),
            frame_rate,
        };
        let new: Vec<&Song> = lib.songs.iter().filter(|s| s.id > from).collect();
        if !new.is_empty() {
            let started = std::time::Instant::now();
            for s in &new {
                me.add(lib, s)?;
            }
            tracing::info!(
                songs = new.len(),
                seconds = started.elapsed().as_secs_f64(),
                "added songs to the shingle index"
            );
            if writer {
                me.save(&lib.dir, lib.songs.iter().map(|s| s.id).max().unwrap_or(0))?;
            }
        }
        Ok(me)
    }

    /// An empty graph of the same model (a compaction's, which then takes
    /// each live song as it is copied).
    pub(crate) fn empty(&self) -> Result<Self, IndexError> {
        let index = new_hnsw(self.model.dim(), ScalarKind::F32).map_err(err)?;
        index
            .reserve_capacity_and_threads(1, crate::ann::search_threads())
            .map_err(err)?;
        Ok(Self {
            model: self.model.clone(),
            index,
            live: HashSet::new(),
            frame_rate: self.frame_rate,
        })
    }

    /// Adds a song's shingles (none when it has no chroma).
    pub(crate) fn add(&mut self, lib: &Library, song: &Song) -> Result<(), IndexError> {
        if song.chroma_frames == 0 {
            return Ok(());
        }
        self.add_chroma(song.id, &lib.chroma(song))
    }

    /// Adds the shingles of song `id` whose stored chroma is `chroma`.
    pub(crate) fn add_chroma(&mut self, id: i64, chroma: &[[u8; crate::CHROMA_BYTES]]) -> Result<(), IndexError> {
        if chroma.is_empty() {
            return Ok(());
        }
        let shingles = self.model.reference(chroma);
        let need = self.index.size() + shingles.len();
        if need > self.index.capacity() {
            self.index
                .reserve_capacity_and_threads(need.max(2 * self.index.capacity()), crate::ann::search_threads())
                .map_err(err)?;
        }
        // One after another, as the fingerprint graph (`ann.rs`, `add_range`):
        // parallel adds made another graph on every build.
        for (start, v) in &shingles {
            self.index.add(key(id, *start), v).map_err(err)?;
        }
        self.live.insert(id);
        Ok(())
    }

    /// Removes a song's shingles.
    pub(crate) fn remove(&mut self, song: &Song) -> Result<(), IndexError> {
        if self.live.remove(&song.id) {
            for start in 0..self.model.count(song.chroma_frames as usize) {
                self.index.remove(key(song.id, start as u32)).map_err(err)?;
            }
        }
        Ok(())
    }

    /// Writes the graph and what it covers (`last_song`: the newest song id added).
    pub(crate) fn save(&self, dir: &Path, last_song: i64) -> Result<(), IndexError> {
        let sha256 = crate::ann::save_usearch(&self.index, &dir.join("shingles.usearch"))?;
        let json = dir.join("shingles.json");
        let body = serde_json::to_vec(&Saved {
            model: self.model.id(),
            last_song,
            size: self.index.size(),
            sha256: Some(sha256),
        })
        .expect("serialisable");
        sampleid_fsio::atomic_write(&json, &body).map_err(crate::io(&json))
    }

    /// Shingles in the graph.
    pub(crate) fn len(&self) -> usize {
        self.index.size()
    }

    pub(crate) fn model(&self) -> &ShingleModel {
        &self.model
    }

    /// Each live song's nearest shingle to any of `queries` (`k` nearest
    /// fetched per query shingle), nearest first; `recording` is the song id.
    pub(crate) fn search(&self, queries: &[QueryShingle], k: usize) -> Result<Vec<ShingleHit>, IndexError> {
        if self.index.size() == 0 {
            return Ok(Vec::new());
        }
        let feature_s = ShingleModel::seconds_per_feature(self.frame_rate);
        let mut hits = Vec::new();
        for q in queries {
            if q.vector.len() != self.model.dim() {
                return Err(IndexError::Input(format!(
                    "a query shingle has {} values; the library's have {}",
                    q.vector.len(),
                    self.model.dim()
                )));
            }
            let mut waited = 0;
            let m = loop {
                match self
                    .index
                    .filtered_search(&q.vector, k, |key| self.live.contains(&((key >> START_BITS) as i64)))
                {
                    Ok(m) => break m,
                    Err(e) if e.to_string().contains("Reserve capacity") && waited < 10_000 => {
                        waited += 1;
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Err(e) => return Err(err(e)),
                }
            };
            for (key, d) in m.keys.into_iter().zip(m.distances) {
                hits.push(ShingleHit {
                    recording: (key >> START_BITS) as usize,
                    start_s: (key & ((1 << START_BITS) - 1)) as f64 * feature_s,
                    query_s: q.query_s,
                    distance: d,
                    tempo_factor: q.tempo_factor,
                    pitch_shift: q.pitch_shift,
                });
            }
        }
        Ok(best_per_recording(hits))
    }
}
