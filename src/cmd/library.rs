//! `sampleid index`, `delete`, `list`, `stats`: adapt [`sampleid_engine::Library`]'s
//! `index`, `delete`, `songs` and `stats`.

use std::path::Path;

use anyhow::{Context, Result};
use sampleid_engine::{IndexEvent, IndexOptions, IndexOutcome, IndexSummary, Library, Source, collect_inputs};
use sampleid_index::AnnKind;

use crate::cli::{AnnArg, DbArgs, DeleteArgs, IndexArgs};
use crate::config::Config;
use crate::progress;

impl From<AnnArg> for AnnKind {
    fn from(a: AnnArg) -> Self {
        match a {
            AnnArg::Hnsw => AnnKind::Hnsw,
            AnnArg::Exact => AnnKind::Exact,
            AnnArg::IvfPq => AnnKind::IvfPq,
        }
    }
}

/// Opens (or creates) a library for writing; `ann` chooses the ANN structure of a new one.
pub fn open_writer(db: &Path, cfg: &Config, model: Option<&Path>, ann: Option<AnnArg>) -> Result<Library> {
    let engine = super::engine(cfg, model)?;
    let mut icfg = cfg.engine.index.clone();
    if let Some(a) = ann {
        icfg.ann = a.into();
    }
    let lib = Library::open_writer_with(db, &engine, &icfg)
        .with_context(|| format!("cannot open the library {} for writing", db.display()))?;
    if ann.is_some_and(|_| lib.index_config().ann != icfg.ann) {
        tracing::warn!(
            "the library already uses {}; --ann applies to new libraries only",
            ann_name(lib.index_config().ann)
        );
    }
    Ok(lib)
}

/// An ANN kind as the config file and JSON spell it.
pub fn ann_name(a: AnnKind) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Indexes `args.paths` into `lib`, printing a line per input; returns the
/// summary (failures counted there).
fn index_into(lib: &Library, args: &IndexArgs, quiet: bool) -> Result<IndexSummary> {
    let mut sources = Vec::new();
    let mut unreadable = Vec::new();
    for p in collect_inputs(&args.paths) {
        match p {
            Ok(p) => sources.push(Source::file(p)),
            Err(e) => unreadable.push(e),
        }
    }
    let bar = progress::files_bar(sources.len() as u64, quiet);
    let emit = |o: &IndexOutcome| {
        if let IndexOutcome::Failed { path, error } = o {
            bar.suspend(|| eprintln!("error: {path}: {error}"));
        }
        let line = if args.json {
            serde_json::to_string(o).unwrap_or_default()
        } else {
            match o {
                IndexOutcome::Indexed {
                    path,
                    duration_s,
                    segments,
                    ..
                } => format!("indexed {path} ({duration_s:.1} s, {segments} segments)"),
                IndexOutcome::Skipped { path, reason, .. } => format!("skipped {path} ({reason})"),
                IndexOutcome::Failed { .. } => return,
            }
        };
        bar.suspend(|| println!("{line}"));
    };
    for e in &unreadable {
        emit(&IndexOutcome::Failed {
            path: e.input().unwrap_or_default().to_string(),
            error: e.reason(),
        });
    }
    let opts = IndexOptions {
        jobs: args.jobs,
        ..IndexOptions::default()
    };
    let mut summary = lib.index(sources, &opts, &|event| match event {
        IndexEvent::Decoding {
            name,
            position_s,
            declared_s,
        } => progress::show_position(&bar, name, *position_s, *declared_s),
        IndexEvent::Done(o) => {
            emit(o);
            bar.inc(1);
        }
    })?;
    bar.finish_and_clear();
    summary.failed += unreadable.len();
    Ok(summary)
}

/// `sampleid index`; returns the number of files that failed.
pub fn index(args: &IndexArgs, cfg: &Config, model: Option<&Path>, quiet: bool) -> Result<usize> {
    let lib = open_writer(&args.db, cfg, model, args.ann)?;
    let summary = index_into(&lib, args, quiet)?;
    if args.json {
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

/// `sampleid delete`; returns the number of arguments that named no song.
pub fn delete(args: &DeleteArgs) -> Result<usize> {
    let lib = Library::maintain(&args.db)
        .with_context(|| format!("cannot open the library {} for writing", args.db.display()))?;
    let mut missing = 0;
    for target in &args.songs {
        let ids = lib.find(target);
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
    let lib = Library::inspect(&args.db).with_context(|| format!("cannot open the library {}", args.db.display()))?;
    for s in lib.songs() {
        if args.json {
            println!("{}", serde_json::to_string(&s)?);
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
    let lib = Library::inspect(&args.db).with_context(|| format!("cannot open the library {}", args.db.display()))?;
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
        println!("ann          {}", ann_name(st.ann));
        println!("encoder      {}", st.layout.encoder);
        println!("re-ranker    {}", st.layout.reranker);
    }
    Ok(())
}
