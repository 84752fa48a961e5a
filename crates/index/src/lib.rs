//! The index stage: a music library on disk (`--db DIR`).
//!
//! - `library.sqlite` (SQLite, WAL): the songs (path as given, content hash,
//!   duration, time added, their rows) and what produced the rows (encoder and
//!   re-ranker versions, hop).
//! - `fingerprints.f16`: append-only, one row of `dim` f16 per segment.
//! - `nodes.i8`: append-only, one stored node matrix per segment (int8, the
//!   re-ranker's projection, see `sampleid-rerank`).
//! - `chroma.u8`: append-only, each song's chroma at 10 frames/s, 12 bytes
//!   per frame (each pitch class's share of the frame's energy × 255; a
//!   silent frame is all zeros), about 0.43 MB per hour. Audio matching
//!   (`sampleid match`) and the alignment that locates a sample, measures
//!   its time ratio and pitch shift run on it without the audio files.
//! - `peaks.lm` and `quads.lm`: append-only landmark rows
//!   ([`sampleid_landmarks::codec`]): each song's spectral peaks (8 bytes
//!   each, for verification; the pair hashes are derived from them when the
//!   library opens) and its quads (20 bytes each), about 0.9 MB per hour.
//!   Opening builds the in-memory [`LandmarkIndex`] over the live songs.
//! - `ann.usearch` (HNSW) or `ivfpq.bin` (IVF-PQ), with `ann.json`: the ANN
//!   index over the fingerprints, a cache that can always be rebuilt from
//!   `fingerprints.f16`.
//! - `shingles.usearch` with `shingles.json`: every second of every song's
//!   chroma as a shingle of the engine's [`ShingleModel`] (10 s of CENS
//!   reduced by a PCA fitted on the corpus's training split), in an HNSW
//!   graph: the candidates of audio matching, and evidence (optionally a
//!   third candidate source) of identification. A cache too, rebuilt from `chroma.u8` when missing,
//!   damaged or made by another model (1.3 MB per hour: 1.85 MB for the
//!   1.39 h bench-users library, against 0.43 MB of chroma).
//!
//! Durability: rows are appended and synced first, then one SQLite
//! transaction records the song and the new committed row count. A song is
//! reported indexed only after that commit. Opening for writing cuts the row
//! files back to the committed count, so a process killed at any moment
//! leaves a library that opens and holds every song it reported.
//!
//! Deleted songs' rows stay in the files until [`Library::prepare_compaction`]
//! and [`Library::finish_compaction`] copy the live rows into a new
//! generation of the row files (`fingerprints-1.f16`, …; generation 0 has
//! the plain names) and switch to it in one SQLite transaction; a writer
//! opening the library removes the files of every other generation.

mod ann;
mod compact;
mod ivfpq;
mod shingles;
mod store;

pub mod hash;

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use ann::Ann;
pub use ann::{AnnKind, IndexConfig};
pub use compact::{Compacted, Compaction};
pub use ivfpq::IvfPqConfig;
pub use sampleid_landmarks::LandmarkIndex;
use sampleid_landmarks::codec::{self, PEAK_BYTES, QUAD_BYTES};
use sampleid_landmarks::{PairConfig, Quad};
use sampleid_matching::{QueryShingle, ShingleHit, ShingleModel};
use sampleid_peaks::Peak;
use shingles::Shingles;
use store::RowFile;

/// Errors of the index stage.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{}: {err}", path.display())]
    Sql { path: PathBuf, err: rusqlite::Error },
    #[error("{} is not a sampleid library (no library.sqlite); create it with `sampleid index --db {}`", .0.display(), .0.display())]
    Missing(PathBuf),
    #[error("{} is being written by another sampleid process", .0.display())]
    Locked(PathBuf),
    #[error(
        "the library was built with {what} {theirs}, but {ours} is in use; re-index into a new --db or use the same model"
    )]
    Mismatch {
        what: &'static str,
        theirs: String,
        ours: String,
    },
    #[error("the library is damaged: {0}")]
    Damaged(String),
    #[error("ANN index: {0}")]
    Ann(String),
    #[error("input: {0}")]
    Input(String),
}

/// What produced the rows of a library; fixed when it is created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layout {
    /// Encoder version (fingerprints and node matrices change with it).
    pub encoder: String,
    /// Re-ranker version (its projection defines the stored nodes).
    pub reranker: String,
    /// Fingerprint dimension.
    pub dim: usize,
    /// Bytes of one stored node matrix.
    pub node_bytes: usize,
    /// Seconds between segment starts.
    pub hop_s: f64,
}

/// A song of the library.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Song {
    pub id: i64,
    /// The path as it was given to `index`.
    pub path: String,
    /// SHA-256 of the file's bytes (hex).
    pub hash: String,
    pub duration_s: f64,
    /// When it was added (UTC, RFC 3339).
    pub added: String,
    /// Its first row in the row files.
    pub first_row: u64,
    /// Its number of segments (rows).
    pub segments: u64,
    /// Its first chroma frame in `chroma.u8`.
    #[serde(skip)]
    pub chroma_first: u64,
    /// Its chroma frames (0 for songs indexed before chroma was stored).
    #[serde(skip)]
    pub chroma_frames: u64,
    /// Its first peak in `peaks.lm`.
    #[serde(skip)]
    pub peaks_first: u64,
    /// Its stored peaks (0 for songs indexed before landmarks were stored).
    #[serde(skip)]
    pub peaks: u64,
    /// Its first quad in `quads.lm`.
    #[serde(skip)]
    pub quads_first: u64,
    /// Its stored quads.
    #[serde(skip)]
    pub quads: u64,
}

