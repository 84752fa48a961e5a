//! `sampleid index`, `delete`, `list`, `stats`: the library on disk.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use sampleid_index::{AnnKind, Library};
use serde::Serialize;

use crate::cli::{AnnArg, DbArgs, DeleteArgs, IndexArgs};
use crate::config::Config;
use crate::engine::Engine;
use crate::progress;

/// Extensions searched for inside directories (files named explicitly are
/// always tried).
const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "wave", "flac", "mp3", "ogg", "oga", "opus", "m4a", "mp4", "aac", "alac", "aif", "aiff", "aifc", "caf",
];

/// Save the ANN index at least this often while indexing (seconds), so that a
/// killed run does not leave much of it to rebuild.
const ANN_SAVE_EVERY_S: f64 = 300.0;

/// Files named on the command line, directories expanded (sorted, recursive).
pub fn collect(paths: &[PathBuf]) -> Vec<Result<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<Result<PathBuf>>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                out.push(Err(anyhow!("{}: {e}", dir.display())));
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

/// One file's outcome.
#[derive(Debug, Serialize)]
struct FileOutcome {
    path: String,
    /// indexed | skipped | failed
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// What `index` did.
#[derive(Debug, Serialize)]
struct Summary {
    indexed: usize,
    skipped: usize,
    failed: usize,
    /// Audio indexed in this run.
    hours: f64,
    seconds: f64,
    /// Audio seconds indexed per wall-clock second.
    realtime: f64,
    library_songs: usize,
    library_hours: f64,
}

enum Work {
    Rows {
        path: PathBuf,
        hash: String,
        rows: crate::engine::ReferenceRows,
    },
    Skipped(PathBuf, String),
    Failed(PathBuf, anyhow::Error),
}

/// `sampleid index`; returns the number of files that failed.
pub fn index(args: &IndexArgs, cfg: &Config, model: Option<&Path>, quiet: bool) -> Result<usize> {
    index_with(args, cfg, model, quiet, true)
}

/// [`index`], printing per-file lines and the summary only when `print`.
pub fn index_with(args: &IndexArgs, cfg: &Config, model: Option<&Path>, quiet: bool, print: bool) -> Result<usize> {
    let engine = Engine::load(cfg, model)?;
    let mut icfg = cfg.index.clone();
    if let Some(a) = args.ann {
        icfg.ann = match a {
            AnnArg::Hnsw => AnnKind::Hnsw,
            AnnArg::Exact => AnnKind::Exact,
            AnnArg::IvfPq => AnnKind::IvfPq,
        };
    }
    let mut lib = Library::open_writer(&args.db, &engine.layout(), &icfg)
        .with_context(|| format!("cannot open the library {} for writing", args.db.display()))?;
    lib.ensure_chroma_rate(cfg.chroma.frame_rate())
        .with_context(|| format!("cannot index into {}", args.db.display()))?;
    if args.ann.is_some_and(|_| lib.config().ann != icfg.ann) {
        tracing::warn!(
            "the library already uses {:?}; --ann applies to new libraries only",
            lib.config().ann
        );
    }
    let started = Instant::now();
    let mut outcomes: Vec<FileOutcome> = Vec::new();
    let mut jobs: VecDeque<PathBuf> = VecDeque::new();
    for p in collect(&args.paths) {
        match p {
            Ok(p) => jobs.push_back(p),
            Err(e) => outcomes.push(failed_outcome(Path::new(""), &e)),
        }
    }
    let total = jobs.len();
    let known: HashSet<String> = lib.songs().iter().map(|s| s.hash.clone()).collect();
    let claimed = Mutex::new(known);
    let queue = Mutex::new(jobs);
    let workers = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
        .clamp(1, total.max(1));
    let bar = progress::files_bar(total as u64, quiet);
    let (tx, rx) = mpsc::sync_channel::<Work>(workers);
    let mut audio_s = 0.0;
    let mut last_save = Instant::now();
    let emit = |o: &FileOutcome, bar: &indicatif::ProgressBar| {
        if !print {
            return;
        }
        let line = if args.json {
            serde_json::to_string(o).unwrap_or_default()
        } else {
            match o.status {
                "indexed" => format!(
                    "indexed {} ({:.1} s, {} segments)",
                    o.path,
                    o.duration_s.unwrap_or(0.0),
                    o.segments.unwrap_or(0)
                ),
                "skipped" => format!("skipped {} ({})", o.path, o.reason.as_deref().unwrap_or("")),
                _ => return,
            }
        };
        bar.suspend(|| println!("{line}"));
    };
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..workers {
            let tx = tx.clone();
            let (queue, claimed, bar) = (&queue, &claimed, &bar);
            scope.spawn(move || {
                let engine = match Engine::load(cfg, model) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!("cannot load the models: {e:#}");
                        return;
                    }
                };
                loop {
                    let Some(path) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else {
                        return;
                    };
                    let work = match sampleid_corpus::sha256_file(&path) {
                        Err(e) => Work::Failed(path, e.into()),
                        Ok(hash) => {
                            if !claimed.lock().unwrap_or_else(|e| e.into_inner()).insert(hash.clone()) {
                                Work::Skipped(path, hash)
                            } else {
                                match engine.reference_rows(&path, Some(bar)) {
                                    Ok(rows) => Work::Rows { path, hash, rows },
                                    Err(e) => {
                                        claimed.lock().unwrap_or_else(|e| e.into_inner()).remove(&hash);
                                        Work::Failed(path, e)
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
                Work::Rows { path, hash, rows } => {
                    let duration_s = rows.duration_s;
                    if rows.fingerprints.is_empty() || rows.peak < crate::engine::SILENCE_PEAK {
                        failed_outcome(&path, &anyhow!("no audio to index (empty or silent file)"))
                    } else {
                        let name = path.display().to_string();
                        let song = lib
                            .add(&name, &hash, duration_s, &rows.fingerprints, &rows.nodes, &rows.chroma)
                            .with_context(|| format!("cannot add {name} to the library"))?;
                        audio_s += duration_s;
                        FileOutcome {
                            path: name,
                            status: "indexed",
                            id: Some(song.id),
                            duration_s: Some(duration_s),
                            segments: Some(song.segments),
                            reason: None,
                        }
                    }
                }
                Work::Skipped(path, hash) => {
                    let reason = match lib.find_hash(&hash) {
                        Some(s) => format!("same content as {} (id {})", s.path, s.id),
                        None => "same content as another file of this run".into(),
                    };
                    FileOutcome {
                        path: path.display().to_string(),
                        status: "skipped",
                        id: lib.find_hash(&hash).map(|s| s.id),
                        duration_s: None,
                        segments: None,
                        reason: Some(reason),
                    }
                }
                Work::Failed(path, e) => failed_outcome(&path, &e),
            };
            if outcome.status == "failed" {
                bar.suspend(|| eprintln!("error: {}: {}", outcome.path, outcome.reason.as_deref().unwrap_or("")));
            }
            emit(&outcome, &bar);
            outcomes.push(outcome);
            bar.inc(1);
            if last_save.elapsed().as_secs_f64() > ANN_SAVE_EVERY_S {
                lib.save_ann().context("cannot save the ANN index")?;
                last_save = Instant::now();
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    lib.save_ann().context("cannot save the ANN index")?;
    let seconds = started.elapsed().as_secs_f64();
    let count = |s: &str| outcomes.iter().filter(|o| o.status == s).count();
    let stats = lib.stats()?;
    let summary = Summary {
        indexed: count("indexed"),
        skipped: count("skipped"),
        failed: count("failed"),
        hours: audio_s / 3600.0,
        seconds,
        realtime: audio_s / seconds.max(1e-9),
        library_songs: stats.songs,
        library_hours: stats.hours,
    };
    if !print {
        tracing::info!(?summary, "indexed");
    } else if args.json {
        println!("{}", serde_json::json!({ "summary": summary }));
    } else {
        println!(
            "{} indexed, {} skipped, {} failed: {:.2} h of audio in {:.1} s ({:.0}× realtime); the library has {} songs, {:.2} h",
            summary.indexed,
            summary.skipped,
            summary.failed,
            summary.hours,
            summary.seconds,
            summary.realtime,
            summary.library_songs,
            summary.library_hours
        );
    }
    Ok(summary.failed)
}

fn failed_outcome(path: &Path, e: &anyhow::Error) -> FileOutcome {
    FileOutcome {
        path: path.display().to_string(),
        status: "failed",
        id: None,
        duration_s: None,
        segments: None,
        reason: Some(format!("{e:#}")),
    }
}

/// `sampleid delete`; returns the number of arguments that named no song.
pub fn delete(args: &DeleteArgs) -> Result<usize> {
    let (layout, cfg) = {
        let lib = Library::open(&args.db).with_context(|| format!("cannot open the library {}", args.db.display()))?;
        (lib.layout().clone(), lib.config().clone())
    };
    let mut lib = Library::open_writer(&args.db, &layout, &cfg)
        .with_context(|| format!("cannot open the library {} for writing", args.db.display()))?;
    let mut missing = 0;
    for target in &args.songs {
        let mut ids: Vec<i64> = lib.find_path(target).iter().map(|s| s.id).collect();
        if ids.is_empty()
            && let Ok(id) = target.parse::<i64>()
            && lib.songs().iter().any(|s| s.id == id)
        {
            ids.push(id);
        }
        if ids.is_empty() {
            eprintln!("error: {target}: no such song in the library (see `sampleid list`)");
            missing += 1;
        }
        for id in ids {
            lib.delete(id)?;
            println!("deleted {target} (id {id})");
        }
    }
    lib.save_ann().context("cannot save the ANN index")?;
    Ok(missing)
}

/// `sampleid list`.
pub fn list(args: &DbArgs) -> Result<()> {
    let lib = Library::open(&args.db).with_context(|| format!("cannot open the library {}", args.db.display()))?;
    for s in lib.songs() {
        if args.json {
            println!("{}", serde_json::to_string(s)?);
        } else {
            println!(
                "{:>6}  {:>8.1} s  {:>6} seg  {}  {}",
                s.id, s.duration_s, s.segments, s.added, s.path
            );
        }
    }
    Ok(())
}

/// `sampleid stats`.
pub fn stats(args: &DbArgs) -> Result<()> {
    let lib = Library::open(&args.db).with_context(|| format!("cannot open the library {}", args.db.display()))?;
    let st = lib.stats()?;
    if args.json {
        println!("{}", serde_json::to_string(&st)?);
    } else {
        println!("songs        {}", st.songs);
        println!("audio        {:.2} h", st.hours);
        println!("segments     {} (+{} of deleted songs)", st.segments, st.dead_segments);
        println!(
            "size         {:.1} MB ({:.2} MB per hour)",
            st.bytes as f64 / 1e6,
            st.bytes_per_hour / 1e6
        );
        println!("ann          {:?}", st.ann);
        println!("encoder      {}", st.layout.encoder);
        println!("re-ranker    {}", st.layout.reranker);
    }
    Ok(())
}
