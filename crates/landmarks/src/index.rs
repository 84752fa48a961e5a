//! [`LandmarkIndex`]: the in-memory search structures over a library's
//! landmarks, grown song by song (no rebuild when songs are added).
//!
//! - Pair hashes → postings (song, anchor frame), in a hash map.
//! - Quads in a uniform grid over the four hash coordinates (cells of
//!   [`CELL`]: a range query of radius r ≤ `CELL` / 2 probes at most 2⁴
//!   cells) and a fifth axis, ln ρ with ρ = A's bin / (B's bin − A's bin).
//!   ρ does not change under a pitch shift or a speed change (both bins
//!   scale by the same factor), so the fine pitch coherence that the search
//!   demands of a hit (A where the quad's B − A spacing puts it, ±3 bins) is
//!   a narrow range of ρ that a query probes directly instead of filtering
//!   hits afterwards. ρ is the fastest-varying part of a cell's key, so a
//!   query's ρ range in one 4-D cell is one contiguous run of entries.
//! - The cells live in one array ordered by key with a dense table of where
//!   each key starts (compressed sparse rows): a probe is two reads, no
//!   hashing. Songs added later go to a small pending map, merged into the
//!   array when it holds 1/16 of the array's entries (and by [`seal`]).
//!   A measured alternative would be a k-d tree; the grid needs no
//!   rebalancing when songs are added.
//! - Each song's peaks, frame-ordered, for verification.
//!
//! Deleting a song drops its peaks; its postings stay until the library is
//! opened again and are skipped (their song is gone).
//!
//! [`seal`]: LandmarkIndex::seal

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use sampleid_peaks::Peak;

use crate::{PairConfig, Quad, pairs};

/// Width of a grid cell in hash space: twice the default search radius, so
/// that a range query probes at most 2⁴ cells per ρ range.
/// Measured with `sampleid bench landmarks` (10 s queries, identical
/// answers, with a hash map of cells): with 0.03 cells (3⁴ probes) the quad
/// search took 25 ms at 1 h and 213 ms at 100 h; with 0.06, 4.4 ms and
/// 117 ms: probes cost more than scanning the extra entries of larger cells.
pub const CELL: f32 = 0.06;
const CELLS: u32 = 18; // ⌈1 / CELL⌉ + 1: hash values lie in [0, 1].

/// Width of the ρ axis in ln ρ, and its extent: ρ below e⁻⁴ or above e⁴
/// shares the first or last cell. A query's ρ range is ±3 bins of A, about
/// ±6 % at 400 Hz; narrower cells scan fewer entries outside it but make
/// the start table larger. Measured with `sampleid bench landmarks` at
/// 100 h (24 pitch, tempo and speed clips of 10 s, medians of two runs):
/// cells of 0.25 (13 MB table) 21.1–22.4 ms per search, 0.125 (14 MB with
/// the triangle below) 17.0–17.5 ms, 0.0625 (28 MB) 14.9–15.3 ms.
const LOG_RHO_CELL: f64 = 0.125;
const LOG_RHO_MIN: f64 = -4.0;
const RHO_CELLS: u32 = 64;
/// C lies before D (time first), so C's time coordinate never exceeds
/// D's: only cells with c₀ ≤ c₂ hold quads, 171 of the 18² pairs.
const TRIANGLE: u32 = CELLS * (CELLS + 1) / 2;
/// Keys of the grid: 18² × 171 hash cells × the ρ cells (3.5 M keys: the
/// table of where each starts is 14 MB).
const KEYS: usize = (CELLS * CELLS * TRIANGLE * RHO_CELLS) as usize;
/// Pending entries merged into the array at this many, or at 1/16 of the
/// array's size if that is more (amortised O(1) per entry).
const MERGE_MIN: usize = 16_384;

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
    /// Grid entries ordered by key (whole and inline, hash quantised to
    /// 1/65535), so that a range query scans memory in order …
    cells: Vec<GridEntry>,
    /// … key k's entries being `cells[starts[k]..starts[k + 1]]` (empty
    /// until the first merge).
    starts: Vec<u32>,
    /// Entries added since the last merge, by 4-D cell (their ρ is tested
    /// while scanning: one lookup per cell instead of one per ρ cell).
    pending: FxHashMap<u32, Vec<GridEntry>>,
    n_pending: usize,
    n_quads: usize,
    peaks: HashMap<u32, Vec<Peak>>,
    /// Live songs by key (keys are small: library song ids).
    live: Vec<bool>,
    n_pairs: usize,
}