/// A song's landmark rows: its peaks (reference extraction, frame order)
/// and its quads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SongLandmarks {
    pub peaks: Vec<Peak>,
    pub quads: Vec<Quad>,
}

/// Bytes of one stored chroma frame.
pub const CHROMA_BYTES: usize = 12;

/// Sizes of a library.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub songs: usize,
    pub hours: f64,
    pub segments: u64,
    /// Rows of deleted songs still in the row files.
    pub dead_segments: u64,
    /// Bytes of deleted songs' rows still in the row files (all of them),
    /// which `sampleid compact` reclaims.
    pub dead_bytes: u64,
    /// Bytes on disk, all files.
    pub bytes: u64,
    pub bytes_per_hour: f64,
    pub ann: AnnKind,
    pub layout: Layout,
    /// The version of the landmark rows ([`Library::landmark_version`]).
    pub landmarks: Option<String>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS songs(
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    duration_s REAL NOT NULL,
    added TEXT NOT NULL,
    first_row INTEGER NOT NULL,
    segments INTEGER NOT NULL,
    chroma_first INTEGER NOT NULL DEFAULT 0,
    chroma_frames INTEGER NOT NULL DEFAULT 0,
    peaks_first INTEGER NOT NULL DEFAULT 0,
    peaks INTEGER NOT NULL DEFAULT 0,
    quads_first INTEGER NOT NULL DEFAULT 0,
    quads INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS songs_path ON songs(path);
";

/// A library, open for reading or (with [`Library::open_writer`]) writing.
pub struct Library {
    dir: PathBuf,
    /// Behind a mutex so that a library can be shared by query threads.
    conn: std::sync::Mutex<Connection>,
    layout: Layout,
    cfg: IndexConfig,
    /// Committed rows (rows beyond this in the files are garbage).
    rows: u64,
    /// Live songs, sorted by first row.
    songs: Vec<Song>,
    fingerprints: RowFile,
    nodes: RowFile,
    /// Committed chroma frames.
    chroma_rows: u64,
    /// Chroma frames per second (meta `chroma_rate`), when recorded.
    chroma_rate: Option<f64>,
    chroma: RowFile,
    /// Committed peaks and quads.
    peak_rows: u64,
    quad_rows: u64,
    peak_file: RowFile,
    quad_file: RowFile,
    landmarks: LandmarkIndex,
    /// The version of the landmark rows (meta `landmarks`), when recorded.
    landmark_version: Option<String>,
    ann: Ann,
    /// The chroma shingles, once the engine has enabled them.
    shingles: Option<Shingles>,
    /// Generation of the row files (meta `generation`; 0 when absent): a
    /// compaction writes the next one.
    generation: u64,
    /// Held while writing: other writers are refused.
    _lock: Option<File>,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("dir", &self.dir)
            .field("songs", &self.songs.len())
            .field("rows", &self.rows)
            .finish()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |err| IndexError::Io {
        path: path.to_path_buf(),
        err,
    }
}

impl Library {
    fn sql(&self) -> impl Fn(rusqlite::Error) -> IndexError + '_ {
        |err| IndexError::Sql {
            path: self.dir.join("library.sqlite"),
            err,
        }
    }

    /// Opens (creating it if needed) a library for writing. A new library
    /// takes `layout` and `cfg`; an existing one must have the same layout.
    pub fn open_writer(dir: &Path, layout: &Layout, cfg: &IndexConfig) -> Result<Self, IndexError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("write.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(IndexError::Locked(dir.to_path_buf())),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let db = dir.join("library.sqlite");
        let sql = |err| IndexError::Sql { path: db.clone(), err };
        let conn = Connection::open(&db).map_err(sql)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        let existing: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='layout'", [], |r| r.get(0))
            .optional()
            .map_err(sql)?;
        match existing {
            None => {
                let tx = conn.unchecked_transaction().map_err(sql)?;
                let put = |k: &str, v: String| {
                    tx.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)", params![k, v])
                };
                put("schema", "1".into()).map_err(sql)?;
                put("layout", serde_json::to_string(layout).expect("serialisable")).map_err(sql)?;
                put("index", serde_json::to_string(cfg).expect("serialisable")).map_err(sql)?;
                put("rows", "0".into()).map_err(sql)?;
                put("chroma_rows", "0".into()).map_err(sql)?;
                put("peak_rows", "0".into()).map_err(sql)?;
                put("quad_rows", "0".into()).map_err(sql)?;
                put("landmarks", sampleid_landmarks::STORED_VERSION.into()).map_err(sql)?;
                tx.commit().map_err(sql)?;
            }
            Some(text) => {
                let theirs: Layout = serde_json::from_str(&text).map_err(|e| IndexError::Damaged(e.to_string()))?;
                check_layout(&theirs, layout)?;
            }
        }
        if !has_chroma_columns(&conn).map_err(sql)? {
            // A library from before chroma was stored: its songs keep 0 frames.
            conn.execute_batch(
                "BEGIN;
                 ALTER TABLE songs ADD COLUMN chroma_first INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE songs ADD COLUMN chroma_frames INTEGER NOT NULL DEFAULT 0;
                 INSERT OR REPLACE INTO meta(key, value) VALUES ('chroma_rows', '0');
                 INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', '2');
                 COMMIT;",
            )
            .map_err(sql)?;
        }
        if !has_column(&conn, "peaks_first").map_err(sql)? {
            // A library from before landmarks were stored: its songs keep none.
            conn.execute_batch(&format!(
                "BEGIN;
                 ALTER TABLE songs ADD COLUMN peaks_first INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE songs ADD COLUMN peaks INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE songs ADD COLUMN quads_first INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE songs ADD COLUMN quads INTEGER NOT NULL DEFAULT 0;
                 INSERT OR REPLACE INTO meta(key, value) VALUES ('peak_rows', '0');
                 INSERT OR REPLACE INTO meta(key, value) VALUES ('quad_rows', '0');
                 INSERT OR REPLACE INTO meta(key, value) VALUES ('landmarks', '{}');
                 INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', '3');
                 COMMIT;",
                sampleid_landmarks::STORED_VERSION
            ))
            .map_err(sql)?;
        }
        let stored: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='landmarks'", [], |r| r.get(0))
            .optional()
            .map_err(sql)?;
        // An older known version is kept: its songs are added with its own
        // quads (the engine asks `landmark_version`).
        if let Some(v) = stored
            && sampleid_landmarks::reference_quads(&v).is_none()
        {
            return Err(IndexError::Mismatch {
                what: "landmark rows",
                theirs: v,
                ours: sampleid_landmarks::STORED_VERSION.into(),
            });
        }
        drop(conn);
        Self::open_inner(dir, Some(lock))
    }

    /// Opens an existing library for reading (queries). Rows appended by a
    /// writer after this call are not seen until the library is opened again.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        // A compaction in another process may remove the row files of the
        // generation this open read, between the read and the opening of
        // the files: the next try reads the new generation.
        let mut tries = 0;
        loop {
            match Self::open_inner(dir, None) {
                Err(IndexError::Io { err, .. }) if err.kind() == std::io::ErrorKind::NotFound && tries < 10 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => return r,
            }
        }
    }

    fn open_inner(dir: &Path, lock: Option<File>) -> Result<Self, IndexError> {
        let db = dir.join("library.sqlite");
        if !db.exists() {
            return Err(IndexError::Missing(dir.to_path_buf()));
        }
        let sql = |err| IndexError::Sql { path: db.clone(), err };
        let conn = Connection::open(&db).map_err(sql)?;
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;")
            .map_err(sql)?;
        // One read transaction for the counts and the songs: a writer
        // committing meanwhile (another process) cannot make them disagree.
        conn.execute_batch("BEGIN").map_err(sql)?;
        let meta = |k: &str| -> Result<String, IndexError> {
            conn.query_row("SELECT value FROM meta WHERE key=?1", [k], |r| r.get(0))
                .optional()
                .map_err(sql)?
                .ok_or_else(|| IndexError::Damaged(format!("meta key {k} is missing")))
        };
        // The layout is written when the library is created, before any song:
        // without it the creation was interrupted (a full disk, a kill) and
        // nothing was ever stored; `index` creates it again.
        let layout = meta("layout").map_err(|e| match e {
            IndexError::Damaged(_) => IndexError::Damaged(
                "its creation never finished (meta key layout is missing), so it holds nothing; \
                 run `sampleid index` into it again"
                    .into(),
            ),
            e => e,
        })?;
        let layout: Layout = serde_json::from_str(&layout).map_err(|e| IndexError::Damaged(e.to_string()))?;
        let cfg: IndexConfig = serde_json::from_str(&meta("index")?).map_err(|e| IndexError::Damaged(e.to_string()))?;
        let rows: u64 = meta("rows")?
            .parse()
            .map_err(|_| IndexError::Damaged("meta rows is not a number".into()))?;
        let chroma_rows: u64 = match meta("chroma_rows") {
            Ok(v) => v
                .parse()
                .map_err(|_| IndexError::Damaged("meta chroma_rows is not a number".into()))?,
            Err(IndexError::Damaged(_)) => 0,
            Err(e) => return Err(e),
        };
        let chroma_rate: Option<f64> = match meta("chroma_rate") {
            Ok(v) => Some(
                v.parse()
                    .map_err(|_| IndexError::Damaged("meta chroma_rate is not a number".into()))?,
            ),
            Err(IndexError::Damaged(_)) => None,
            Err(e) => return Err(e),
        };
        let count = |k: &str| -> Result<u64, IndexError> {
            match meta(k) {
                Ok(v) => v
                    .parse()
                    .map_err(|_| IndexError::Damaged(format!("meta {k} is not a number"))),
                Err(IndexError::Damaged(_)) => Ok(0),
                Err(e) => Err(e),
            }
        };
        let (peak_rows, quad_rows) = (count("peak_rows")?, count("quad_rows")?);
        let landmark_version = match meta("landmarks") {
            Ok(v) => Some(v),
            Err(IndexError::Damaged(_)) => None,
            Err(e) => return Err(e),
        };
        let generation = count("generation")?;
        let writer = lock.is_some();
        if writer {
            remove_other_generations(dir, generation);
        }
        let (fingerprints, nodes, chroma, peak_file, quad_file) = open_row_files(
            dir,
            generation,
            &layout,
            [rows, chroma_rows, peak_rows, quad_rows],
            writer,
        )?;
        let mut lib = Self {
            dir: dir.to_path_buf(),
            conn: std::sync::Mutex::new(conn),
            layout,
            cfg: cfg.clone(),
            rows,
            songs: Vec::new(),
            fingerprints,
            nodes,
            chroma_rows,
            chroma_rate,
            chroma,
            peak_rows,
            quad_rows,
            peak_file,
            quad_file,
            landmarks: LandmarkIndex::new(PairConfig::default()),
            landmark_version: landmark_version.clone(),
            ann: Ann::Exact,
            shingles: None,
            generation,
            _lock: lock,
        };
        lib.load_songs()?;
        lib.conn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .execute_batch("COMMIT")
            .map_err(lib.sql())?;
        match landmark_version.as_deref() {
            Some(v) if sampleid_landmarks::reference_quads(v).is_some() => lib.load_landmarks()?,
            Some(v) => tracing::warn!(
                stored = v,
                "the library's landmark rows are of another version and are not searched; index into a new --db"
            ),
            None => {}
        }
        lib.ann = Ann::open(&lib, &cfg, writer)?;
        Ok(lib)
    }

    fn load_songs(&mut self) -> Result<(), IndexError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let chroma_cols = if has_chroma_columns(&conn).map_err(self.sql())? {
            "chroma_first, chroma_frames"
        } else {
            "0, 0"
        };
        let landmark_cols = if has_column(&conn, "peaks_first").map_err(self.sql())? {
            "peaks_first, peaks, quads_first, quads"
        } else {
            "0, 0, 0, 0"
        };
        let mut stmt = conn
            .prepare(&format!(
                "SELECT id, path, hash, duration_s, added, first_row, segments, {chroma_cols}, {landmark_cols} \
                 FROM songs ORDER BY first_row"
            ))
            .map_err(self.sql())?;
        let songs = stmt
            .query_map([], |r| {
                Ok(Song {
                    id: r.get(0)?,
                    path: r.get(1)?,
                    hash: r.get(2)?,
                    duration_s: r.get(3)?,
                    added: r.get(4)?,
                    first_row: r.get::<_, i64>(5)? as u64,
                    segments: r.get::<_, i64>(6)? as u64,
                    chroma_first: r.get::<_, i64>(7)? as u64,
                    chroma_frames: r.get::<_, i64>(8)? as u64,
                    peaks_first: r.get::<_, i64>(9)? as u64,
                    peaks: r.get::<_, i64>(10)? as u64,
                    quads_first: r.get::<_, i64>(11)? as u64,
                    quads: r.get::<_, i64>(12)? as u64,
                })
            })
            .map_err(self.sql())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql())?;
        drop(stmt);
        drop(conn);
        if let Some(s) = songs
            .iter()
            .find(|s| s.chroma_first + s.chroma_frames > self.chroma_rows)
        {
            return Err(IndexError::Damaged(format!(
                "song {} ends at chroma frame {} but only {} are committed",
                s.id,
                s.chroma_first + s.chroma_frames,
                self.chroma_rows
            )));
        }
        if let Some(s) = songs
            .iter()
            .find(|s| s.peaks_first + s.peaks > self.peak_rows || s.quads_first + s.quads > self.quad_rows)
        {
            return Err(IndexError::Damaged(format!(
                "song {} has landmark rows beyond the {} peaks and {} quads committed",
                s.id, self.peak_rows, self.quad_rows
            )));
        }
        if let Some(s) = songs.iter().find(|s| s.first_row + s.segments > self.rows) {
            return Err(IndexError::Damaged(format!(
                "song {} ends at row {} but only {} rows are committed",
                s.id,
                s.first_row + s.segments,
                self.rows
            )));
        }
        self.songs = songs;
        Ok(())
    }

    /// Builds the landmark index over the live songs' stored rows.
    fn load_landmarks(&mut self) -> Result<(), IndexError> {
        let mut index = LandmarkIndex::new(PairConfig::default());
        for s in &self.songs {
            if s.peaks == 0 {
                continue;
            }
            let (peaks, quads) = self.stored_landmarks(s)?;
            index.insert(song_key(s.id)?, peaks, &quads);
        }
        index.seal();
        self.landmarks = index;
        Ok(())
    }

    fn stored_landmarks(&self, s: &Song) -> Result<(Vec<Peak>, Vec<Quad>), IndexError> {
        let damaged = |e: sampleid_landmarks::LandmarkError| IndexError::Damaged(e.to_string());
        let peaks = codec::decode_peaks(self.peak_file.rows(s.peaks_first, s.peaks)).map_err(damaged)?;
        let quads = codec::decode_quads(self.quad_file.rows(s.quads_first, s.quads)).map_err(damaged)?;
        Ok((peaks, quads))
    }

    /// The landmark index over the live songs (songs indexed before
    /// landmarks were stored are not in it).
    pub fn landmarks(&self) -> &LandmarkIndex {
        &self.landmarks
    }

    /// The live song with this id.
    pub fn song(&self, id: i64) -> Option<&Song> {
        self.songs.iter().find(|s| s.id == id)
    }

    /// The live song whose landmark key is `key` (see [`LandmarkIndex`]).
    pub fn song_by_key(&self, key: u32) -> Option<&Song> {
        self.songs.iter().find(|s| s.id == key as i64)
    }

    /// The landmark key of a song id, when the song has landmarks in the index.
    pub fn landmark_key(&self, id: i64) -> Option<u32> {
        u32::try_from(id).ok().filter(|k| self.landmarks.contains(*k))
    }

    /// A song's stored landmark rows.
    pub fn song_landmarks(&self, song: &Song) -> Result<SongLandmarks, IndexError> {
        let (peaks, quads) = self.stored_landmarks(song)?;
        Ok(SongLandmarks { peaks, quads })
    }

    /// The id the next song gets: ids are never reused, even after the
    /// newest song is deleted (SQLite would reuse it), so that an id (and
    /// the landmark postings keyed by it) always names one song.
    fn next_song_id(&self) -> Result<i64, IndexError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let max: Option<i64> = conn
            .query_row("SELECT MAX(id) FROM songs", [], |r| r.get(0))
            .map_err(self.sql())?;
        let last: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='last_song_id'", [], |r| r.get(0))
            .optional()
            .map_err(self.sql())?;
        let last = last.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        Ok(max.unwrap_or(0).max(last) + 1)
    }

    /// The version of the library's landmark rows
    /// ([`sampleid_landmarks::STORED_VERSION`] for a new library; an older
    /// library keeps its own, and the songs added to it must be given that
    /// version's quads: [`sampleid_landmarks::reference_quads`]). `None`
    /// when not recorded.
    pub fn landmark_version(&self) -> Option<&str> {
        self.landmark_version.as_deref()
    }

    /// The directory of the library.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What produced the rows.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Index settings fixed at creation.
    pub fn config(&self) -> &IndexConfig {
        &self.cfg
    }

    /// Live songs, in the order they were added.
    pub fn songs(&self) -> &[Song] {
        &self.songs
    }

    /// Committed rows, including those of deleted songs.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The song with this content hash, if indexed.
    pub fn find_hash(&self, hash: &str) -> Option<&Song> {
        self.songs.iter().find(|s| s.hash == hash)
    }

    /// Songs indexed under this path (as given).
    pub fn find_path(&self, path: &str) -> Vec<&Song> {
        self.songs.iter().filter(|s| s.path == path).collect()
    }

    /// The live song holding `row` and the segment index within it.
    pub fn song_of(&self, row: u64) -> Option<(&Song, u64)> {
        let i = self.songs.partition_point(|s| s.first_row <= row);
        let s = self.songs.get(i.checked_sub(1)?)?;
        (row < s.first_row + s.segments).then(|| (s, row - s.first_row))
    }

    /// A row's fingerprint.
    pub fn fingerprint(&self, row: u64) -> Vec<f32> {
        store::f16_to_f32(self.fingerprints.row(row))
    }

    /// Cosine similarity of a row's fingerprint and `q` (both unit vectors):
    /// the exact score every search ranks rows by.
    pub fn similarity(&self, row: u64, q: &[f32]) -> f32 {
        self.fingerprint(row).iter().zip(q).map(|(x, y)| x * y).sum()
    }

    /// A row's stored node matrix.
    pub fn nodes(&self, row: u64) -> &[u8] {
        self.nodes.row(row)
    }

    /// Chroma frames per second of the stored chroma, when recorded (libraries
    /// from before it was recorded say `None`).
    pub fn chroma_rate(&self) -> Option<f64> {
        self.chroma_rate
    }

    /// Records the chroma frame rate of the rows this writer will add, or
    /// refuses one that differs from the library's (its chroma would not line up).
    pub fn ensure_chroma_rate(&mut self, rate: f64) -> Result<(), IndexError> {
        if self._lock.is_none() {
            return Err(IndexError::Input("the library is open for reading only".into()));
        }
        match self.chroma_rate {
            Some(r) if (r - rate).abs() > 1e-9 => Err(IndexError::Mismatch {
                what: "chroma frame rate",
                theirs: format!("{r} frames/s"),
                ours: format!("{rate} frames/s ([chroma] sample_rate / hop_length)"),
            }),
            Some(_) => Ok(()),
            None => {
                self.conn
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES ('chroma_rate', ?1)",
                        [rate.to_string()],
                    )
                    .map_err(self.sql())?;
                self.chroma_rate = Some(rate);
                Ok(())
            }
        }
    }

    /// A song's stored chroma: `chroma_frames × 12` bytes (empty for songs
    /// indexed before chroma was stored).
    pub fn chroma(&self, song: &Song) -> Vec<[u8; CHROMA_BYTES]> {
        (song.chroma_first..song.chroma_first + song.chroma_frames)
            .map(|r| self.chroma.row(r).try_into().expect("rows are 12 bytes"))
            .collect()
    }

    /// Adds a song without landmarks (see [`Library::add_with_landmarks`]).
    pub fn add(
        &mut self,
        path: &str,
        hash: &str,
        duration_s: f64,
        fingerprints: &[f32],
        nodes: &[u8],
        chroma: &[u8],
    ) -> Result<Song, IndexError> {
        self.add_with_landmarks(
            path,
            hash,
            duration_s,
            fingerprints,
            nodes,
            chroma,
            &SongLandmarks::default(),
        )
    }

    /// Adds a song: `fingerprints` is `n × dim` (unit vectors), `nodes` is
    /// `n × node_bytes`, `chroma` is whole frames of [`CHROMA_BYTES`],
    /// `landmarks` its peaks and quads. Every row file is appended and synced
    /// before the one SQLite transaction that records the song: durable
    /// when this returns, and nothing of it when it fails.
    #[allow(clippy::too_many_arguments)]
    pub fn add_with_landmarks(
        &mut self,
        path: &str,
        hash: &str,
        duration_s: f64,
        fingerprints: &[f32],
        nodes: &[u8],
        chroma: &[u8],
        landmarks: &SongLandmarks,
    ) -> Result<Song, IndexError> {
        if self._lock.is_none() {
            return Err(IndexError::Input("the library is open for reading only".into()));
        }
        let dim = self.layout.dim;
        let n = fingerprints.len() / dim;
        if fingerprints.len() != n * dim || nodes.len() != n * self.layout.node_bytes {
            return Err(IndexError::Input(format!(
                "{} fingerprint values and {} node bytes do not make whole rows of {dim} and {}",
                fingerprints.len(),
                nodes.len(),
                self.layout.node_bytes
            )));
        }
        if !chroma.len().is_multiple_of(CHROMA_BYTES) {
            return Err(IndexError::Input(format!(
                "{} chroma bytes do not make whole frames of {CHROMA_BYTES}",
                chroma.len()
            )));
        }
        if let Some(s) = self.find_hash(hash) {
            return Ok(s.clone());
        }
        let first = self.rows;
        let (chroma_first, chroma_frames) = (self.chroma_rows, (chroma.len() / CHROMA_BYTES) as u64);
        let (peaks_first, n_peaks) = (self.peak_rows, landmarks.peaks.len() as u64);
        let (quads_first, n_quads) = (self.quad_rows, landmarks.quads.len() as u64);
        let key = song_key(self.next_song_id()?)?;
        self.fingerprints.append(&store::f32_to_f16(fingerprints), first)?;
        self.nodes.append(nodes, first)?;
        self.chroma.append(chroma, chroma_first)?;
        self.peak_file
            .append(&codec::encode_peaks(&landmarks.peaks), peaks_first)?;
        self.quad_file
            .append(&codec::encode_quads(&landmarks.quads), quads_first)?;
        let added = now_rfc3339();
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.unchecked_transaction().map_err(self.sql())?;
        tx.execute(
            "INSERT INTO songs(id, path, hash, duration_s, added, first_row, segments, chroma_first, chroma_frames, \
             peaks_first, peaks, quads_first, quads) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                key as i64,
                path,
                hash,
                duration_s,
                added,
                first as i64,
                n as i64,
                chroma_first as i64,
                chroma_frames as i64,
                peaks_first as i64,
                n_peaks as i64,
                quads_first as i64,
                n_quads as i64
            ],
        )
        .map_err(self.sql())?;
        let id = tx.last_insert_rowid();
        for (k, v) in [
            ("peak_rows", peaks_first + n_peaks),
            ("quad_rows", quads_first + n_quads),
            ("last_song_id", key as u64),
        ] {
            tx.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
                params![k, v.to_string()],
            )
            .map_err(self.sql())?;
        }
        tx.execute(
            "UPDATE meta SET value=?1 WHERE key='rows'",
            params![(first + n as u64).to_string()],
        )
        .map_err(self.sql())?;
        tx.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('chroma_rows', ?1)",
            params![(chroma_first + chroma_frames).to_string()],
        )
        .map_err(self.sql())?;
        tx.commit().map_err(self.sql())?;
        drop(conn);
        self.rows = first + n as u64;
        self.chroma_rows = chroma_first + chroma_frames;
        self.peak_rows = peaks_first + n_peaks;
        self.quad_rows = quads_first + n_quads;
        self.fingerprints.remap(self.rows)?;
        self.nodes.remap(self.rows)?;
        self.chroma.remap(self.chroma_rows)?;
        self.peak_file.remap(self.peak_rows)?;
        self.quad_file.remap(self.quad_rows)?;
        if n_peaks > 0 {
            self.landmarks.insert(key, landmarks.peaks.clone(), &landmarks.quads);
        }
        let song = Song {
            id,
            path: path.to_string(),
            hash: hash.to_string(),
            duration_s,
            added,
            first_row: first,
            segments: n as u64,
            chroma_first,
            chroma_frames,
            peaks_first,
            peaks: n_peaks,
            quads_first,
            quads: n_quads,
        };
        self.songs.push(song.clone());
        let mut ann = std::mem::replace(&mut self.ann, Ann::Exact);
        let r = ann.add(self, first, n as u64);
        self.ann = ann;
        r?;
        if let Some(mut sh) = self.shingles.take() {
            let r = sh.add(self, &song);
            self.shingles = Some(sh);
            r?;
        }
        Ok(song)
    }

    /// Deletes a song (its rows stay in the files as dead rows). Returns
    /// whether it existed.
    pub fn delete(&mut self, id: i64) -> Result<bool, IndexError> {
        if self._lock.is_none() {
            return Err(IndexError::Input("the library is open for reading only".into()));
        }
        let Some(pos) = self.songs.iter().position(|s| s.id == id) else {
            return Ok(false);
        };
        self.conn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .execute("DELETE FROM songs WHERE id=?1", [id])
            .map_err(self.sql())?;
        let song = self.songs.remove(pos);
        self.landmarks.remove(song_key(song.id)?);
        self.ann.remove(song.first_row, song.segments)?;
        if let Some(sh) = &mut self.shingles {
            sh.remove(&song)?;
        }
        Ok(true)
    }

    /// Searches the chroma shingles of the songs (see [`Library::enable_shingles`])
    /// with `model`: as they are when the saved graph was made by it, else
    /// rebuilt from the stored chroma (and saved, for a writer). A library
    /// without a recorded chroma rate takes `frame_rate`.
    pub fn enable_shingles(&mut self, model: ShingleModel, frame_rate: f64) -> Result<(), IndexError> {
        model.validate().map_err(IndexError::Input)?;
        if self.shingles.as_ref().is_some_and(|s| s.model() == &model) {
            return Ok(());
        }
        let rate = self.chroma_rate.unwrap_or(frame_rate);
        self.shingles = Some(Shingles::open(self, model, rate, self._lock.is_some())?);
        Ok(())
    }

    /// The shingle model in use, when shingles are enabled.
    pub fn shingle_model(&self) -> Option<&ShingleModel> {
        self.shingles.as_ref().map(|s| s.model())
    }

    /// Stored shingles (0 when shingles are not enabled).
    pub fn shingle_count(&self) -> usize {
        self.shingles.as_ref().map_or(0, |s| s.len())
    }

    /// Each song's nearest stored shingle to any of `queries` (`k` fetched per
    /// query shingle), nearest first, `recording` being the song id; `None`
    /// when shingles are not enabled.
    pub fn shingle_search(&self, queries: &[QueryShingle], k: usize) -> Result<Option<Vec<ShingleHit>>, IndexError> {
        self.shingles.as_ref().map(|s| s.search(queries, k)).transpose()
    }

    /// Writes the ANN index to disk (it is rebuilt from the rows when missing
    /// or stale, so this only saves time at the next open).
    pub fn save_ann(&mut self) -> Result<(), IndexError> {
        self.ann.save(&self.dir, self.rows)?;
        if let Some(sh) = &self.shingles {
            sh.save(&self.dir, self.songs.iter().map(|s| s.id).max().unwrap_or(0))?;
        }
        Ok(())
    }

    /// The `k` live rows most similar to `q` (cosine), best first.
    pub fn nearest(&self, q: &[f32], k: usize) -> Result<Vec<(u64, f32)>, IndexError> {
        if q.len() != self.layout.dim {
            return Err(IndexError::Input(format!(
                "a query fingerprint has {} values; the library holds {}",
                q.len(),
                self.layout.dim
            )));
        }
        self.ann.nearest(self, q, k)
    }

    /// Hours of audio of the live songs (what a query is searched against).
    pub fn hours(&self) -> f64 {
        self.songs.iter().map(|s| s.duration_s).sum::<f64>() / 3600.0
    }

    /// Sizes of the library.
    pub fn stats(&self) -> Result<Stats, IndexError> {
        let mut bytes = 0;
        for e in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let e = e.map_err(io(&self.dir))?;
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
        let hours = self.hours();
        let live: u64 = self.songs.iter().map(|s| s.segments).sum();
        Ok(Stats {
            songs: self.songs.len(),
            hours,
            segments: live,
            dead_segments: self.rows - live,
            dead_bytes: {
                let [seg, chroma, peaks, quads] = self.dead_rows();
                seg * (self.layout.dim * 2 + self.layout.node_bytes) as u64
                    + chroma * CHROMA_BYTES as u64
                    + peaks * PEAK_BYTES as u64
                    + quads * QUAD_BYTES as u64
            },
            bytes,
            bytes_per_hour: if hours > 0.0 { bytes as f64 / hours } else { 0.0 },
            ann: self.cfg.ann,
            layout: self.layout.clone(),
            landmarks: self.landmark_version.clone(),
        })
    }
}

