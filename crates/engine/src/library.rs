//! [`Library`]: a music library on disk with the models that query it; the
//! facade every front end calls (identify, match, add, index, delete, list).
//!
//! Concurrency: the library on disk sits behind a read-write lock. Decoding
//! and encoding run outside it; searches take the read lock; only the commit
//! of a song (append rows, one SQLite transaction, ANN insert) and a delete
//! take the write lock. A reader therefore sees whole songs or none, and
//! many queries run at once while songs are added.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, mpsc};
use std::time::Instant;

use rayon::prelude::*;

use sampleid_index::{IndexConfig, Song, Stats};

use crate::error::{Error, Result};
use crate::fusion::{Context, Model};
use crate::pipeline::{Engine, Progress, QueryInput, ReferenceRows, Source, Stage};
use crate::results::{Compacted, Identification, IndexOutcome, IndexSummary, Passage, Passages};

/// Extensions searched for inside directories (files named explicitly are
/// always tried).
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "wave", "flac", "mp3", "ogg", "oga", "opus", "m4a", "mp4", "aac", "alac", "aif", "aiff", "aifc", "caf",
];

/// Options of one identification.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentifyOptions {
    /// Run the re-ranker (the second stage). Off: offset-consistent ANN hits only.
    pub rerank: bool,
    /// ANN candidates per query segment instead of `[query] top_k` (clamped to 1–1000).
    pub top_k: Option<usize>,
    /// Which stages answer.
    pub stage: Stage,
    /// Report songs from this calibrated confidence up, instead of
    /// `[query] min_confidence`.
    pub min_confidence: Option<f64>,
}

impl Default for IdentifyOptions {
    fn default() -> Self {
        Self {
            rerank: true,
            top_k: None,
            stage: Stage::default(),
            min_confidence: None,
        }
    }
}

/// Options of a batch of [`Library::index`].
#[derive(Debug, Clone, PartialEq)]
pub struct IndexOptions {
    /// Inputs decoded and encoded at once (default: one per core).
    pub jobs: Option<usize>,
    /// Save the ANN index at least this often (s) during a long batch, so
    /// that a killed run leaves little of it to rebuild.
    pub ann_save_every_s: f64,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            jobs: None,
            ann_save_every_s: 300.0,
        }
    }
}

/// What a batch of [`Library::index`] reports while it runs.
#[derive(Debug)]
pub enum IndexEvent<'a> {
    /// A worker has decoded `position_s` of `name` (of `declared_s`, when known).
    Decoding {
        /// The input.
        name: &'a str,
        /// Seconds decoded so far.
        position_s: f64,
        /// The container's declared duration.
        declared_s: Option<f64>,
    },
    /// One input is done (in the order inputs finish); an `Indexed` song is durable.
    Done(&'a IndexOutcome),
}

/// A library on disk (`--db DIR`) with the engine that reads and writes it.
pub struct Library {
    dir: PathBuf,
    engine: Option<Engine>,
    index: RwLock<sampleid_index::Library>,
    writable: bool,
    ann_dirty: AtomicBool,
    /// Held by every change of the songs (add, delete, save, a
    /// compaction's commit): one writer at a time.
    writing: Mutex<()>,
    /// Held by a compaction from its beginning to its commit: one at a time.
    compacting: Mutex<()>,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("dir", &self.dir)
            .field("writable", &self.writable)
            .finish_non_exhaustive()
    }
}

fn check_layout(dir: &Path, lib: &sampleid_index::Library, engine: &Engine) -> Result<()> {
    let (theirs, ours) = (lib.layout(), engine.layout()?);
    if theirs != &ours {
        return Err(Error::Mismatch(format!(
            "the library {} was indexed with encoder {} / re-ranker {}, but {} / {} is in use; \
             query with the same models or re-index",
            dir.display(),
            theirs.encoder,
            theirs.reranker,
            ours.encoder,
            ours.reranker
        )));
    }
    Ok(())
}

impl Library {
    fn wrap(dir: &Path, engine: Option<Engine>, index: sampleid_index::Library, writable: bool) -> Self {
        Self {
            dir: dir.to_path_buf(),
            engine,
            index: RwLock::new(index),
            writable,
            ann_dirty: AtomicBool::new(false),
            writing: Mutex::new(()),
            compacting: Mutex::new(()),
        }
    }