/// A quad in a grid cell: its hash quantised to u16, its song and its A
/// and B (24 bytes).
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

    /// The cell of ρ = A bin / (B bin − A bin) (the last when B is not
    /// above A).
    fn rho_cell(&self) -> u32 {
        if self.b_bin > self.a_bin {
            rho_cell(self.a_bin as f64 / (self.b_bin - self.a_bin) as f64)
        } else {
            RHO_CELLS - 1
        }
    }

    /// Whether ρ = A bin / (B bin − A bin) lies in [lo, hi] (never when B
    /// is not above A).
    fn rho_within(&self, lo: f64, hi: f64) -> bool {
        let (a, b) = (self.a_bin as f64, self.b_bin as f64);
        b > a && a >= lo * (b - a) && a <= hi * (b - a)
    }
}

fn quantise(v: f32) -> u16 {
    (v.clamp(0.0, 1.0) * 65535.0).round() as u16
}

fn cell(v: f32) -> u32 {
    ((v / CELL).floor().max(0.0) as u32).min(CELLS - 1)
}

fn rho_cell(rho: f64) -> u32 {
    if rho.is_nan() || rho <= 0.0 {
        return 0;
    }
    ((rho.ln() - LOG_RHO_MIN) / LOG_RHO_CELL)
        .floor()
        .clamp(0.0, (RHO_CELLS - 1) as f64) as u32
}

/// Where a range query of `hash` starts in the grid's order (for visiting
/// query quads in memory order).
pub fn probe_order(hash: [f32; 4], radius: f32) -> u32 {
    cell_key(hash.map(|v| cell(v - radius)))
}

/// One range query of [`LandmarkIndex::quads_near_each`]: stored quads
/// within `radius` of `hash` in every coordinate, with ρ in `rho`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuadProbe {
    /// The query quad's hash.
    pub hash: [f32; 4],
    /// Half the box's side in every hash coordinate.
    pub radius: f32,
    /// Inclusive range of the stored quad's ρ = A bin / (B bin − A bin).
    pub rho: (f64, f64),
}

impl QuadProbe {
    /// Calls `f` with each 4-D grid cell the probe's box touches.
    fn for_each_cell(&self, mut f: impl FnMut([u32; 4])) {
        let lo = self.hash.map(|v| cell(v - self.radius));
        let hi = self.hash.map(|v| cell(v + self.radius));
        for c3 in lo[3]..=hi[3] {
            for c2 in lo[2]..=hi[2] {
                for c1 in lo[1]..=hi[1] {
                    // Cells with c₀ > c₂ hold no quads (C lies before D).
                    for c0 in lo[0]..=hi[0].min(c2) {
                        f([c0, c1, c2, c3]);
                    }
                }
            }
        }
    }
}

/// Asks the processor to bring `x`'s cache line in (a hint: no effect on
/// what the program computes, and none at all off x86-64).
#[inline(always)]
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and reads nothing the program sees;
    // the pointer comes from a live reference.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((x as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// A grid key: ρ's cell varies fastest.
fn key(c: [u32; 4], r: u32) -> u32 {
    r + RHO_CELLS * cell_key(c)
}