/// The row files of a library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKind {
    Fingerprints,
    Nodes,
    Chroma,
    Peaks,
    Quads,
}

impl RowKind {
    pub(crate) const ALL: [RowKind; 5] = [Self::Fingerprints, Self::Nodes, Self::Chroma, Self::Peaks, Self::Quads];

    fn stem_ext(self) -> (&'static str, &'static str) {
        match self {
            Self::Fingerprints => ("fingerprints", "f16"),
            Self::Nodes => ("nodes", "i8"),
            Self::Chroma => ("chroma", "u8"),
            Self::Peaks => ("peaks", "lm"),
            Self::Quads => ("quads", "lm"),
        }
    }

    /// The file of this kind in generation `generation` (0: the plain name,
    /// as libraries from before compaction have it).
    pub(crate) fn path(self, dir: &Path, generation: u64) -> PathBuf {
        let (stem, ext) = self.stem_ext();
        match generation {
            0 => dir.join(format!("{stem}.{ext}")),
            g => dir.join(format!("{stem}-{g}.{ext}")),
        }
    }

    /// The generation of a row file named `name`, when it is one.
    fn generation_of(name: &str) -> Option<u64> {
        Self::ALL.iter().find_map(|k| {
            let (stem, ext) = k.stem_ext();
            let base = name.strip_prefix(stem)?.strip_suffix(ext)?.strip_suffix('.')?;
            match base {
                "" => Some(0),
                g => g.strip_prefix('-')?.parse().ok().filter(|&g| g > 0),
            }
        })
    }
}

