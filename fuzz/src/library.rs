//! The `library` target: a small real library (two 20 s fixture songs,
//! indexed once per process with the built-in models), copied for every
//! input into a scratch directory, damaged as the input says, then opened
//! for query (`Library::open`, read-only) and, when it opens, asked one
//! identification (8 s of one of the songs, decoded and encoded once,
//! every stage run) and listed. Errors are expected; a panic, a hang or a huge
//! allocation is a finding.
//!
//! The `library_ivfpq` target does the same with an IVF-PQ library (its
//! quantisers trained and saved in `ivfpq.bin`: the four 20 s fixtures and
//! the four one after the other, 288 segments) copied while its writer
//! still held it open, so that its SQLite commits are in the write-ahead
//! log (`library.sqlite-wal`, `library.sqlite-shm`) and not yet in
//! `library.sqlite`.
//!
//! An input is a list of up to [`MAX_DAMAGES`] damages, each
//!
//! ```text
//! file: u8   which file: FILES[file % n] (then any other file of the library, by name)
//! op: u8     op % 4: 0 overwrite, 1 truncate, 2 append, 3 delete
//! at: u32le  overwrite: the offset (at % (len + 1)); truncate: the new length (at % (len + 1))
//! n: u8      overwrite and append: the number of data bytes that follow
//! data       n bytes (fewer if the input ends)
//! ```
//!
//! Missing trailing fields read as zeros. Overwriting or appending to a
//! file that does not exist creates it.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sampleid_engine::stages::index::AnnKind;
use sampleid_engine::{Engine, IdentifyOptions, Library, ModelSource, QueryInput, Settings, Source, Stage};

/// The library's files, in the order the input's first byte picks them
/// (stable, so that committed seeds keep their meaning). Files the library
/// holds beyond these follow, sorted by name.
pub const FILES: &[&str] = &[
    "library.sqlite",
    "fingerprints.f16",
    "nodes.i8",
    "chroma.u8",
    "peaks.lm",
    "quads.lm",
    "ann.usearch",
    "ann.json",
    "shingles.usearch",
    "shingles.json",
];

/// The files of the `library_ivfpq` target's library, in the order the
/// input's first byte picks them.
pub const FILES_IVFPQ: &[&str] = &[
    "library.sqlite",
    "library.sqlite-wal",
    "library.sqlite-shm",
    "ivfpq.bin",
    "ann.json",
    "fingerprints.f16",
    "nodes.i8",
    "chroma.u8",
    "peaks.lm",
    "quads.lm",
    "shingles.usearch",
    "shingles.json",
];

/// Damages per input at most.
pub const MAX_DAMAGES: usize = 4;

/// The songs of the library; the query clip is 8 s of the first (from 4 s
/// on), long enough for every stage (a segment is 4.08 s, the chroma
/// alignment wants 3 s, the chroma shingles about 7.5 s).
const SONGS: &[&str] = &["nebula-20s.ogg", "media-threat-20s.ogg"];
/// The IVF-PQ library's songs (with the four one after the other): IVF-PQ
/// trains on 256 rows at least, a 20 s song has 32.
const SONGS_IVFPQ: &[&str] = &[
    "nebula-20s.ogg",
    "media-threat-20s.ogg",
    "awakening-20s.ogg",
    "deprecation-20s.ogg",
];
const CLIP_FROM_S: usize = 4;
const CLIP_S: usize = 8;

struct State {
    engine: Engine,
    pristine: PathBuf,
    scratch: PathBuf,
    files: Vec<String>,
    query: QueryInput,
}

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/audio")
        .join(name)
}

/// Removes the directories earlier processes of this target left behind
/// (`sampleid-fuzz-library-PID` whose process is gone).
fn remove_stale(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("sampleid-fuzz-library-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// Which library a target damages.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Hnsw,
    IvfPqInWal,
}

fn state(kind: Kind) -> &'static State {
    static HNSW: OnceLock<State> = OnceLock::new();
    static IVFPQ: OnceLock<State> = OnceLock::new();
    let cell = match kind {
        Kind::Hnsw => &HNSW,
        Kind::IvfPqInWal => &IVFPQ,
    };
    cell.get_or_init(|| build(kind))
}

