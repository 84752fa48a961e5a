//! `sampleid query`: what songs of the library a clip contains.

use std::path::Path;

use anyhow::{Context, Result, bail};
use sampleid_index::Library;
use sampleid_search::{Match, query};
use serde::Serialize;

use crate::cli::QueryArgs;
use crate::config::Config;
use crate::engine::{Engine, QueryInput};

/// One line of `sampleid query --json`.
#[derive(Debug, Serialize)]
pub struct QueryLine {
    pub query: String,
    /// The clip's decoded duration (s).
    pub duration_s: f64,
    pub matches: Vec<Match>,
}

/// Opens a library for queries with an engine whose models match it.
pub fn open(db: &Path, cfg: &Config, model: Option<&Path>) -> Result<(Library, Engine)> {
    let lib = Library::open(db).with_context(|| format!("cannot open the library {}", db.display()))?;
    let engine = Engine::load(cfg, model)?;
    let (theirs, ours) = (lib.layout(), engine.layout());
    if theirs != &ours {
        bail!(
            "the library {} was indexed with encoder {} / re-ranker {}, but {} / {} is in use; \
             query with the same models or re-index",
            db.display(),
            theirs.encoder,
            theirs.reranker,
            ours.encoder,
            ours.reranker
        );
    }
    Ok((lib, engine))
}

/// Answers one file.
pub fn answer(
    lib: &Library,
    engine: &Engine,
    file: &Path,
    rerank: bool,
    cfg: &sampleid_search::QueryConfig,
) -> Result<QueryLine> {
    let input = engine.query_input(file)?;
    answer_input(lib, engine, &file.display().to_string(), &input, rerank, cfg)
}

/// Answers a decoded and encoded clip (`name` labels it); a silent clip is an error.
pub fn answer_input(
    lib: &Library,
    engine: &Engine,
    name: &str,
    input: &QueryInput,
    rerank: bool,
    cfg: &sampleid_search::QueryConfig,
) -> Result<QueryLine> {
    if input.peak < crate::engine::SILENCE_PEAK {
        return Err(crate::engine::Silent {
            name: name.to_string(),
            what: "identify",
        }
        .into());
    }
    let reranker = rerank.then_some(&engine.reranker);
    let mut matches = query(lib, reranker, &input.segments, cfg)?;
    refine_matches(lib, engine, input, &mut matches);
    Ok(QueryLine {
        query: name.to_string(),
        duration_s: input.duration_s,
        matches,
    })
}

/// Aligns the query's chroma with each of the best matches' stored chroma:
/// where an alignment is clearly better than chance it gives the reference
/// time, the time ratio and (when unambiguous) the pitch shift.
pub fn refine_matches(lib: &Library, engine: &Engine, input: &QueryInput, matches: &mut [Match]) {
    let rcfg = &engine.cfg.refine;
    if !rcfg.enabled {
        return;
    }
    let rate = engine.cfg.chroma.frame_rate();
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
            m.reference_start = r.reference_time(input.duration_s, m.query_start);
            m.time_ratio = Some(r.time_ratio);
            m.pitch_shift = r.pitch_shift;
        }
    }
}

/// `sampleid query`; returns the number of files that failed.
pub fn run(args: &QueryArgs, cfg: &Config, model: Option<&Path>) -> Result<usize> {
    let (lib, engine) = open(&args.db, cfg, model)?;
    let mut qcfg = cfg.query.clone();
    if let Some(k) = args.top_k {
        qcfg.top_k = k;
    }
    let mut failed = 0;
    for file in &args.files {
        let name = file.display().to_string();
        match answer(&lib, &engine, file, !args.no_rerank, &qcfg) {
            Ok(line) if args.json => {
                println!("{}", serde_json::to_string(&line)?);
            }
            Ok(QueryLine { matches, .. }) => {
                println!("{name}");
                if matches.is_empty() {
                    println!("  no match");
                }
                for (i, m) in matches.iter().enumerate() {
                    let ratio = m.time_ratio.map(|r| format!(", time ratio {r:.2}")).unwrap_or_default();
                    let pitch = m.pitch_shift.map(|p| format!(", pitch {p:+.1} st")).unwrap_or_default();
                    println!(
                        "  {}. {}  score {:.2}  query {:.1} s ↔ reference {:.1} s{ratio}{pitch}",
                        i + 1,
                        m.reference,
                        m.score,
                        m.query_start,
                        m.reference_start
                    );
                }
            }
            Err(e) => {
                failed += 1;
                super::query_error(&name, &e, args.json);
            }
        }
    }
    Ok(failed)
}