/// The 4-D part of a key: (c₀, c₂) as a position in the triangle c₀ ≤ c₂
/// (a pair the other way round, which no quad has, shares its mirror's key).
fn cell_key(c: [u32; 4]) -> u32 {
    let (x, y) = (c[0].min(c[2]), c[0].max(c[2]));
    y * (y + 1) / 2 + x + TRIANGLE * (c[1] + CELLS * c[3])
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
            let e = GridEntry {
                hash: q.hash.map(quantise),
                song,
                a_frame: q.a.0,
                a_bin: q.a.1.min(u16::MAX as u32) as u16,
                b_bin: q.b.1.min(u16::MAX as u32) as u16,
                b_dt: q.b.0.saturating_sub(q.a.0).min(u16::MAX as u32) as u16,
            };
            self.pending.entry(cell_key(q.hash.map(cell))).or_default().push(e);
            self.n_pending += 1;
            self.n_quads += 1;
        }
        if self.n_pending >= MERGE_MIN.max(self.cells.len() / 16) {
            self.seal();
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

    /// Merges the quads added since the last merge into the searchable
    /// array (inserting does this by itself from time to time; call it
    /// after adding many songs, so that queries probe no pending map).
    pub fn seal(&mut self) {
        if self.n_pending == 0 {
            return;
        }
        let mut starts = vec![0u32; KEYS + 1];
        let old = |k: usize| -> &[GridEntry] {
            if self.starts.is_empty() {
                &[]
            } else {
                &self.cells[self.starts[k] as usize..self.starts[k + 1] as usize]
            }
        };
        for (k, n) in starts[1..].iter_mut().enumerate() {
            *n = old(k).len() as u32;
        }
        // The pending entries by whole key, in insertion order within a key.
        let mut pending: Vec<(u32, GridEntry)> = self
            .pending
            .iter()
            .flat_map(|(&c, v)| v.iter().map(move |e| (e.rho_cell() + RHO_CELLS * c, *e)))
            .collect();
        pending.sort_by_key(|(k, _)| *k);
        for (k, _) in &pending {
            starts[*k as usize + 1] += 1;
        }
        for k in 0..KEYS {
            starts[k + 1] += starts[k];
        }
        let mut next = pending.iter().peekable();
        let mut cells = Vec::with_capacity(starts[KEYS] as usize);
        for k in 0..KEYS {
            cells.extend_from_slice(old(k));
            while let Some((_, e)) = next.next_if(|(p, _)| *p as usize == k) {
                cells.push(*e);
            }
        }
        debug_assert_eq!(cells.len(), starts[KEYS] as usize);
        self.cells = cells;
        self.starts = starts;
        self.pending = FxHashMap::default();
        self.n_pending = 0;
    }

    /// Calls `on` with every stored quad of a live song whose hash lies
    /// within `radius` of `hash` in every coordinate and whose ρ = A bin /
    /// (B bin − A bin) lies in `rho`.
    pub fn quads_near(&self, hash: [f32; 4], radius: f32, rho: (f64, f64), on: &mut dyn FnMut(&RefQuad)) {
        self.quads_near_each(&[QuadProbe { hash, radius, rho }], &mut |_, r| on(r));
    }

    /// [`quads_near`](Self::quads_near) for many probes: `on` gets the
    /// probe's position and each stored quad found for it, probe by probe.
    ///
    /// The probes are pipelined: the grid rows of the next probes are
    /// fetched into the cache while this one's are scanned. A probe reads
    /// about 16 runs scattered over tens of megabytes at 100 h, and waiting
    /// for each in turn was most of the quad search's time (measured with
    /// `sampleid bench landmarks`, docs/landmarks.md).
    pub fn quads_near_each(&self, probes: &[QuadProbe], on: &mut dyn FnMut(usize, &RefQuad)) {
        /// Probes between fetching a run's bounds and scanning it.
        const AHEAD: usize = 2;
        let mut ring: [Vec<(usize, usize)>; AHEAD + 1] = Default::default();
        let runs = |p: &QuadProbe, out: &mut Vec<(usize, usize)>| {
            out.clear();
            if self.starts.is_empty() {
                return;
            }
            let (rlo, rhi) = (rho_cell(p.rho.0), rho_cell(p.rho.1));
            p.for_each_cell(|c| {
                let (a, b) = (
                    self.starts[key(c, rlo) as usize] as usize,
                    self.starts[key(c, rhi) as usize + 1] as usize,
                );
                if a < b {
                    prefetch(&self.cells[a]);
                    out.push((a, b));
                }
            });
        };
        let bounds_ahead = |p: &QuadProbe| {
            if self.starts.is_empty() {
                return;
            }
            let rlo = rho_cell(p.rho.0);
            p.for_each_cell(|c| prefetch(&self.starts[key(c, rlo) as usize]));
        };
        for (i, p) in probes.iter().enumerate().take(AHEAD) {
            runs(p, &mut ring[i]);
        }
        for (i, p) in probes.iter().enumerate() {
            if let Some(next) = probes.get(i + AHEAD + 1) {
                bounds_ahead(next);
            }
            if let Some(next) = probes.get(i + AHEAD) {
                runs(next, &mut ring[(i + AHEAD) % (AHEAD + 1)]);
            }
            let qlo = p.hash.map(|v| quantise(v - p.radius));
            let qhi = p.hash.map(|v| quantise(v + p.radius));
            let mut scan = |list: &[GridEntry]| {
                for e in list {
                    let inside = (0..4).all(|k| qlo[k] <= e.hash[k] && e.hash[k] <= qhi[k]);
                    if inside && e.rho_within(p.rho.0, p.rho.1) && self.contains(e.song) {
                        on(i, &e.quad());
                    }
                }
            };
            for &(a, b) in &ring[i % (AHEAD + 1)] {
                scan(&self.cells[a..b]);
            }
            if self.n_pending > 0 {
                p.for_each_cell(|c| {
                    if let Some(list) = self.pending.get(&cell_key(c)) {
                        scan(list);
                    }
                });
            }
        }
    }

    /// Quads added since the last merge (searched in the pending map).
    pub fn pending_quads(&self) -> usize {
        self.n_pending
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