fn build(kind: Kind) -> State {
    let tmp = std::env::temp_dir();
    remove_stale(&tmp);
    let root = tmp.join(format!(
        "sampleid-fuzz-library-{}/{}",
        std::process::id(),
        if kind == Kind::Hnsw { "hnsw" } else { "ivfpq" }
    ));
    let _ = fs::remove_dir_all(&root);
    let pristine = root.join("pristine");
    let mut settings = Settings::default();
    // Every stage runs (the landmarks are never decisive alone): the
    // ANN, the fingerprint and node rows, the chroma are all read.
    settings.query.early_stop = 2.0;
    let (songs, names) = match kind {
        Kind::Hnsw => (
            SONGS.iter().map(|s| Source::file(fixture(s))).collect::<Vec<_>>(),
            FILES,
        ),
        Kind::IvfPqInWal => {
            settings.index.ann = AnnKind::IvfPq;
            settings.index.ivfpq.lists = 8;
            settings.index.ivfpq.nprobe = 4;
            settings.index.ivfpq.train_rows = 256;
            let mut songs: Vec<Source> = SONGS_IVFPQ.iter().map(|s| Source::file(fixture(s))).collect();
            let rate = settings.audio.sample_rate;
            let all: Vec<f32> = SONGS_IVFPQ
                .iter()
                .flat_map(|s| {
                    sampleid_engine::stages::audio::decode_file(&fixture(s), &settings.audio)
                        .expect("a fixture song decodes")
                        .samples
                })
                .collect();
            songs.push(Source::bytes(wav(&all, rate), "all-four", Some("wav")));
            (songs, FILES_IVFPQ)
        }
    };
    let engine = Engine::load(settings, ModelSource::Default).expect("the built-in models load");
    {
        let writer = root.join("writer");
        let lib = Library::open_writer(&writer, &engine).expect("a new library");
        for song in &songs {
            lib.add(song, None).expect("a song is indexed");
        }
        lib.save_ann().expect("the ANN index is saved");
        if kind == Kind::IvfPqInWal {
            // Copied while the writer holds it: the commits are in the WAL.
            copy_dir(&writer, &pristine);
        }
    }
    if kind == Kind::Hnsw {
        copy_dir(&root.join("writer"), &pristine);
    }
    let _ = fs::remove_file(pristine.join("write.lock"));
    if kind == Kind::IvfPqInWal {
        for f in ["ivfpq.bin", "library.sqlite-wal"] {
            let len = fs::metadata(pristine.join(f)).map(|m| m.len()).unwrap_or(0);
            assert!(len > 0, "the IVF-PQ library has {f}");
        }
    }
    let mut files: Vec<String> = names.iter().map(|f| f.to_string()).collect();
    let mut others: Vec<String> = fs::read_dir(&pristine)
        .expect("the library directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !files.contains(n))
        .collect();
    others.sort();
    files.extend(others);
    let query = engine
        .query_input_for(&clip(&engine), Stage::All)
        .expect("the query clip is encoded");
    // The undamaged library answers the clip with its song: every stage
    // has something to read. Checked on a copy: opening checkpoints the WAL.
    let check = root.join("check");
    copy_dir(&pristine, &check);
    let lib = Library::open(&check, &engine).expect("the undamaged library opens");
    let answer = lib
        .identify_input(&query, &IdentifyOptions::default())
        .expect("the undamaged library answers");
    // The IVF-PQ library holds the clip's song twice (alone and in
    // "all-four"): both are right, and which comes first is a tie in
    // confidence (1 − 5e-13 for both), broken by rounding.
    let song = fixture(SONGS[0]).display().to_string();
    let first = answer.matches.first().map(|m| m.reference.as_str());
    assert!(
        first == Some(song.as_str()) || (kind == Kind::IvfPqInWal && first == Some("all-four")),
        "the undamaged library finds the clip's song first: {answer:?}"
    );
    assert!(
        answer.matches.iter().any(|m| m.reference == song),
        "the undamaged library finds the clip's song: {answer:?}"
    );
    assert!(
        lib.read().shingle_model().is_some(),
        "the identification searched the chroma shingles"
    );
    drop(lib);
    State {
        engine,
        pristine,
        scratch: root.join("scratch"),
        files,
        query,
    }
}

/// The query clip, as a 16-bit mono WAV in memory.
fn clip(engine: &Engine) -> Source {
    let rate = engine.settings().audio.sample_rate;
    let song = sampleid_engine::stages::audio::decode_file(&fixture(SONGS[0]), &engine.settings().audio)
        .expect("the fixture song decodes")
        .samples;
    let excerpt = &song[CLIP_FROM_S * rate as usize..(CLIP_FROM_S + CLIP_S) * rate as usize];
    Source::bytes(wav(excerpt, rate), "clip", Some("wav"))
}

/// `samples` as a 16-bit mono WAV file in memory.
pub(crate) fn wav(samples: &[f32], rate: u32) -> Vec<u8> {
    let data_bytes = (samples.len() * 2) as u32;
    let mut wav = Vec::with_capacity(44 + data_bytes as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_bytes).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_bytes.to_le_bytes());
    for v in samples {
        wav.extend_from_slice(&((v.clamp(-1.0, 1.0) * 32_767.0) as i16).to_le_bytes());
    }
    wav
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("the scratch directory");
    for e in fs::read_dir(from).expect("the pristine library").flatten() {
        fs::copy(e.path(), to.join(e.file_name())).expect("a library file is copied");
    }
}

