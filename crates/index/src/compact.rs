//! Compaction: the rows of deleted songs are reclaimed.
//!
//! A delete only removes the song's SQLite record; its rows stay in the
//! append-only files, and its vectors in the HNSW graphs (usearch marks
//! them deleted) and its postings in the landmark index, so a library that
//! takes uploads and deletes for months grows on disk and in memory.
//! Compaction copies the live songs' rows, in the same order, into the next
//! generation of the row files and builds the in-memory indexes over them;
//! one SQLite transaction then records the new row ranges and generation.
//!
//! Kill-safe at every step: before the commit the library is the old one
//! (the new files are removed by the next writer that opens it); after it,
//! the new one (the old files are removed the same way). The saved
//! fingerprint graph's descriptor (`ann.json`) is removed before the
//! commit, so a kill before the new graph is saved leaves it to be
//! rebuilt, never a graph of the old row numbers that looks current.
//!
//! In steps, so that a server keeps answering queries *and taking songs*
//! meanwhile: [`Library::begin_compaction`], then per song
//! [`Library::compaction_rows`] (shared access for a memory copy of the
//! song's rows) and [`Compaction::take`] (the long part, the files and the
//! graphs, without the library), then [`Library::finish_compaction`]
//! (exclusive: the catch-up, the commit and the switch). Songs may be added
//! and deleted between the steps: the finish catches up with them (the
//! added songs' rows are appended to the new files and their vectors,
//! landmarks and shingles added; the deleted ones leave the new indexes
//! and keep dead rows for the next compaction). Songs added during the
//! steps can be taken before the finish the same way as the others
//! ([`Library::compaction_added`] under shared access, then
//! [`Compaction::take_added`] without the library), so that the finish,
//! under exclusive access, only handles the songs changed since. Measured in
//! `docs/reliability.md`: a server's uploads and deletes waited for a whole
//! compaction (about 95 s at 14 h) when it held the writer, and queries
//! stalled behind commits waiting for steps that held the shared lock
//! through the graph's insertions.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use rusqlite::params;
use sampleid_landmarks::codec;
use sampleid_landmarks::{LandmarkIndex, PairConfig};
use serde::Serialize;

use crate::ann::Ann;
use crate::shingles::Shingles;
use crate::store::RowFile;
use crate::{IndexError, Library, RowKind, Song, io, open_row_files, remove_other_generations, song_key};

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compacted {
    /// Live songs (all kept).
    pub songs: usize,
    /// The row files' generation now.
    pub generation: u64,
    /// Rows of deleted songs removed: segments (fingerprint and node rows),
    /// chroma frames, peaks and quads.
    pub segments_removed: u64,
    pub chroma_frames_removed: u64,
    pub peaks_removed: u64,
    pub quads_removed: u64,
    /// Bytes of the library directory before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// The committed counts and live songs a compaction began from.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    generation: u64,
    ids: Vec<i64>,
}

/// A compaction under way, not yet committed (see the module docs).
pub struct Compaction {
    before: Snapshot,
    generation: u64,
    /// The songs live when it began, with their ranges in the current
    /// files, and the same songs with their new ranges, in row order.
    old: Vec<Song>,
    songs: Vec<Song>,
    /// Songs of `old` copied so far.
    copied: usize,
    /// Every song the compaction holds (or held) rows of: `old`'s and the
    /// songs added meanwhile that it has taken (song ids are never reused).
    taken: HashSet<i64>,
    /// New committed rows, chroma frames, peaks, quads.
    counts: [u64; 4],
    /// The next generation's row files, in [`RowKind::ALL`] order.
    files: Vec<(std::path::PathBuf, BufWriter<File>)>,
    ann: Ann,
    /// Whether the graph takes each song's vectors as it is copied (HNSW),
    /// or was made whole when the compaction began (IVF-PQ renumbers its
    /// lists; exact search has nothing to build).
    ann_per_song: bool,
    shingles: Option<Shingles>,
    landmarks: LandmarkIndex,
    bytes_before: u64,
    started: Instant,
}