/// The row files of `generation`: fingerprints, nodes, chroma, peaks and
/// quads, with `counts` committed rows (segments, chroma frames, peaks, quads).
fn open_row_files(
    dir: &Path,
    generation: u64,
    layout: &Layout,
    [rows, chroma_rows, peak_rows, quad_rows]: [u64; 4],
    writer: bool,
) -> Result<(RowFile, RowFile, RowFile, RowFile, RowFile), IndexError> {
    let path = |kind: RowKind| kind.path(dir, generation);
    Ok((
        RowFile::open(&path(RowKind::Fingerprints), layout.dim * 2, rows, writer)?,
        RowFile::open(&path(RowKind::Nodes), layout.node_bytes, rows, writer)?,
        RowFile::open(&path(RowKind::Chroma), CHROMA_BYTES, chroma_rows, writer)?,
        RowFile::open(&path(RowKind::Peaks), PEAK_BYTES, peak_rows, writer)?,
        RowFile::open(&path(RowKind::Quads), QUAD_BYTES, quad_rows, writer)?,
    ))
}

/// Removes the row files of every generation but `keep`: left by a
/// compaction that was killed before its commit (the newer one) or after
/// it (the older one). Best effort: a file that stays is only disk space.
fn remove_other_generations(dir: &Path, keep: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(g) = name.to_str().and_then(RowKind::generation_of) else {
            continue;
        };
        if g != keep {
            match std::fs::remove_file(e.path()) {
                Ok(()) => tracing::info!(file = %e.path().display(), "removed the row file of another generation"),
                Err(err) => tracing::warn!(file = %e.path().display(), "cannot remove: {err}"),
            }
        }
    }
}

