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
//! In two steps so that a server keeps answering queries meanwhile:
//! [`Library::prepare_compaction`] (shared access: the copy and the graphs,
//! the long part) and [`Library::finish_compaction`] (exclusive: the commit
//! and the switch, milliseconds). The writer must not add or delete songs
//! between them; if it did, the finish refuses and changes nothing.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use rusqlite::params;
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

/// The committed counts and live songs a compaction was prepared from.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    generation: u64,
    counts: [u64; 4],
    ids: Vec<i64>,
}

/// A compaction written but not yet committed (see the module docs).
pub struct Compaction {
    before: Snapshot,
    generation: u64,
    /// The live songs with their new ranges, in row order.
    songs: Vec<Song>,
    /// New committed rows, chroma frames, peaks, quads.
    counts: [u64; 4],
    ann: Ann,
    shingles: Option<Shingles>,
    landmarks: LandmarkIndex,
    bytes_before: u64,
}

impl std::fmt::Debug for Compaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compaction")
            .field("generation", &self.generation)
            .field("songs", &self.songs.len())
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

/// Writes the rows `ranges` (first, count) of `from` one after another
/// into a new file at `path`, synced.
fn write_rows(path: &Path, from: &RowFile, ranges: impl Iterator<Item = (u64, u64)>) -> Result<(), IndexError> {
    let file = File::create(path).map_err(io(path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    for (first, n) in ranges {
        out.write_all(from.rows(first, n)).map_err(io(path))?;
    }
    let file = out.into_inner().map_err(|e| io(path)(e.into_error()))?;
    file.sync_all().map_err(io(path))
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
            counts: [self.rows, self.chroma_rows, self.peak_rows, self.quad_rows],
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

    /// Writes the live songs' rows into the next generation of the row
    /// files and builds the indexes over them, changing nothing the library
    /// reads: queries go on meanwhile. Writers only; the writer must add
    /// and delete nothing until [`Library::finish_compaction`].
    pub fn prepare_compaction(&self) -> Result<Compaction, IndexError> {
        if self._lock.is_none() {
            return Err(IndexError::Input("the library is open for reading only".into()));
        }
        let started = std::time::Instant::now();
        let bytes_before = dir_bytes(&self.dir);
        let generation = self.generation + 1;
        let mut songs = self.songs.clone();
        let mut next = [0u64; 4];
        for s in &mut songs {
            s.first_row = next[0];
            s.chroma_first = next[1];
            s.peaks_first = next[2];
            s.quads_first = next[3];
            next[0] += s.segments;
            next[1] += s.chroma_frames;
            next[2] += s.peaks;
            next[3] += s.quads;
        }
        let old = &self.songs;
        let path = |k: RowKind| k.path(&self.dir, generation);
        write_rows(
            &path(RowKind::Fingerprints),
            &self.fingerprints,
            old.iter().map(|s| (s.first_row, s.segments)),
        )?;
        write_rows(
            &path(RowKind::Nodes),
            &self.nodes,
            old.iter().map(|s| (s.first_row, s.segments)),
        )?;
        write_rows(
            &path(RowKind::Chroma),
            &self.chroma,
            old.iter().map(|s| (s.chroma_first, s.chroma_frames)),
        )?;
        write_rows(
            &path(RowKind::Peaks),
            &self.peak_file,
            old.iter().map(|s| (s.peaks_first, s.peaks)),
        )?;
        write_rows(
            &path(RowKind::Quads),
            &self.quad_file,
            old.iter().map(|s| (s.quads_first, s.quads)),
        )?;
        sync_dir(&self.dir);
        let copied = started.elapsed().as_secs_f64();

        // The indexes are built from the old rows (the same bytes), keyed
        // as the new rows will be.
        let moves: Vec<(u64, u64, u64)> = old
            .iter()
            .zip(&songs)
            .map(|(o, n)| (o.first_row, n.first_row, o.segments))
            .collect();
        let ann = self.ann.rebuilt(self, &self.cfg, &moves)?;
        let shingles = self.shingles.as_ref().map(|sh| sh.fresh(self)).transpose()?;
        let mut landmarks = LandmarkIndex::new(PairConfig::default());
        for s in old.iter().filter(|s| s.peaks > 0) {
            let (peaks, quads) = self.stored_landmarks(s)?;
            landmarks.insert(song_key(s.id)?, peaks, &quads);
        }
        landmarks.seal();
        tracing::info!(
            generation,
            songs = songs.len(),
            copy_s = copied,
            total_s = started.elapsed().as_secs_f64(),
            "compaction prepared"
        );
        Ok(Compaction {
            before: self.snapshot(),
            generation,
            songs,
            counts: next,
            ann,
            shingles,
            landmarks,
            bytes_before,
        })
    }

    /// Commits a prepared compaction and switches to it; the old row files
    /// are removed and the new graphs saved. Refused, with nothing changed,
    /// when the library is not as it was when the compaction was prepared.
    pub fn finish_compaction(&mut self, c: Compaction) -> Result<Compacted, IndexError> {
        if self._lock.is_none() {
            return Err(IndexError::Input("the library is open for reading only".into()));
        }
        if self.snapshot() != c.before {
            return Err(IndexError::Input(
                "the library changed since the compaction was prepared; prepare it again".into(),
            ));
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
        let [r0, c0, p0, q0] = c.before.counts;
        let report = |bytes_after| Compacted {
            songs: c.songs.len(),
            generation: c.generation,
            segments_removed: r0 - rows,
            chroma_frames_removed: c0 - chroma_rows,
            peaks_removed: p0 - peak_rows,
            quads_removed: q0 - quad_rows,
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
}