impl std::fmt::Debug for Compaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compaction")
            .field("generation", &self.generation)
            .field("songs", &self.songs.len())
            .field("copied", &self.copied)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl Compaction {
    /// Whether every song it began with is copied ([`Library::compaction_step`]
    /// has nothing left to do).
    pub fn is_prepared(&self) -> bool {
        self.copied == self.old.len()
    }
}

/// Syncs a directory's entries (best effort: not every filesystem can).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Bytes of the files in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

impl Library {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            generation: self.generation,
            ids: self.songs.iter().map(|s| s.id).collect(),
        }
    }

    /// Rows of deleted songs still in the files: segments, chroma frames,
    /// peaks, quads. All zero when a compaction would reclaim nothing.
    pub fn dead_rows(&self) -> [u64; 4] {
        let live = |f: fn(&Song) -> u64| self.songs.iter().map(f).sum::<u64>();
        [
            self.rows - live(|s| s.segments),
            self.chroma_rows - live(|s| s.chroma_frames),
            self.peak_rows - live(|s| s.peaks),
            self.quad_rows - live(|s| s.quads),
        ]
    }

    /// The row files' generation (0 until the first compaction).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Begins a compaction: the next generation's row files are created
    /// (empty) and the new indexes made, changing nothing the library
    /// reads. Writers only. Then [`Library::compaction_step`] until it says
    /// done, then [`Library::finish_compaction`]; songs may be added and
    /// deleted in between.
    pub fn begin_compaction(&self) -> Result<Compaction, IndexError> {
        if self._lock.is_none() {
            return Err(IndexError::Input("the library is open for reading only".into()));
        }
        let started = Instant::now();
        let bytes_before = dir_bytes(&self.dir);
        let generation = self.generation + 1;
        let old = self.songs.clone();
        let mut songs = old.clone();
        let mut next = [0u64; 4];
        for s in &mut songs {
            place(s, &mut next);
        }
        let mut files = Vec::new();
        for k in RowKind::ALL {
            let path = k.path(&self.dir, generation);
            let file = File::create(&path).map_err(io(&path))?;
            files.push((path, BufWriter::with_capacity(1 << 20, file)));
        }
        // The graphs are built from the old rows (the same bytes), keyed as
        // the new rows will be.
        let moves: Vec<(u64, u64, u64)> = old
            .iter()
            .zip(&songs)
            .map(|(o, n)| (o.first_row, n.first_row, o.segments))
            .collect();
        let ann = self.ann.compaction_start(self, &self.cfg, &moves)?;
        let ann_per_song = ann.is_hnsw();
        let shingles = self.shingles.as_ref().map(|sh| sh.empty()).transpose()?;
        Ok(Compaction {
            before: self.snapshot(),
            generation,
            taken: old.iter().map(|s| s.id).collect(),
            old,
            songs,
            copied: 0,
            counts: next,
            files,
            ann,
            ann_per_song,
            shingles,
            landmarks: LandmarkIndex::new(PairConfig::default()),
            bytes_before,
            started,
        })
    }

    /// The next song a compaction copies, its rows copied out of the
    /// library (shared access, a memory copy: hold the lock for this only),
    /// for [`Compaction::take`], which does the work without the library.
    /// `None` when every song is copied.
    pub fn compaction_rows(&self, c: &Compaction) -> Result<Option<SongRows>, IndexError> {
        if self.generation != c.before.generation {
            return Err(IndexError::Input(
                "another compaction finished since this one began; begin it again".into(),
            ));
        }
        Ok(c.old
            .get(c.copied)
            .map(|old| self.song_rows(old, c.songs[c.copied].clone())))
    }

    /// The songs added since the compaction began that it has not taken
    /// yet, at most `max` of them, their rows copied out (shared access, a
    /// memory copy), for [`Compaction::take_added`] without the library:
    /// what [`Library::finish_compaction`] is left to catch up with under
    /// exclusive access is then only what was added after this call. Empty
    /// until every song of the start is copied.
    pub fn compaction_added(&self, c: &Compaction, max: usize) -> Result<Vec<SongRows>, IndexError> {
        if self.generation != c.before.generation {
            return Err(IndexError::Input(
                "another compaction finished since this one began; begin it again".into(),
            ));
        }
        if !c.is_prepared() {
            return Ok(Vec::new());
        }
        let mut next = c.counts;
        Ok(self
            .songs
            .iter()
            .filter(|s| !c.taken.contains(&s.id))
            .take(max)
            .map(|old| {
                let mut new = old.clone();
                place(&mut new, &mut next);
                self.song_rows(old, new)
            })
            .collect())
    }

    /// One step: [`Library::compaction_rows`] and [`Compaction::take`].
    /// Returns whether every song is copied.
    pub fn compaction_step(&self, c: &mut Compaction) -> Result<bool, IndexError> {
        match self.compaction_rows(c)? {
            None => Ok(true),
            Some(rows) => c.take(rows),
        }
    }

    /// Song `old`'s rows, to be placed as `new` says.
    fn song_rows(&self, old: &Song, new: Song) -> SongRows {
        let copy = |f: &RowFile, first: u64, n: u64| f.rows(first, n).to_vec();
        SongRows {
            bytes: [
                copy(&self.fingerprints, old.first_row, old.segments),
                copy(&self.nodes, old.first_row, old.segments),
                copy(&self.chroma, old.chroma_first, old.chroma_frames),
                copy(&self.peak_file, old.peaks_first, old.peaks),
                copy(&self.quad_file, old.quads_first, old.quads),
            ],
            new,
            dim: self.layout.dim,
        }
    }

    /// [`Library::begin_compaction`] and every step: the live songs' rows in
    /// the next generation's files and the indexes over them, not yet
    /// committed.
    pub fn prepare_compaction(&self) -> Result<Compaction, IndexError> {
        let mut c = self.begin_compaction()?;
        while !self.compaction_step(&mut c)? {}
        Ok(c)
    }

    /// Commits a prepared compaction and switches to it; the old row files
    /// are removed and the new graphs saved. Songs added or deleted since it
    /// began are caught up with first (see the module docs). Refused, with
    /// nothing changed, when it is not prepared or another compaction
    /// finished since it began.
    pub fn finish_compaction(&mut self, mut c: Compaction) -> Result<Compacted, IndexError> {
        if self._lock.is_none() {
            return Err(IndexError::Input("the library is open for reading only".into()));
        }
        if self.generation != c.before.generation {
            return Err(IndexError::Input(
                "another compaction finished since this one began; begin it again".into(),
            ));
        }
        if !c.is_prepared() {
            return Err(IndexError::Input(format!(
                "the compaction has copied {} of {} songs; finish its steps first",
                c.copied,
                c.old.len()
            )));
        }
        let (added, deleted) = self.catch_up(&mut c)?;
        for (path, out) in std::mem::take(&mut c.files) {
            let file = out.into_inner().map_err(|e| io(&path)(e.into_error()))?;
            file.sync_all().map_err(io(&path))?;
        }
        sync_dir(&self.dir);
        c.landmarks.seal();
        if added + deleted > 0 {
            tracing::info!(added, deleted, "compaction caught up with the songs changed meanwhile");
        }
        let [rows, chroma_rows, peak_rows, quad_rows] = c.counts;
        // Opened before the commit: after it, nothing may fail before the switch.
        let (fingerprints, nodes, chroma, peak_file, quad_file) =
            open_row_files(&self.dir, c.generation, &self.layout, c.counts, true)?;
        // The fingerprint graph's keys are row numbers: its descriptor goes
        // before the commit. The shingle graph's keys are song ids and
        // seconds, which a compaction keeps: a saved one stays valid.
        let ann_json = self.dir.join("ann.json");
        match std::fs::remove_file(&ann_json) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&ann_json)(e)),
        }
        sync_dir(&self.dir);
        {
            let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            let tx = conn.unchecked_transaction().map_err(self.sql())?;
            {
                let mut update = tx
                    .prepare(
                        "UPDATE songs SET first_row=?1, chroma_first=?2, peaks_first=?3, quads_first=?4 WHERE id=?5",
                    )
                    .map_err(self.sql())?;
                for s in &c.songs {
                    update
                        .execute(params![
                            s.first_row as i64,
                            s.chroma_first as i64,
                            s.peaks_first as i64,
                            s.quads_first as i64,
                            s.id
                        ])
                        .map_err(self.sql())?;
                }
            }
            for (k, v) in [
                ("rows", rows),
                ("chroma_rows", chroma_rows),
                ("peak_rows", peak_rows),
                ("quad_rows", quad_rows),
                ("generation", c.generation),
            ] {
                tx.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
                    params![k, v.to_string()],
                )
                .map_err(self.sql())?;
            }
            tx.commit().map_err(self.sql())?;
        }
        // The old files hold every row of the new ones (the songs added
        // meanwhile included) and the dead rows.
        let [r0, c0, p0, q0] = [self.rows, self.chroma_rows, self.peak_rows, self.quad_rows];
        let report = |bytes_after| Compacted {
            songs: c.songs.len(),
            generation: c.generation,
            segments_removed: r0.saturating_sub(rows),
            chroma_frames_removed: c0.saturating_sub(chroma_rows),
            peaks_removed: p0.saturating_sub(peak_rows),
            quads_removed: q0.saturating_sub(quad_rows),
            bytes_before: c.bytes_before,
            bytes_after,
        };
        self.generation = c.generation;
        (self.rows, self.chroma_rows, self.peak_rows, self.quad_rows) = (rows, chroma_rows, peak_rows, quad_rows);
        (self.fingerprints, self.nodes, self.chroma) = (fingerprints, nodes, chroma);
        (self.peak_file, self.quad_file) = (peak_file, quad_file);
        self.ann = c.ann;
        self.landmarks = c.landmarks;
        if c.shingles.is_some() {
            self.shingles = c.shingles;
        }
        self.songs = c.songs.clone();
        // Songs added meanwhile may have brought an untrained IVF-PQ
        // library to its training size.
        let mut ann = std::mem::replace(&mut self.ann, Ann::Exact);
        let trained = ann.train_if_due(self);
        self.ann = ann;
        if let Err(e) = trained {
            tracing::warn!("compacted, but IVF-PQ could not be trained yet: {e}");
        }
        remove_other_generations(&self.dir, self.generation);
        if let Err(e) = self.save_ann() {
            // Committed: the graphs are rebuilt from the rows at the next open.
            tracing::warn!("compacted, but the new graphs could not be saved: {e}");
        }
        let out = report(dir_bytes(&self.dir));
        tracing::info!(?out, "compacted");
        Ok(out)
    }

    /// [`Library::prepare_compaction`] then [`Library::finish_compaction`].
    pub fn compact(&mut self) -> Result<Compacted, IndexError> {
        let c = self.prepare_compaction()?;
        self.finish_compaction(c)
    }

    /// Brings a prepared compaction up to the songs as they are now:
    /// returns (songs added, songs deleted) since it began.
    fn catch_up(&self, c: &mut Compaction) -> Result<(usize, usize), IndexError> {
        let live: HashSet<i64> = self.songs.iter().map(|s| s.id).collect();
        let mut deleted = 0;
        for s in c.songs.iter().filter(|s| !live.contains(&s.id)) {
            // Its rows stay in the new files, dead, for the next compaction.
            c.ann.remove(s.first_row, s.segments)?;
            c.landmarks.remove(song_key(s.id)?);
            if let Some(sh) = &mut c.shingles {
                sh.remove(s)?;
            }
            deleted += 1;
        }
        c.songs.retain(|s| live.contains(&s.id));
        let added: Vec<Song> = self
            .songs
            .iter()
            .filter(|s| !c.taken.contains(&s.id))
            .cloned()
            .collect();
        for old in &added {
            let mut new = old.clone();
            place(&mut new, &mut c.counts.clone());
            c.take_added(self.song_rows(old, new))?;
        }
        Ok((added.len(), deleted))
    }
}

