//! Approximate nearest-neighbour search over the fingerprint rows.
//!
//! HNSW (usearch, inner product on unit vectors, f16 vectors) by default;
//! `exact` compares every row (the ground truth, fine for a few hours).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::ivfpq::{IvfPq, IvfPqConfig};
use crate::{IndexError, Library};

/// Which ANN structure a library uses (fixed when it is created).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnnKind {
    /// Hierarchical navigable small-world graph (usearch).
    Hnsw,
    /// Every row compared: exact, linear in the library size.
    Exact,
    /// Inverted file + product quantiser: compact, for very large libraries.
    IvfPq,
}

/// Settings of the ANN index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    pub ann: AnnKind,
    /// HNSW edges per node (M; usearch default 16).
    pub connectivity: usize,
    /// Candidate list while inserting (efConstruction).
    pub expansion_add: usize,
    /// Candidate list while searching (ef).
    pub expansion_search: usize,
    /// IVF-PQ settings (with `ann = "ivf-pq"`).
    pub ivfpq: IvfPqConfig,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self {
            ann: AnnKind::Hnsw,
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 64,
            ivfpq: IvfPqConfig::default(),
        }
    }
}

impl IndexConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.connectivity < 2 || self.expansion_add == 0 || self.expansion_search == 0 {
            return Err("connectivity must be at least 2, expansion_add and expansion_search at least 1".into());
        }
        self.ivfpq.validate()
    }
}

/// Search contexts to reserve in an HNSW index: concurrent searches beyond
/// this wait. A `sampleid serve` under load (200 clients, 2 cores) ran out
/// with usearch's default of one per hardware thread.
pub(crate) fn search_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (4 * cores.max(rayon::current_num_threads())).max(16)
}

pub(crate) enum Ann {
    Exact,
    Hnsw(Index),
    /// Exact search until the library is large enough to train on.
    IvfPq(Option<IvfPq>, IvfPqConfig),
}

fn ann_err(e: impl std::fmt::Display) -> IndexError {
    IndexError::Ann(e.to_string())
}

/// Writes a usearch graph to `path` (atomically) through our own file I/O,
/// serialised in memory first: usearch's own file writer reports any failure
/// as "Failed to serialize into stream", which on a full disk names neither
/// the file nor the cause. The buffer is transient (the graph's size, 2.8 MB
/// per hour of audio).
/// Returns the SHA-256 of the bytes written, to be recorded beside the file
/// (see [`load_usearch`]).
pub(crate) fn save_usearch(index: &Index, path: &std::path::Path) -> Result<String, IndexError> {
    let mut buf = vec![0u8; index.serialized_length()];
    index.save_to_buffer(&mut buf).map_err(ann_err)?;
    sampleid_fsio::atomic_write(path, &buf).map_err(crate::io(path))?;
    Ok(crate::hash::sha256_bytes(&buf))
}

/// Loads a usearch graph saved by [`save_usearch`] into `index`, only when
/// the file's bytes are the ones written (`sha256`, recorded beside it):
/// usearch trusts the graph it loads, and a damaged one makes a search read
/// out of bounds (a segmentation fault; found by fuzzing damaged
/// libraries). False (nothing loaded) when the file is missing, damaged or
/// has no recorded digest: the caller rebuilds the graph from the rows.
pub(crate) fn load_usearch(index: &Index, path: &std::path::Path, sha256: Option<&str>) -> bool {
    let Ok(bytes) = std::fs::read(path) else { return false };
    if sha256 != Some(crate::hash::sha256_bytes(&bytes).as_str()) {
        return false;
    }
    index.load_from_buffer(&bytes).is_ok()
}

#[derive(Serialize, Deserialize)]
struct Saved {
    /// Rows [0, rows) were added when the file was written.
    rows: u64,
    /// Vectors present (rows added minus rows removed).
    size: usize,
    /// SHA-256 of `ann.usearch` (absent before it was recorded: rebuilt).
    #[serde(default)]
    sha256: Option<String>,
}