/// The unread bytes of an input; missing bytes read as zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take(&mut self, n: usize) -> Vec<u8> {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        let mut v = head.to_vec();
        v.resize(n, 0);
        v
    }
}

/// Reads the damages of `data` and applies them to the library in `dir`.
fn apply(data: &[u8], dir: &Path, files: &[String]) {
    let mut input = Input(data);
    for _ in 0..MAX_DAMAGES {
        let head = input.take(2);
        let (file, op) = (head[0] as usize, head[1] % 4);
        let at = u32::from_le_bytes(input.take(4).try_into().expect("4 bytes")) as u64;
        let n = input.take(1)[0] as usize;
        let path = dir.join(&files[file % files.len()]);
        let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        match op {
            0 => {
                let bytes = input.take(n);
                if let Ok(mut f) = fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                {
                    let _ = f.seek(SeekFrom::Start(at % (len + 1)));
                    let _ = f.write_all(&bytes);
                }
            }
            1 => {
                if let Ok(f) = fs::OpenOptions::new().write(true).open(&path) {
                    let _ = f.set_len(at % (len + 1));
                }
            }
            2 => {
                let bytes = input.take(n);
                if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&path) {
                    let _ = f.write_all(&bytes);
                }
            }
            _ => {
                let _ = fs::remove_file(&path);
            }
        }
        if input.0.is_empty() {
            break;
        }
    }
}

/// Builds the HNSW library of `library` (once per process): called before
/// the first input, so that the setup (indexing the songs, several seconds
/// on a busy machine) does not count against libFuzzer's per-input timeout.
/// CI's smoke run once timed out on its first input without it.
pub fn prepare() {
    state(Kind::Hnsw);
}

/// Builds the IVF-PQ library of `library_ivfpq` (once per process; see [`prepare`]).
pub fn prepare_ivfpq() {
    state(Kind::IvfPqInWal);
}

/// One execution of `library`: a fresh copy of the HNSW library, damaged
/// by `data`, opened for query, asked one identification and listed.
pub fn damaged(data: &[u8]) {
    run(state(Kind::Hnsw), data)
}

/// One execution of `library_ivfpq`: the same with the IVF-PQ library
/// whose commits are in the WAL.
pub fn damaged_ivfpq(data: &[u8]) {
    run(state(Kind::IvfPqInWal), data)
}

fn run(s: &State, data: &[u8]) {
    let _ = fs::remove_dir_all(&s.scratch);
    copy_dir(&s.pristine, &s.scratch);
    apply(data, &s.scratch, &s.files);
    if let Ok(lib) = Library::open(&s.scratch, &s.engine) {
        let _ = lib.identify_input(&s.query, &IdentifyOptions::default());
        for song in lib.songs() {
            let _ = lib.song(song.id);
        }
        let _ = lib.stats();
    }
}