/// A song's key in the landmark index: its id (ids are SQLite row ids, positive).
fn song_key(id: i64) -> Result<u32, IndexError> {
    u32::try_from(id).map_err(|_| IndexError::Damaged(format!("song id {id} does not fit the landmark index")))
}

/// Whether `songs` has a column.
fn has_column(conn: &Connection, name: &str) -> Result<bool, rusqlite::Error> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('songs')")?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names.iter().any(|n| n == name))
}

/// Whether `songs` has the chroma columns (libraries made before they existed do not).
fn has_chroma_columns(conn: &Connection) -> Result<bool, rusqlite::Error> {
    has_column(conn, "chroma_first")
}

fn check_layout(theirs: &Layout, ours: &Layout) -> Result<(), IndexError> {
    let mismatch = |what, a: &dyn ToString, b: &dyn ToString| IndexError::Mismatch {
        what,
        theirs: a.to_string(),
        ours: b.to_string(),
    };
    if theirs.encoder != ours.encoder {
        return Err(mismatch("encoder", &theirs.encoder, &ours.encoder));
    }
    if theirs.reranker != ours.reranker {
        return Err(mismatch("re-ranker", &theirs.reranker, &ours.reranker));
    }
    if theirs.dim != ours.dim || theirs.node_bytes != ours.node_bytes || (theirs.hop_s - ours.hop_s).abs() > 1e-9 {
        return Err(mismatch(
            "row layout",
            &format!("{}-d/{} B/{} s", theirs.dim, theirs.node_bytes, theirs.hop_s),
            &format!("{}-d/{} B/{} s", ours.dim, ours.node_bytes, ours.hop_s),
        ));
    }
    Ok(())
}

/// The current UTC time as RFC 3339 (seconds).
fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