impl Ann {
    pub(crate) fn open(lib: &Library, cfg: &IndexConfig, writer: bool) -> Result<Self, IndexError> {
        match cfg.ann {
            AnnKind::Exact => Ok(Self::Exact),
            AnnKind::Hnsw => {
                let index = new_index(lib.layout.dim, cfg)?;
                let file = lib.dir.join("ann.usearch");
                let saved: Option<Saved> = std::fs::read(lib.dir.join("ann.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let mut from = 0;
                if let Some(s) = saved.filter(|s| s.rows <= lib.rows) {
                    match load_usearch(&index, &file, s.sha256.as_deref()) {
                        true if index.size() == s.size => from = s.rows,
                        _ if s.sha256.is_none() && !writer => {
                            // Saved before digests were recorded: rebuilt in
                            // memory on every read-only open until a writer saves it.
                            tracing::warn!(
                                "the saved ANN index of {} predates its digest; rebuilding it in memory \
                                 (any `sampleid index --db` into the library saves it again, with its digest)",
                                lib.dir.display()
                            );
                            index.reset().map_err(ann_err)?;
                        }
                        _ => {
                            tracing::warn!("the saved ANN index is stale or damaged; rebuilding it");
                            index.reset().map_err(ann_err)?;
                        }
                    }
                }
                // Contexts for concurrent searches (a server runs several
                // queries at once, each fanning out over rayon).
                index
                    .reserve_capacity_and_threads(index.capacity(), search_threads())
                    .map_err(ann_err)?;
                let mut ann = Self::Hnsw(index);
                let added = ann.add_range(lib, from, lib.rows)?;
                if added > 0 {
                    tracing::info!(rows = added, "added rows to the ANN index");
                    if writer {
                        ann.save(&lib.dir, lib.rows)?;
                    }
                }
                Ok(ann)
            }
            AnnKind::IvfPq => {
                let saved: Option<Saved> = std::fs::read(lib.dir.join("ann.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let loaded = saved.filter(|s| s.rows <= lib.rows).and_then(|s| {
                    IvfPq::load(&lib.dir.join("ivfpq.bin"), lib.layout.dim)
                        .filter(|ix| ix.size() == s.size)
                        .map(|ix| (s.rows, ix))
                });
                let mut ann = match loaded {
                    Some((rows, ix)) => {
                        let mut a = Self::IvfPq(Some(ix), cfg.ivfpq.clone());
                        a.add_range(lib, rows, lib.rows)?;
                        a
                    }
                    None => Self::IvfPq(None, cfg.ivfpq.clone()),
                };
                if ann.maybe_train(lib)? && writer {
                    ann.save(&lib.dir, lib.rows)?;
                }
                Ok(ann)
            }
        }
    }

    /// IVF-PQ: trains on the live rows once there are enough, and adds them all.
    fn maybe_train(&mut self, lib: &Library) -> Result<bool, IndexError> {
        let Self::IvfPq(ix @ None, cfg) = self else {
            return Ok(false);
        };
        let live: Vec<u64> = lib
            .songs
            .iter()
            .flat_map(|s| s.first_row..s.first_row + s.segments)
            .collect();
        if live.len() < cfg.train_rows.max(256) {
            return Ok(false);
        }
        // At most 100k training vectors, evenly spread over the library.
        let step = live.len().div_ceil(100_000);
        let sample: Vec<f32> = live.iter().step_by(step).flat_map(|&r| lib.fingerprint(r)).collect();
        tracing::info!(vectors = sample.len() / lib.layout.dim, "training IVF-PQ");
        let mut trained = IvfPq::train(&sample, lib.layout.dim, cfg)?;
        for &r in &live {
            trained.add(r, &lib.fingerprint(r));
        }
        *ix = Some(trained);
        Ok(true)
    }

    /// Adds the live rows in [from, to).
    fn add_range(&mut self, lib: &Library, from: u64, to: u64) -> Result<usize, IndexError> {
        if let Self::IvfPq(ix, _) = self {
            let Some(ix) = ix else { return Ok(0) };
            let rows: Vec<u64> = (from..to).filter(|&r| lib.song_of(r).is_some()).collect();
            for &r in &rows {
                ix.add(r, &lib.fingerprint(r));
            }
            return Ok(rows.len());
        }
        let Self::Hnsw(index) = self else { return Ok(0) };
        let rows: Vec<u64> = (from..to).filter(|&r| lib.song_of(r).is_some()).collect();
        if rows.is_empty() {
            return Ok(0);
        }
        // Grow geometrically: a reserve per song would copy the graph each time.
        let need = index.size() + rows.len();
        if need > index.capacity() {
            index
                .reserve_capacity_and_threads(need.max(2 * index.capacity()), search_threads())
                .map_err(ann_err)?;
        }
        // One row after another, in row order: rows added in parallel made
        // a different graph on every run, and so different answers from the
        // same library content (issue 18). Measured on the 14.34 h library
        // (2 cores, medians of 3 whole runs): indexing 5 more songs 4.62 →
        // 5.00 s (1.07×); rebuilding its whole graph (98,850 rows) 31.8 →
        // 60.2 s (1.88×), which happens only for a missing or damaged graph.
        for &r in &rows {
            index.add(r, &lib.fingerprint(r)).map_err(ann_err)?;
        }
        Ok(rows.len())
    }

    pub(crate) fn add(&mut self, lib: &Library, first: u64, n: u64) -> Result<(), IndexError> {
        if self.maybe_train(lib)? {
            return Ok(()); // training added every row, these included
        }
        self.add_range(lib, first, first + n).map(|_| ())
    }

    /// A compaction's index as it begins (see `compact.rs`), over the rows
    /// as it renumbers them: each of `moves` is (old first row, new first
    /// row, rows) of a live song. IVF-PQ keeps its quantisers and only
    /// renumbers its lists, whole at once. An HNSW graph is made empty, with
    /// room for them all, and takes each song's vectors as it is copied
    /// ([`Ann::add_vectors`]): usearch cannot rename keys, and rows added one
    /// after another in row order, as [`Ann::add_range`], make the same
    /// graph on every run.
    pub(crate) fn compaction_start(
        &self,
        lib: &Library,
        cfg: &IndexConfig,
        moves: &[(u64, u64, u64)],
    ) -> Result<Self, IndexError> {
        match self {
            Self::Hnsw(_) => {
                let index = new_index(lib.layout.dim, cfg)?;
                let n: u64 = moves.iter().map(|m| m.2).sum();
                index
                    .reserve_capacity_and_threads((n as usize).max(1), search_threads())
                    .map_err(ann_err)?;
                Ok(Self::Hnsw(index))
            }
            Self::Exact => Ok(Self::Exact),
            Self::IvfPq(None, c) => Ok(Self::IvfPq(None, c.clone())),
            // The quantisers stay; only the lists are renumbered.
            Self::IvfPq(Some(ix), c) => {
                let map = |row: u64| {
                    let i = moves.partition_point(|m| m.0 <= row).checked_sub(1)?;
                    let (from, to, n) = moves[i];
                    (row < from + n).then(|| to + (row - from))
                };
                Ok(Self::IvfPq(Some(ix.renumbered(&map)), c.clone()))
            }
        }
    }

    /// Whether this is an HNSW graph.
    pub(crate) fn is_hnsw(&self) -> bool {
        matches!(self, Self::Hnsw(_))
    }

    /// Adds `vectors` (whole rows, row-major), keyed as rows `to ..` (a
    /// compaction's renumbering), one after another in row order.
    pub(crate) fn add_vectors(&mut self, to: u64, vectors: &[f32], dim: usize) -> Result<(), IndexError> {
        let n = vectors.len() / dim.max(1);
        match self {
            Self::Exact | Self::IvfPq(None, _) => Ok(()),
            Self::IvfPq(Some(ix), _) => {
                for (i, v) in vectors.chunks_exact(dim).enumerate() {
                    ix.add(to + i as u64, v);
                }
                Ok(())
            }
            Self::Hnsw(index) => {
                let need = index.size() + n;
                if need > index.capacity() {
                    index
                        .reserve_capacity_and_threads(need.max(2 * index.capacity()), search_threads())
                        .map_err(ann_err)?;
                }
                for (i, v) in vectors.chunks_exact(dim).enumerate() {
                    index.add(to + i as u64, v).map_err(ann_err)?;
                }
                Ok(())
            }
        }
    }

    /// IVF-PQ: trains (and adds every live row) once the library has
    /// enough rows; anything else: nothing.
    pub(crate) fn train_if_due(&mut self, lib: &Library) -> Result<(), IndexError> {
        self.maybe_train(lib).map(|_| ())
    }

    pub(crate) fn remove(&mut self, first: u64, n: u64) -> Result<(), IndexError> {
        if let Self::Hnsw(index) = self {
            for r in first..first + n {
                index.remove(r).map_err(ann_err)?;
            }
        }
        Ok(())
    }

    pub(crate) fn save(&self, dir: &std::path::Path, rows: u64) -> Result<(), IndexError> {
        let (size, sha256) = match self {
            Self::Exact | Self::IvfPq(None, _) => return Ok(()),
            Self::IvfPq(Some(ix), _) => {
                ix.save(&dir.join("ivfpq.bin"))?;
                (ix.size(), None)
            }
            Self::Hnsw(index) => {
                let sha256 = save_usearch(index, &dir.join("ann.usearch"))?;
                (index.size(), Some(sha256))
            }
        };
        let json = dir.join("ann.json");
        let body = serde_json::to_vec(&Saved { rows, size, sha256 }).expect("serialisable");
        sampleid_fsio::atomic_write(&json, &body).map_err(crate::io(&json))
    }

    pub(crate) fn nearest(&self, lib: &Library, q: &[f32], k: usize) -> Result<Vec<(u64, f32)>, IndexError> {
        match self {
            Self::Hnsw(index) => {
                if index.size() == 0 {
                    return Ok(Vec::new());
                }
                // Every search takes one of the index's per-thread contexts;
                // when all are busy (more concurrent searches than reserved),
                // wait for one rather than fail the query.
                let mut waited = 0;
                let m = loop {
                    match index.filtered_search(q, k * HNSW_POOL, |key| lib.song_of(key).is_some()) {
                        Ok(m) => break m,
                        Err(e) if e.to_string().contains("Reserve capacity") && waited < 10_000 => {
                            waited += 1;
                            std::thread::sleep(std::time::Duration::from_millis(1));
                        }
                        Err(e) => return Err(ann_err(e)),
                    }
                };
                // Scored again exactly and cut to k in content order: see HNSW_POOL.
                let cand = m.keys.into_iter().map(|r| (r, lib.similarity(r, q))).collect();
                Ok(best_k(lib, cand, k))
            }
            Self::IvfPq(Some(ix), cfg) => {
                let keep = |row: u64| lib.song_of(row).is_some();
                let cand: Vec<(u64, f32)> = ix
                    .search(q, k * cfg.refine.max(1), cfg.nprobe, &keep)
                    .into_iter()
                    .map(|(r, _)| (r, lib.similarity(r, q)))
                    .collect();
                Ok(best_k(lib, cand, k))
            }
            Self::Exact | Self::IvfPq(None, _) => {
                let mut all: Vec<(u64, f32)> = lib
                    .songs
                    .par_iter()
                    .flat_map_iter(|s| (s.first_row..s.first_row + s.segments).map(|r| (r, lib.similarity(r, q))))
                    .collect();
                let k = k.min(all.len());
                if k == 0 {
                    return Ok(Vec::new());
                }
                all.select_nth_unstable_by(k - 1, |a, b| by_content(lib, *a, *b));
                Ok(best_k(lib, all, k))
            }
        }
    }
}

/// HNSW asks its graph for this many times `k` neighbours, scores them
/// exactly against the stored rows and keeps the best `k`, ties broken by
/// content (the song's hash, then the segment). The graph depends on the
/// order in which songs were added; without this, the same songs added in
/// another order gave other candidates (ties between near-identical
/// segments of looped music, and the graph's own misses), and other answers
/// (`tests/library.rs`, `the_same_songs_added_in_another_order_give_the_same_answers`,
/// fails without it). On bench-users' 30 references indexed in two orders
/// (538 clips, `docs/reliability.md`): identical answers 387 → 397, the same
/// first song 529 → 532, the same accepted songs 538 both; what still differs
/// is the graph's approximation. The search costs the same: 40 neural
/// queries in 0.906 s against 0.910 s with a pool of 1 (median of 7 runs).
const HNSW_POOL: usize = 4;

/// `a` before `b`: higher similarity first, then by content (song hash,
/// segment), so that the order does not depend on row numbers.
fn by_content(lib: &Library, a: (u64, f32), b: (u64, f32)) -> std::cmp::Ordering {
    let key = |row: u64| lib.song_of(row).map(|(s, seg)| (s.hash.as_str(), seg));
    b.1.total_cmp(&a.1)
        .then_with(|| key(a.0).cmp(&key(b.0)))
        .then(a.0.cmp(&b.0))
}

/// The best `k` of `cand` in [`by_content`] order.
fn best_k(lib: &Library, mut cand: Vec<(u64, f32)>, k: usize) -> Vec<(u64, f32)> {
    cand.sort_by(|a, b| by_content(lib, *a, *b));
    cand.truncate(k);
    cand
}

fn new_index(dim: usize, cfg: &IndexConfig) -> Result<Index, IndexError> {
    let opts = IndexOptions {
        dimensions: dim,
        metric: MetricKind::IP,
        quantization: ScalarKind::F16,
        connectivity: cfg.connectivity,
        expansion_add: cfg.expansion_add,
        expansion_search: cfg.expansion_search,
        multi: false,
    };
    Index::new(&opts).map_err(ann_err)
}