/// Gives `s` the ranges at `next` (rows, chroma frames, peaks, quads) and
/// moves `next` past them.
fn place(s: &mut Song, next: &mut [u64; 4]) {
    s.first_row = next[0];
    s.chroma_first = next[1];
    s.peaks_first = next[2];
    s.quads_first = next[3];
    next[0] += s.segments;
    next[1] += s.chroma_frames;
    next[2] += s.peaks;
    next[3] += s.quads;
}

/// One song's rows copied out of a library for a compaction (see
/// [`Library::compaction_rows`]), in [`RowKind::ALL`] order.
pub struct SongRows {
    bytes: [Vec<u8>; 5],
    /// The song as the compaction places it.
    new: Song,
    dim: usize,
}

impl std::fmt::Debug for SongRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SongRows")
            .field("song", &self.new.id)
            .finish_non_exhaustive()
    }
}

impl Compaction {
    /// Copies a song's rows (from [`Library::compaction_rows`]) into the
    /// new files and indexes; the library is not needed, so its lock need
    /// not be held. Returns whether every song is copied.
    pub fn take(&mut self, rows: SongRows) -> Result<bool, IndexError> {
        match self.songs.get(self.copied) {
            Some(s) if s.id == rows.new.id && !self.is_prepared() => {}
            _ => {
                return Err(IndexError::Input(format!(
                    "song {} is not the next one this compaction copies",
                    rows.new.id
                )));
            }
        }
        self.absorb(&rows, self.ann_per_song)?;
        self.copied += 1;
        if self.is_prepared() {
            tracing::info!(
                generation = self.generation,
                songs = self.songs.len(),
                seconds = self.started.elapsed().as_secs_f64(),
                "compaction prepared"
            );
        }
        Ok(self.is_prepared())
    }

