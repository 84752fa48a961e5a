//! `sampleid index`, `delete`, `compact`, `list`, `stats`: adapt [`sampleid_engine::Library`]'s
//! `index`, `delete`, `compact`, `songs` and `stats`.

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

/// Opens a library to delete songs or compact it: with the models in use
/// when they built it (a compaction then also rebuilds the chroma shingle
/// graph without the deleted songs), else without models (the saved shingle
/// graph stays as it is, still valid).
fn open_maintained(db: &Path, cfg: &Config, model: Option<&Path>) -> Result<Library> {
    let with_models = super::engine(cfg, model).and_then(|engine| {
        let existing = Library::inspect(db)?;
        let same = existing.stats()?.layout == engine.layout()?;
        drop(existing);
        if !same {
            anyhow::bail!("other models");
        }
        Ok(Library::open_writer(db, &engine)?)
    });
    match with_models {
        Ok(lib) => Ok(lib),
        Err(e) => {
            tracing::debug!("opening {} without models: {e:#}", db.display());
            Library::maintain(db).with_context(|| format!("cannot open the library {} for writing", db.display()))
        }
    }
}

/// `sampleid delete`; returns the number of arguments that named no song.
pub fn delete(args: &DeleteArgs, cfg: &Config, model: Option<&Path>) -> Result<usize> {
    let lib = if args.compact {
        open_maintained(&args.db, cfg, model)?
    } else {
        Library::maintain(&args.db)
            .with_context(|| format!("cannot open the library {} for writing", args.db.display()))?
    };
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
    if args.compact {
        report_compaction(&lib, false)?;
    }
    Ok(missing)
}

/// `sampleid compact`.
pub fn compact(args: &DbArgs, cfg: &Config, model: Option<&Path>) -> Result<()> {
    let lib = open_maintained(&args.db, cfg, model)?;
    report_compaction(&lib, args.json)
}

fn report_compaction(lib: &Library, json: bool) -> Result<()> {
    let started = std::time::Instant::now();
    let spinner = crate::progress::spinner(&format!("compacting {}", lib.dir().display()));
    let done = lib
        .compact()
        .with_context(|| format!("cannot compact the library {}", lib.dir().display()))?;
    spinner.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    match (done, json) {
        (None, true) => println!("{}", serde_json::json!({ "compacted": false })),
        (None, false) => println!("nothing to compact: no deleted song holds rows"),
        (Some(d), true) => {
            let mut v = serde_json::to_value(&d)?;
            v["seconds"] = serde_json::json!(seconds);
            println!("{v}");
        }
        (Some(d), false) => println!(
            "compacted {} songs: removed {} segments, {} chroma frames, {} peaks and {} quads of deleted songs; \
             {:.1} MB → {:.1} MB in {seconds:.1} s",
            d.songs,
            d.segments_removed,
            d.chroma_frames_removed,
            d.peaks_removed,
            d.quads_removed,
            d.bytes_before as f64 / 1e6,
            d.bytes_after as f64 / 1e6
        ),
    }
    Ok(())
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
        println!(
            "segments     {} (+{} of deleted songs, {:.1} MB: `sampleid compact` reclaims them)",
            st.segments,
            st.dead_segments,
            st.dead_bytes as f64 / 1e6
        );
        println!(
            "size         {:.1} MB ({:.2} MB per hour)",
            st.bytes as f64 / 1e6,
            st.bytes_per_hour / 1e6
        );
        println!("ann          {}", ann_name(st.ann));
        println!("encoder      {}", st.layout.encoder);
        println!("re-ranker    {}", st.layout.reranker);
        match st.landmarks.as_deref() {
            Some(v) if v == sampleid_engine::stages::landmarks::STORED_VERSION => println!("landmarks    {v}"),
            Some(v) => println!(
                "landmarks    {v} (an older version: its songs keep their quads; index into a new --db for {})",
                sampleid_engine::stages::landmarks::STORED_VERSION
            ),
            None => println!("landmarks    none"),
        }
    }
    Ok(())
}