    /// Opens an existing library for queries; its rows must come from `engine`'s models.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self> {
        let index = sampleid_index::Library::open(dir)?;
        check_layout(dir, &index, engine)?;
        Ok(Self::wrap(dir, Some(engine.clone()), index, false))
    }

    /// Opens a library for writing, creating it (with `[index]` of the
    /// engine's settings) when missing. One writer at a time: another
    /// process's writer makes this fail with `IndexError::Locked`.
    pub fn open_writer(dir: &Path, engine: &Engine) -> Result<Self> {
        Self::open_writer_with(dir, engine, &engine.settings().index)
    }

    /// [`Library::open_writer`] with the ANN settings of a new library given
    /// explicitly (an existing library keeps its own; see [`Library::index_config`]).
    pub fn open_writer_with(dir: &Path, engine: &Engine, index: &IndexConfig) -> Result<Self> {
        let mut lib = sampleid_index::Library::open_writer(dir, &engine.layout()?, index)?;
        let rate = engine.settings().chroma.frame_rate();
        lib.ensure_chroma_rate(rate)
            .map_err(|e| Error::Mismatch(format!("cannot write {}: {e}", dir.display())))?;
        // A writer keeps the stored shingles up to date (built once for a
        // library from before they were stored).
        lib.enable_shingles(engine.shingle_model().clone(), rate)?;
        Ok(Self::wrap(dir, Some(engine.clone()), lib, true))
    }

    /// Opens a library to list and measure it, without models.
    pub fn inspect(dir: &Path) -> Result<Self> {
        let index = sampleid_index::Library::open(dir)?;
        Ok(Self::wrap(dir, None, index, false))
    }

    /// Opens a library to delete songs, without models (whatever models built it).
    pub fn maintain(dir: &Path) -> Result<Self> {
        let (layout, cfg) = {
            let lib = sampleid_index::Library::open(dir)?;
            (lib.layout().clone(), lib.config().clone())
        };
        let index = sampleid_index::Library::open_writer(dir, &layout, &cfg)?;
        Ok(Self::wrap(dir, None, index, true))
    }

    /// The library's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when opened for writing.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The engine (models and settings), unless opened without models.
    pub fn engine(&self) -> Result<&Engine> {
        self.engine.as_ref().ok_or_else(|| {
            Error::Model(format!(
                "the library {} was opened without models (to list or delete); open it with an engine",
                self.dir.display()
            ))
        })
    }

    /// Shared access to the index on disk, for what the facade does not cover
    /// (benchmarks reading stored chroma, say). Hold it briefly: writers wait.
    pub fn read(&self) -> RwLockReadGuard<'_, sampleid_index::Library> {
        // A poisoned lock still guards a consistent library: every write
        // commits before it returns.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Serialises the changes of the songs (see `writing`).
    fn writing(&self) -> Result<MutexGuard<'_, ()>> {
        if !self.writable {
            return Err(Error::ReadOnly(self.dir.display().to_string()));
        }
        Ok(self.writing.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, sampleid_index::Library>> {
        if !self.writable {
            return Err(Error::ReadOnly(self.dir.display().to_string()));
        }
        Ok(self.index.write().unwrap_or_else(|e| e.into_inner()))
    }

    /// The ANN settings the library was created with.
    pub fn index_config(&self) -> IndexConfig {
        self.read().config().clone()
    }

    /// Every song, in id order.
    pub fn songs(&self) -> Vec<Song> {
        self.read().songs().to_vec()
    }

    /// One song by id.
    pub fn song(&self, id: i64) -> Option<Song> {
        self.read().songs().iter().find(|s| s.id == id).cloned()
    }

    /// Number of songs.
    pub fn len(&self) -> usize {
        self.read().songs().len()
    }

    /// True when the library holds no song.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sizes: songs, hours, segments, bytes, models.
    pub fn stats(&self) -> Result<Stats> {
        Ok(self.read().stats()?)
    }

    /// The songs a clip contains, most likely first, each with its
    /// calibrated confidence, located in the clip and the song (with time
    /// ratio and pitch shift when the alignment is clear).
    ///
    /// With [`Stage::All`] the landmark stage runs first, on the decoded clip
    /// alone; when it is decisive (a song at `[query] early_stop` confidence
    /// or more) the network never runs. Otherwise the clip is encoded and
    /// every stage's evidence is fused.
    pub fn identify(&self, source: &Source, opts: &IdentifyOptions) -> Result<Identification> {
        let engine = self.engine()?;
        if opts.stage != Stage::All {
            let input = engine.query_input_for(source, opts.stage)?;
            return self.identify_input(&input, opts);
        }
        let lm_input = engine.query_input_for(source, Stage::Landmarks)?;
        let landmarks = self.landmark_candidates(engine, lm_input.landmarks.as_ref());
        if let Some(done) = self.early_answer(engine, &lm_input, &landmarks, opts) {
            return Ok(done);
        }
        let mut input = engine.query_input_for(source, Stage::Neural)?;
        input.landmarks = lm_input.landmarks;
        self.fused_answer(engine, &input, landmarks, opts)
    }

    /// [`Library::identify`] of a clip already decoded and encoded
    /// ([`Engine::query_input`]), so that the search alone can be timed or repeated.
    pub fn identify_input(&self, input: &QueryInput, opts: &IdentifyOptions) -> Result<Identification> {
        let engine = self.engine()?;
        crate::pipeline::silent_unless(input.peak, &input.name, "identify")?;
        let landmarks = match opts.stage.landmarks() {
            true => {
                let q = input.landmarks.as_ref().ok_or_else(|| {
                    Error::Config(
                        "the query was prepared without landmarks (Engine::query_input_for with this stage)".into(),
                    )
                })?;
                self.landmark_candidates(engine, Some(q))
            }
            false => Vec::new(),
        };
        match opts.stage {
            Stage::Landmarks => Ok(self.answer(engine, input, landmarks, Model::Landmarks, opts)),
            Stage::All => match self.early_answer(engine, input, &landmarks, opts) {
                Some(done) => Ok(done),
                None => self.fused_answer(engine, input, landmarks, opts),
            },
            Stage::Neural => {
                let neural = self.neural_candidates(engine, input, opts, &[])?;
                Ok(self.answer(engine, input, neural, Model::Neural, opts))
            }
        }
    }

    /// The landmark answer, when the landmark stage alone is decisive.
    fn early_answer(
        &self,
        engine: &Engine,
        input: &QueryInput,
        landmarks: &[sampleid_search::Match],
        opts: &IdentifyOptions,
    ) -> Option<Identification> {
        let cal = engine.calibrator();
        let stop = engine.settings().query.early_stop;
        let ctx = self.context(input);
        let decisive = landmarks
            .iter()
            .any(|m| cal.confidence(Model::Landmarks, &m.evidence, ctx) >= stop);
        decisive.then(|| self.answer(engine, input, landmarks.to_vec(), Model::Landmarks, opts))
    }

    /// Every stage's candidates, joined per song and fused.
    fn fused_answer(
        &self,
        engine: &Engine,
        input: &QueryInput,
        landmarks: Vec<sampleid_search::Match>,
        opts: &IdentifyOptions,
    ) -> Result<Identification> {
        let guides: Vec<sampleid_search::Guide> = landmarks
            .iter()
            .map(|m| sampleid_search::Guide {
                song_id: m.song_id,
                query_start: m.query_start,
                reference_start: m.reference_start,
                time_ratio: m.time_ratio.unwrap_or(1.0),
            })
            .collect();
        let mut neural = self.neural_candidates(engine, input, opts, &guides)?;
        // The songs the neural stage only looked at where the landmarks placed
        // them (at the end of its list) are not verified again by the
        // landmarks at that same place, nor promoted: that evidence would be
        // circular.
        let looked = neural
            .iter()
            .position(|m| m.evidence.neural.as_ref().is_some_and(|n| n.guided))
            .unwrap_or(neural.len());
        let looked = neural.split_off(looked);
        let hits = self
            .shingle_candidates(&input.chroma, engine.settings().shingles.k)?
            .unwrap_or_default();
        let shingles = shingle_evidence(&hits);
        let proposed = &hits[..hits.len().min(engine.settings().shingles.identify)];
        let mut chroma = self.chroma_candidates(engine, input, proposed, &landmarks, &neural);
        let mut k = neural.len().min(engine.settings().query.guided);
        if promote_shingle_top(&mut neural, &hits, k) {
            // Aligned by chroma first: the neural line alone places a song it
            // ranks low too coarsely for the landmarks to verify it there.
            if neural[k].evidence.chroma.is_none() {
                refine(&self.read(), engine, input, &mut neural[k..=k]);
            }
            k += 1;
        }
        self.verify_guided(engine, input, &landmarks, &mut neural[..k]);
        self.verify_guided(engine, input, &landmarks, &mut chroma);
        let mut joined = landmarks;
        for n in neural.into_iter().chain(looked).chain(chroma) {
            match joined.iter_mut().find(|m| m.song_id == n.song_id) {
                Some(m) => {
                    m.evidence.neural = n.evidence.neural;
                    m.evidence.chroma = n.evidence.chroma;
                    let better = |a: &Option<sampleid_search::LandmarkEvidence>,
                                  b: &Option<sampleid_search::LandmarkEvidence>| {
                        a.as_ref().map_or(-1.0, |l| l.kappa) > b.as_ref().map_or(-1.0, |l| l.kappa)
                    };
                    if better(&n.evidence.landmarks, &m.evidence.landmarks) {
                        m.evidence.landmarks = n.evidence.landmarks.clone();
                    }
                    let verified = m.evidence.landmarks.as_ref().is_some_and(|l| l.verified);
                    if !verified || m.evidence.landmarks.as_ref().is_some_and(|l| l.method == "guided") {
                        // The landmark hypothesis did not verify: the neural line
                        // (refined by chroma) places the song.
                        let evidence = std::mem::take(&mut m.evidence);
                        *m = sampleid_search::Match { evidence, ..n };
                    }
                }
                None => joined.push(n),
            }
        }
        for m in &mut joined {
            m.evidence.shingles = shingles.iter().find(|(id, _)| *id == m.song_id).map(|(_, e)| e.clone());
        }
        Ok(self.answer(engine, input, joined, Model::Fused, opts))
    }

    /// The songs nearest by chroma shingle that neither the landmark nor the
    /// neural stage proposed (`[shingles] identify`), placed by the chroma
    /// alignment (or the shingle's own tempo and offset when it does not
    /// stand out), for the landmarks to verify.
    fn chroma_candidates(
        &self,
        engine: &Engine,
        input: &QueryInput,
        hits: &[sampleid_matching::ShingleHit],
        landmarks: &[sampleid_search::Match],
        neural: &[sampleid_search::Match],
    ) -> Vec<sampleid_search::Match> {
        if hits.is_empty() {
            return Vec::new();
        }
        let lib = self.read();
        let mut out: Vec<sampleid_search::Match> = hits
            .iter()
            .filter(|h| {
                let id = h.recording as i64;
                !landmarks.iter().chain(neural).any(|m| m.song_id == id)
            })
            .filter_map(|h| {
                let song = lib.song(h.recording as i64)?;
                let f = h.tempo_factor.max(1e-3);
                Some(sampleid_search::Match {
                    reference: song.path.clone(),
                    score: 0.0,
                    confidence: None,
                    query_start: 0.0,
                    reference_start: (h.start_s - h.query_s * f).max(0.0),
                    time_ratio: Some(1.0 / f),
                    pitch_shift: Some(h.pitch_shift as f64),
                    song_id: song.id,
                    reference_duration: song.duration_s,
                    stage: "chroma",
                    stages: Vec::new(),
                    evidence: sampleid_search::Evidence::default(),
                    segments: 0,
                })
            })
            .collect();
        refine(&lib, engine, input, &mut out);
        out
    }

    /// The landmark verification of the neural stage's best songs at the
    /// place and time ratio it located them (the frequency scale searched),
    /// where the landmark stage's own hypotheses did not verify the song: a
    /// sample under other music that the landmark search missed is
    /// confirmed, and a neural guess where the song's peaks are not is
    /// exposed. A verified guided match also gives the precise place, time
    /// ratio and pitch.
    fn verify_guided(
        &self,
        engine: &Engine,
        input: &QueryInput,
        landmarks: &[sampleid_search::Match],
        neural: &mut [sampleid_search::Match],
    ) {
        let Some(q) = input.landmarks.as_ref() else { return };
        let settings = &engine.settings().landmarks;
        let rate = settings.query_peaks.frame_rate();
        let lib = self.read();
        let guide = sampleid_landmarks::search::Guide::new(q, &settings.search);
        // The songs in parallel: each scans a grid of hypotheses.
        neural.par_iter_mut().for_each(|n| {
            let own = landmarks
                .iter()
                .find(|m| m.song_id == n.song_id)
                .and_then(|m| m.evidence.landmarks.as_ref());
            if own.is_some_and(|l| l.verified) {
                return;
            }
            let Some(key) = lib.landmark_key(n.song_id) else {
                return;
            };
            // The place and time ratio as the chroma alignment refined them
            // (the neural line's own ratio is coarse or missing); without a
            // ratio, the usual tempo changes are tried.
            let ratios: &[f64] = match n.time_ratio {
                Some(r) => &[r],
                None => &[1.0, 0.87, 1.15, 0.75, 1.33, 0.67, 1.5],
            };
            let (lo, hi) = (settings.search.min_time_scale, settings.search.max_time_scale);
            let best = ratios
                .iter()
                .filter_map(|&r| {
                    let s_t = r.clamp(lo, hi);
                    let tau = (n.reference_start - n.query_start / s_t) * rate;
                    guide.verify_at(lib.landmarks(), key, s_t, tau, 0.75 * rate)
                })
                .max_by(|a, b| a.score.total_cmp(&b.score));
            let Some(m) = best else { return };
            if own.is_some_and(|l| l.kappa >= m.score) {
                return;
            }
            let ev = landmark_evidence(&m, rate, n.reference_duration, &settings.search);
            if ev.verified {
                n.query_start = ev.query_start;
                n.reference_start = ev.reference_start;
                n.time_ratio = Some(ev.time_ratio);
                n.pitch_shift = Some(ev.pitch_shift);
            }
            n.evidence.landmarks = Some(ev);
        });
    }

    /// Calibrated confidences by `model`; the songs at `min_confidence` or
    /// more, most likely first.
    fn answer(
        &self,
        engine: &Engine,
        input: &QueryInput,
        mut matches: Vec<sampleid_search::Match>,
        model: Model,
        opts: &IdentifyOptions,
    ) -> Identification {
        let cal = engine.calibrator();
        let qcfg = &engine.settings().query;
        let min = opts.min_confidence.unwrap_or(qcfg.min_confidence);
        let ctx = self.context(input);
        for m in &mut matches {
            let c = cal.confidence(model, &m.evidence, ctx);
            m.score = c;
            m.confidence = Some(c);
            m.stages = m.evidence.stages();
        }
        matches.retain(|m| m.score >= min);
        matches.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.song_id.cmp(&b.song_id)));
        matches.truncate(qcfg.max_matches);
        Identification {
            query: input.name.clone(),
            duration_s: input.duration_s,
            library_hours: ctx.library_hours,
            matches,
        }
    }

    /// What the confidence of `input`'s candidates depends on beside their evidence.
    fn context(&self, input: &QueryInput) -> Context {
        Context {
            duration_s: input.duration_s,
            library_hours: self.read().hours(),
        }
    }

    /// The neural stage's songs (every song with accepted candidates), with
    /// the chroma alignment of the best ones; the songs of `guides` (the
    /// landmark stage's, best first) are also looked at where the landmarks
    /// placed them (`[query] neural_guided`).
    fn neural_candidates(
        &self,
        engine: &Engine,
        input: &QueryInput,
        opts: &IdentifyOptions,
        guides: &[sampleid_search::Guide],
    ) -> Result<Vec<sampleid_search::Match>> {
        if input.segments.is_empty() {
            return Err(Error::Config(
                "the query was prepared without neural segments (Engine::query_input_for with this stage)".into(),
            ));
        }
        let mut qcfg = engine.settings().query.clone();
        if let Some(k) = opts.top_k {
            qcfg.top_k = k.clamp(1, 1000);
        }
        let reranker = if opts.rerank { Some(engine.reranker()?) } else { None };
        let lib = self.read();
        let mut matches = sampleid_search::query_guided(&lib, reranker, &input.segments, &qcfg, guides)?;
        refine(&lib, engine, input, &mut matches);
        Ok(matches)
    }

    /// The landmark stage's songs: every hypothesis verified (whether or not
    /// it passes on its own), best verification score first, located in the
    /// query and the song with their time ratio and pitch shift.
    fn landmark_candidates(
        &self,
        engine: &Engine,
        q: Option<&sampleid_landmarks::QueryLandmarks>,
    ) -> Vec<sampleid_search::Match> {
        let Some(q) = q else { return Vec::new() };
        let settings = &engine.settings().landmarks;
        let rate = settings.query_peaks.frame_rate();
        let lib = self.read();
        let found = sampleid_landmarks::search::candidates(lib.landmarks(), q, &settings.search);
        if tracing::enabled!(tracing::Level::DEBUG) {
            for h in &found {
                tracing::debug!(
                    song = h.song,
                    method = ?h.method,
                    votes = h.votes,
                    score = format!("{:.3}", h.score),
                    matched = h.matched,
                    mapped = h.mapped,
                    s_t = format!("{:.4}", h.time_scale),
                    s_f = format!("{:.4}", h.freq_scale),
                    tau_s = format!("{:.2}", h.tau / rate),
                    "landmark hypothesis"
                );
            }
            tracing::debug!(peaks = q.peaks.len(), pairs = q.pairs.len(), "query landmarks");
        }
        found
            .iter()
            .filter_map(|m| {
                let song = lib.song_by_key(m.song)?;
                let ev = landmark_evidence(m, rate, song.duration_s, &settings.search);
                Some(sampleid_search::Match {
                    reference: song.path.clone(),
                    score: m.score,
                    confidence: None,
                    query_start: ev.query_start,
                    reference_start: ev.reference_start,
                    time_ratio: Some(ev.time_ratio),
                    pitch_shift: Some(ev.pitch_shift),
                    song_id: song.id,
                    reference_duration: song.duration_s,
                    stage: method_name(m.method),
                    stages: Vec::new(),
                    evidence: sampleid_search::Evidence {
                        landmarks: Some(ev),
                        ..Default::default()
                    },
                    segments: m.matched,
                })
            })
            .collect()
    }

    /// Makes sure the library searches the engine's chroma shingles: a
    /// reader of a library whose saved shingles are missing or were made by
    /// another model builds them in memory once (a writer saves them).
    pub fn ensure_shingles(&self) -> Result<()> {
        let engine = self.engine()?;
        if self.read().shingle_model() == Some(engine.shingle_model()) {
            return Ok(());
        }
        let rate = engine.settings().chroma.frame_rate();
        let mut lib = self.index.write().unwrap_or_else(|e| e.into_inner());
        lib.enable_shingles(engine.shingle_model().clone(), rate)?;
        Ok(())
    }

    /// The songs whose stored chroma shingles lie nearest the clip's (over
    /// tempo factors and keys), nearest first, at most `limit`; `None` when
    /// the clip is too short for one shingle at any tempo factor.
    pub fn shingle_candidates(
        &self,
        chroma: &[[u8; 12]],
        limit: usize,
    ) -> Result<Option<Vec<sampleid_matching::ShingleHit>>> {
        let engine = self.engine()?;
        let settings = engine.settings();
        let versions = engine
            .shingle_model()
            .query(chroma, settings.chroma.frame_rate(), &settings.shingles);
        if versions.is_empty() {
            return Ok(None);
        }
        self.ensure_shingles()?;
        let mut hits = self
            .read()
            .shingle_search(&versions, settings.shingles.k)?
            .unwrap_or_default();
        hits.truncate(limit);
        Ok(Some(hits))
    }

    /// Audio matching: the passages of the library's songs that play the
    /// clip's music (another performance, key or tempo), cheapest first.
    /// The songs nearest by chroma shingle (`[shingles] candidates`) are
    /// aligned by subsequence DTW; every song is when that is 0 or the clip
    /// is too short for a shingle.
    pub fn passages(&self, source: &Source) -> Result<Passages> {
        let query = self.engine()?.chroma(source, "match")?;
        self.passages_of(query)
    }

    /// [`Library::passages`] of a clip's chroma already computed.
    pub fn passages_of(&self, query: crate::ChromaInput) -> Result<Passages> {
        let engine = self.engine()?;
        let settings = engine.settings();
        let rate = settings.chroma.frame_rate();
        let wanted = settings.shingles.candidates;
        let shortlist: Option<std::collections::HashSet<i64>> = if wanted > 0 {
            self.shingle_candidates(&query.chroma, wanted)?
                .map(|hits| hits.iter().map(|h| h.recording as i64).collect())
        } else {
            None
        };
        if wanted > 0 && shortlist.is_none() {
            tracing::debug!(
                "{} is too short for a chroma shingle; aligning it with every song",
                query.name
            );
        }
        let (songs, recordings) = {
            let lib = self.read();
            if let Some(r) = lib.chroma_rate()
                && (r - rate).abs() > 1e-9
            {
                return Err(Error::Mismatch(format!(
                    "the library {} stores chroma at {r} frames/s but [chroma] gives {rate}; use the configuration it was indexed with",
                    self.dir.display()
                )));
            }
            let with_chroma = || lib.songs().iter().filter(|s| s.chroma_frames > 0);
            let missing = lib.songs().len() - with_chroma().count();
            if missing > 0 {
                tracing::warn!(
                    "{missing} songs were indexed before chroma was stored and cannot be matched; \
                     delete and index them again to include them"
                );
            }
            let songs: Vec<Song> = with_chroma()
                .filter(|s| shortlist.as_ref().is_none_or(|l| l.contains(&s.id)))
                .cloned()
                .collect();
            let recordings: Vec<_> = songs.iter().map(|s| lib.chroma(s)).collect();
            (songs, recordings)
        };
        let found = sampleid_matching::match_query(&query.chroma, &recordings, rate, &settings.matching)?;
        let matches = found
            .iter()
            .map(|m| {
                let song = &songs[m.recording];
                Passage {
                    reference: song.path.clone(),
                    song_id: song.id,
                    start: m.start_s.min(song.duration_s),
                    end: m.end_s.min(song.duration_s),
                    cost: m.cost,
                    tempo_factor: m.tempo_factor,
                    pitch_shift: m.pitch_shift,
                }
            })
            .collect();
        Ok(Passages {
            query: query.name,
            duration_s: query.duration_s,
            matches,
        })
    }

    /// Adds one input: content hash → skipped if the library holds it →
    /// decode and encode (outside the lock) → commit. An input that cannot
    /// be decoded, or is silent, is an error and nothing is written.
    pub fn add(&self, source: &Source, progress: Option<Progress>) -> Result<IndexOutcome> {
        let engine = self.engine()?;
        if !self.writable {
            return Err(Error::ReadOnly(self.dir.display().to_string()));
        }
        let hash = source.content_hash()?;
        if let Some(s) = self.read().find_hash(&hash) {
            return Ok(skipped(source.name(), s));
        }
        let rows = engine.reference_rows(source, progress)?;
        self.commit(source.name(), &hash, &rows)
    }

    /// Commits a reference's rows under the write lock; durable when it returns.
    /// Content the library already holds (same `hash`) is skipped.
    pub fn commit(&self, name: &str, hash: &str, rows: &ReferenceRows) -> Result<IndexOutcome> {
        let _writing = self.writing()?;
        let mut lib = self.write()?;
        if let Some(s) = lib.find_hash(hash) {
            return Ok(skipped(name, s));
        }
        // A library of an older landmark version gets that version's quads.
        let landmarks = rows.landmarks_for(lib.landmark_version())?;
        let song = lib.add_with_landmarks(
            name,
            hash,
            rows.duration_s,
            &rows.fingerprints,
            &rows.nodes,
            &rows.chroma,
            &landmarks,
        )?;
        drop(lib);
        self.ann_dirty.store(true, Ordering::SeqCst);
        tracing::debug!(id = song.id, name = %song.path, "indexed");
        Ok(IndexOutcome::Indexed {
            path: song.path,
            id: song.id,
            duration_s: rows.duration_s,
            segments: song.segments,
        })
    }

    /// Indexes many inputs: a pool of workers hashes, decodes and encodes
    /// them while this thread commits each song as soon as it is ready (one
    /// writer). An input that fails is reported and the others go on; an
    /// error of the library itself (a full disk, say) stops the batch, with
    /// every song reported `indexed` before it durable.
    pub fn index(
        &self,
        inputs: Vec<Source>,
        opts: &IndexOptions,
        on_event: &(dyn Fn(&IndexEvent) + Sync),
    ) -> Result<IndexSummary> {
        let engine = self.engine()?;
        if !self.writable {
            return Err(Error::ReadOnly(self.dir.display().to_string()));
        }
        let started = Instant::now();
        let total = inputs.len();
        let claimed: Mutex<HashSet<String>> = Mutex::new(self.read().songs().iter().map(|s| s.hash.clone()).collect());
        let queue = Mutex::new(inputs.into_iter().collect::<VecDeque<_>>());
        let workers = opts
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .clamp(1, total.max(1));
        enum Work {
            Rows {
                name: String,
                hash: String,
                rows: ReferenceRows,
            },
            Skipped {
                name: String,
                hash: String,
            },
            Failed {
                name: String,
                error: Error,
            },
        }
        let (tx, rx) = mpsc::sync_channel::<Work>(workers);
        let (mut counts, mut audio_s) = ([0usize; 3], 0.0);
        let mut last_save = Instant::now();
        let progress = |name: &str, position_s: f64, declared_s: Option<f64>| {
            on_event(&IndexEvent::Decoding {
                name,
                position_s,
                declared_s,
            })
        };
        std::thread::scope(|scope| -> Result<()> {
            for _ in 0..workers {
                let tx = tx.clone();
                let (queue, claimed, progress) = (&queue, &claimed, &progress);
                scope.spawn(move || {
                    loop {
                        let Some(source) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else {
                            return;
                        };
                        let name = source.name().to_string();
                        let work = match source.content_hash() {
                            Err(error) => Work::Failed { name, error },
                            Ok(hash) => {
                                if !claimed.lock().unwrap_or_else(|e| e.into_inner()).insert(hash.clone()) {
                                    Work::Skipped { name, hash }
                                } else {
                                    match engine.reference_rows(&source, Some(progress)) {
                                        Ok(rows) => Work::Rows { name, hash, rows },
                                        Err(error) => {
                                            claimed.lock().unwrap_or_else(|e| e.into_inner()).remove(&hash);
                                            Work::Failed { name, error }
                                        }
                                    }
                                }
                            }
                        };
                        if tx.send(work).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            for work in rx {
                let outcome = match work {
                    Work::Rows { name, hash, rows } => {
                        let o = self.commit(&name, &hash, &rows)?;
                        if matches!(o, IndexOutcome::Indexed { .. }) {
                            audio_s += rows.duration_s;
                        }
                        o
                    }
                    Work::Skipped { name, hash } => match self.read().find_hash(&hash) {
                        Some(s) => skipped(&name, s),
                        None => IndexOutcome::Skipped {
                            path: name,
                            id: None,
                            reason: "same content as another file of this run".into(),
                        },
                    },
                    Work::Failed { name, error } => IndexOutcome::Failed {
                        path: name,
                        error: error.reason(),
                    },
                };
                counts[match outcome {
                    IndexOutcome::Indexed { .. } => 0,
                    IndexOutcome::Skipped { .. } => 1,
                    IndexOutcome::Failed { .. } => 2,
                }] += 1;
                on_event(&IndexEvent::Done(&outcome));
                if last_save.elapsed().as_secs_f64() > opts.ann_save_every_s {
                    self.save_ann()?;
                    last_save = Instant::now();
                }
            }
            Ok(())
        })?;
        self.save_ann()?;
        let seconds = started.elapsed().as_secs_f64();
        let stats = self.stats()?;
        Ok(IndexSummary {
            indexed: counts[0],
            skipped: counts[1],
            failed: counts[2],
            hours: audio_s / 3600.0,
            seconds,
            realtime: audio_s / seconds.max(1e-9),
            library_songs: stats.songs,
            library_hours: stats.hours,
        })
    }

    /// Deletes a song by id; false when there is none.
    pub fn delete(&self, id: i64) -> Result<bool> {
        let _writing = self.writing()?;
        let deleted = self.write()?.delete(id)?;
        if deleted {
            self.ann_dirty.store(true, Ordering::SeqCst);
        }
        Ok(deleted)
    }

    /// The ids of the songs `target` names: a path as indexed, or an id.
    pub fn find(&self, target: &str) -> Vec<i64> {
        let lib = self.read();
        let mut ids: Vec<i64> = lib.find_path(target).iter().map(|s| s.id).collect();
        if ids.is_empty()
            && let Ok(id) = target.parse::<i64>()
            && lib.songs().iter().any(|s| s.id == id)
        {
            ids.push(id);
        }
        ids
    }

    /// Saves the ANN index (a cache of the rows: a library whose ANN file is
    /// stale rebuilds it when opened).
    pub fn save_ann(&self) -> Result<()> {
        let _writing = self.writing()?;
        self.ann_dirty.store(false, Ordering::SeqCst);
        if let Err(e) = self.write()?.save_ann() {
            self.ann_dirty.store(true, Ordering::SeqCst);
            return Err(e.into());
        }
        Ok(())
    }

    /// Saves the ANN index if songs were added or deleted since it was last saved.
    pub fn save_ann_if_changed(&self) -> Result<()> {
        if self.ann_dirty.load(Ordering::SeqCst) {
            self.save_ann()?;
        }
        Ok(())
    }
}

/// At most this many songs added during a compaction's steps are taken
/// before its finish (see [`Library::compact`]).
const MAX_ADDED_BEFORE_FINISH: usize = 256;

impl Library {
    /// The share of the library's bytes on disk that deleted songs' rows
    /// still hold (0–1): what a compaction would give back, at least.
    pub fn dead_fraction(&self) -> Result<f64> {
        let s = self.stats()?;
        Ok((s.dead_bytes as f64 / s.bytes.max(1) as f64).min(1.0))
    }

    /// Reclaims the rows of deleted songs (see `sampleid_index::compact`):
    /// the live songs' rows are copied into new files and the graphs
    /// rebuilt over them while queries, additions and deletes go on, then
    /// one commit switches to them. `None` when no deleted
    /// song holds rows. A kill at any moment leaves the library as it was
    /// before or after.
    pub fn compact(&self) -> Result<Option<Compacted>> {
        if !self.writable {
            return Err(Error::ReadOnly(self.dir.display().to_string()));
        }
        let _compacting = self.compacting.lock().unwrap_or_else(|e| e.into_inner());
        if self.read().dead_rows() == [0; 4] {
            return Ok(None);
        }
        // Song by song, the shared lock held only to copy a song's rows
        // out: queries go on, and songs are added and deleted between the
        // steps (the commit catches up with them). A commit waiting for the
        // write lock holds new queries back, so nothing long may run under
        // the shared lock.
        let mut c = self.read().begin_compaction()?;
        loop {
            let rows = self.read().compaction_rows(&c)?;
            match rows {
                Some(rows) => c.take(rows)?,
                None => break,
            };
        }
        // Songs added during the steps are taken the same way, a few at a
        // time, so that the finish (exclusive: queries wait for it) only
        // catches up with those added since. Bounded, so that a stream of
        // uploads cannot put the commit off for ever.
        let mut taken = 0;
        while taken < MAX_ADDED_BEFORE_FINISH {
            let added = self.read().compaction_added(&c, 4)?;
            if added.is_empty() {
                break;
            }
            taken += added.len();
            for rows in added {
                c.take_added(rows)?;
            }
        }
        let _writing = self.writing()?;
        let held = std::time::Instant::now();
        let done = self.write()?.finish_compaction(c)?;
        tracing::info!(
            taken_before_finish = taken,
            finish_ms = held.elapsed().as_secs_f64() * 1e3,
            "compaction finished"
        );
        self.ann_dirty.store(false, Ordering::SeqCst);
        Ok(Some(done))
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        if self.writable
            && self.ann_dirty.load(Ordering::SeqCst)
            && let Err(e) = self.save_ann()
        {
            tracing::warn!("cannot save the ANN index of {}: {e}", self.dir.display());
        }
    }
}

/// Moves the song nearest by chroma shingle to `neural[k]` when the neural
/// stage listed it below its `k` best (which the landmarks verify), so that
/// it is verified too; true when it was moved. With distractors in the
/// library the right song of a pitch-shifted clip falls to the neural
/// stage's 4th–6th place while its shingle stays the nearest (bench-users50
/// at 4×, pitch ±3 st: the clips lost from 1× to 4×; `docs/identification.md`).
fn promote_shingle_top(
    neural: &mut [sampleid_search::Match],
    hits: &[sampleid_matching::ShingleHit],
    k: usize,
) -> bool {
    let Some(top) = hits.first() else { return false };
    match neural.iter().position(|m| m.song_id == top.recording as i64) {
        Some(i) if i >= k => {
            neural[k..=i].rotate_right(1);
            true
        }
        _ => false,
    }
}

/// The shingles' view of the clip's nearest songs (song id, evidence), nearest first.
fn shingle_evidence(hits: &[sampleid_matching::ShingleHit]) -> Vec<(i64, sampleid_search::ShingleEvidence)> {
    let mut d: Vec<f64> = hits.iter().map(|h| h.distance as f64).collect();
    d.sort_by(f64::total_cmp);
    let median = d.get(d.len() / 2).copied().unwrap_or(1.0).max(1e-6);
    hits.iter()
        .enumerate()
        .map(|(rank, h)| {
            (
                h.recording as i64,
                sampleid_search::ShingleEvidence {
                    distance: h.distance as f64,
                    relative: h.distance as f64 / median,
                    rank,
                },
            )
        })
        .collect()
}

fn skipped(name: &str, s: &Song) -> IndexOutcome {
    IndexOutcome::Skipped {
        path: name.to_string(),
        id: Some(s.id),
        reason: format!("same content as {} (id {})", s.path, s.id),
    }
}

/// Aligns the query's chroma with each of the best matches' stored chroma:
/// where an alignment is clearly better than chance it gives the reference
/// time, the time ratio and (when unambiguous) the pitch shift.
/// The name of a landmark method in answers (`stage`, `evidence.landmarks.method`).
fn method_name(m: sampleid_landmarks::Method) -> &'static str {
    match m {
        sampleid_landmarks::Method::Pairs => "pairs",
        sampleid_landmarks::Method::Quads => "quads",
        sampleid_landmarks::Method::Guided => "guided",
    }
}

/// What a landmark verification saw of a song (`rate`: peak frames per
/// second; times clamped to the song's `duration_s`).
fn landmark_evidence(
    m: &sampleid_landmarks::LandmarkMatch,
    rate: f64,
    duration_s: f64,
    cfg: &sampleid_landmarks::SearchConfig,
) -> sampleid_search::LandmarkEvidence {
    sampleid_search::LandmarkEvidence {
        method: method_name(m.method).into(),
        kappa: m.score,
        matched: m.matched,
        mapped: m.mapped,
        votes: m.votes,
        verified: m.verified(cfg),
        query_start: m.query_first / rate,
        reference_start: (m.reference_frame(m.query_first) / rate).clamp(0.0, duration_s),
        time_ratio: m.time_scale,
        pitch_shift: 12.0 * m.freq_scale.log2(),
        absent: m.absent,
    }
}

fn refine(lib: &sampleid_index::Library, engine: &Engine, input: &QueryInput, matches: &mut [sampleid_search::Match]) {
    let settings = engine.settings();
    let rcfg = &settings.refine;
    if !rcfg.enabled {
        return;
    }
    let rate = settings.chroma.frame_rate();
    if let Some(r) = lib.chroma_rate()
        && (r - rate).abs() > 1e-9
    {
        tracing::warn!("the library's chroma has {r} frames/s but [chroma] gives {rate}: matches are not aligned");
        return;
    }
    for m in matches.iter_mut().take(rcfg.top) {
        let Some(song) = lib.songs().iter().find(|s| s.id == m.song_id) else {
            continue;
        };
        let reference = lib.chroma(song);
        if let Some(r) = sampleid_matching::refine(&input.chroma, &reference, rate, rcfg) {
            tracing::debug!(reference = %m.reference, ?r, "refined");
            m.evidence.chroma = Some(sampleid_search::ChromaEvidence {
                cost: r.cost,
                relative_cost: r.relative_cost,
                pitch_shift: r.pitch_shift,
            });
            m.reference_start = r.reference_time(input.duration_s, m.query_start);
            m.time_ratio = Some(r.time_ratio);
            m.pitch_shift = r.pitch_shift;
        }
    }
}

/// Files named in `paths`, directories expanded (sorted, recursive, audio
/// extensions only); a directory that cannot be read is an error in its place.
pub fn collect_inputs(paths: &[PathBuf]) -> Vec<Result<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<Result<PathBuf>>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(err) => {
                out.push(Err(Error::Io {
                    name: dir.display().to_string(),
                    err,
                }));
                return;
            }
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            {
                out.push(Ok(p));
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out);
        } else {
            out.push(Ok(p.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::promote_shingle_top;

    fn song(id: i64) -> sampleid_search::Match {
        sampleid_search::Match {
            reference: format!("song{id}"),
            score: 0.0,
            confidence: None,
            query_start: 0.0,
            reference_start: 0.0,
            time_ratio: None,
            pitch_shift: None,
            song_id: id,
            reference_duration: 60.0,
            stage: "neural",
            stages: Vec::new(),
            evidence: sampleid_search::Evidence::default(),
            segments: 0,
        }
    }

    fn nearest(id: usize) -> sampleid_matching::ShingleHit {
        sampleid_matching::ShingleHit {
            recording: id,
            start_s: 0.0,
            query_s: 0.0,
            distance: 0.1,
            tempo_factor: 1.0,
            pitch_shift: 0,
        }
    }

    fn ids(m: &[sampleid_search::Match]) -> Vec<i64> {
        m.iter().map(|m| m.song_id).collect()
    }

    #[test]
    fn the_nearest_shingles_song_joins_the_verified_songs_when_ranked_below_them() {
        let mut neural: Vec<_> = [7, 3, 9, 4, 5, 6].into_iter().map(song).collect();
        // The nearest shingle is song 5, 5th of the neural list: it moves to
        // 4th place, behind the three verified anyway, the order otherwise kept.
        assert!(promote_shingle_top(&mut neural, &[nearest(5), nearest(7)], 3));
        assert_eq!(ids(&neural), [7, 3, 9, 5, 4, 6]);
        // Already among the three, absent from the neural list, or no shingle
        // at all: nothing moves.
        assert!(!promote_shingle_top(&mut neural, &[nearest(9)], 3));
        assert!(!promote_shingle_top(&mut neural, &[nearest(11)], 3));
        assert!(!promote_shingle_top(&mut neural, &[], 3));
        assert_eq!(ids(&neural), [7, 3, 9, 5, 4, 6]);
        // Right behind them: it stays where it is, and is verified.
        assert!(promote_shingle_top(&mut neural, &[nearest(5)], 3));
        assert_eq!(ids(&neural), [7, 3, 9, 5, 4, 6]);
    }
}