    /// Takes a song added since the compaction began (from
    /// [`Library::compaction_added`]) without the library: its rows are
    /// appended to the new files and it joins every new index (IVF-PQ
    /// encodes its vectors one by one). The rows must be the next ones the
    /// compaction places.
    pub fn take_added(&mut self, rows: SongRows) -> Result<(), IndexError> {
        let s = &rows.new;
        let placed = [s.first_row, s.chroma_first, s.peaks_first, s.quads_first];
        if !self.is_prepared() || self.taken.contains(&s.id) || placed != self.counts {
            return Err(IndexError::Input(format!(
                "song {} is not the next added song this compaction takes",
                s.id
            )));
        }
        self.absorb(&rows, true)?;
        for (n, k) in self
            .counts
            .iter_mut()
            .zip([s.segments, s.chroma_frames, s.peaks, s.quads])
        {
            *n += k;
        }
        self.taken.insert(s.id);
        self.songs.push(rows.new);
        Ok(())
    }

    /// Appends `rows` to the new files, where `rows.new` places them, and
    /// adds the song to the new indexes; the graph only when `with_ann`.
    fn absorb(&mut self, rows: &SongRows, with_ann: bool) -> Result<(), IndexError> {
        for ((path, out), bytes) in self.files.iter_mut().zip(&rows.bytes) {
            out.write_all(bytes).map_err(io(path))?;
        }
        let [fingerprints, _, chroma, peaks, quads] = &rows.bytes;
        let song = &rows.new;
        if with_ann {
            self.ann
                .add_vectors(song.first_row, &crate::store::f16_to_f32(fingerprints), rows.dim)?;
        }
        if let Some(sh) = &mut self.shingles {
            // Keyed by song id and second, which a compaction keeps.
            let frames: Vec<[u8; crate::CHROMA_BYTES]> = chroma
                .chunks_exact(crate::CHROMA_BYTES)
                .map(|c| c.try_into().expect("whole frames"))
                .collect();
            sh.add_chroma(song.id, &frames)?;
        }
        if song.peaks > 0 {
            let damaged = |e: sampleid_landmarks::LandmarkError| IndexError::Damaged(e.to_string());
            let peaks = codec::decode_peaks(peaks).map_err(damaged)?;
            let quads = codec::decode_quads(quads).map_err(damaged)?;
            self.landmarks.insert(song_key(song.id)?, peaks, &quads);
        }
        Ok(())
    }
}
