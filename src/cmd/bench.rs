//! The lab's benchmarks: `sampleid bench make` (a benchmark from the
//! corpus's test split), `bench run` (score any system's answers; without
//! `--results`, sampleid's own through the engine), `bench versions` and
//! `bench matching`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use sampleid_engine::{IdentifyOptions, Library, Source};
use serde::Serialize;

use crate::cli::{BenchMakeArgs, BenchMatchingArgs, BenchRunArgs, ProtocolArg, SplitArg, SuiteArg};
use crate::config::Config;

/// `sampleid bench versions`.
pub fn versions(args: &crate::cli::BenchVersionsArgs, quiet: bool) -> Result<()> {
    let opts = sampleid_bench::VersionOptions {
        corpus: args.corpus.clone(),
        out: args.out.clone(),
        pieces: args.pieces,
        versions: args.versions,
        excerpt_s: args.excerpt,
        seed: args.seed,
    };
    let bar = crate::progress::files_bar(1, quiet);
    let bench = sampleid_bench::make_versions(&opts, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .context("building the version benchmark")?;
    bar.finish_and_clear();
    println!(
        "{}: {} references (refs/), {} version queries; then: sampleid bench run --bench {} and \
         sampleid bench matching --bench {} --db DB",
        args.out.display(),
        bench.references.len(),
        bench.queries.len(),
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

pub fn make(args: &BenchMakeArgs, quiet: bool) -> Result<()> {
    let mut opts = sampleid_bench::MakeOptions::new(args.corpus.clone(), args.out.clone());
    opts.protocols = match args.protocol {
        ProtocolArg::AudioId => vec![sampleid_bench::Protocol::AudioId],
        ProtocolArg::SampleId => vec![sampleid_bench::Protocol::SampleId],
        ProtocolArg::Both => vec![sampleid_bench::Protocol::AudioId, sampleid_bench::Protocol::SampleId],
    };
    opts.suite = match args.suite {
        SuiteArg::Paper => sampleid_bench::Suite::Paper,
        SuiteArg::Users => sampleid_bench::Suite::Users,
        SuiteArg::All => sampleid_bench::Suite::All,
    };
    opts.split = match args.split {
        SplitArg::Test => sampleid_corpus::Split::Test,
        SplitArg::Validation => sampleid_corpus::Split::Validation,
    };
    opts.references = args.references;
    opts.negatives = args.negatives.0;
    opts.per_cell = args.per_cell;
    opts.negatives_per_cell = args.negatives_per_cell;
    opts.seed = args.seed;
    let bar = indicatif::ProgressBar::with_draw_target(Some(1), indicatif::ProgressDrawTarget::stderr());
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} queries")
            .expect("static template"),
    );
    let bench = sampleid_bench::make(&opts, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .context("building the benchmark")?;
    bar.finish_and_clear();
    let count = |p| bench.queries.iter().filter(|q| q.protocol == p).count();
    println!(
        "{}: {} references (refs/), {} negatives, {} queries ({} audio-id, {} sample-id; {} negative)",
        args.out.display(),
        bench.references.len(),
        bench.negatives.len(),
        bench.queries.len(),
        count(sampleid_bench::Protocol::AudioId),
        count(sampleid_bench::Protocol::SampleId),
        bench.queries.iter().filter(|q| q.negative).count()
    );
    println!(
        "index {}/refs, query {}/queries/*.wav, then: sampleid bench run --bench {} --results FILE.jsonl",
        args.out.display(),
        args.out.display(),
        args.out.display()
    );
    Ok(())
}

pub fn run(args: &BenchRunArgs, cfg: &Config, model_path: Option<&Path>, quiet: bool) -> Result<()> {
    let bench = sampleid_bench::Benchmark::load(&args.bench)?;
    let (results_path, default_system) = match &args.results {
        Some(r) => (
            r.clone(),
            r.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "system".into()),
        ),
        None => {
            let encoder =
                sampleid_engine::models::load_encoder(&sampleid_engine::ModelSource::from_option(model_path))?;
            let system = format!(
                "sampleid-{}{}-{}",
                encoder.info().version,
                if args.no_rerank { "-norerank" } else { "" },
                format!("{:?}", args.ann).to_lowercase()
            );
            let out = args.out.clone().unwrap_or_else(|| {
                args.bench
                    .join(format!("report-{}", args.system.as_deref().unwrap_or(&system)))
            });
            std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            let path = out.join("answers.jsonl");
            answer(args, &bench, model_path, cfg, &path, quiet)?;
            (path, system)
        }
    };
    let mut results = sampleid_bench::read_results(&results_path)?;
    if let Some(t) = args.min_score {
        for v in results.values_mut() {
            v.retain(|m| m.score >= t);
        }
    }
    let system = args.system.clone().unwrap_or(default_system);
    // Looped music: an answer at another place where the reference plays
    // the same audio counts in `located_repeat` (the references are decoded
    // for the answers that need it only).
    let repeats = sampleid_bench::RepeatCheck::new(&args.bench, &bench);
    let same = |r: &str, a: f64, b: f64, len: f64| repeats.same_audio(r, a, b, len);
    let scores = sampleid_bench::score_with(&bench, &results, Some(&same));
    let summary = sampleid_bench::report::Summary {
        system: &system,
        benchmark: args.bench.display().to_string(),
        results: results_path.display().to_string(),
        scores: &scores,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.bench.join(format!("report-{system}")));
    let mut files = sampleid_bench::report::write(&out, &summary)?;
    files.extend(write_reliability(&bench, &results_path, &out, &system)?);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", sampleid_bench::report::markdown(&summary));
        for f in files {
            eprintln!("wrote {}", f.display());
        }
    }
    Ok(())
}

/// A listed candidate of a results file with its evidence and whether it is right.
pub(crate) struct Candidate {
    pub evidence: sampleid_engine::stages::search::Evidence,
    pub confidence: Option<f64>,
    pub duration_s: f64,
    /// The library's size when the query was answered (h); `None` in
    /// answers written before the answers carried it.
    pub library_hours: Option<f64>,
    pub right: bool,
    /// From a negative query (unknown music).
    pub unknown: bool,
}

/// Every candidate listed in `results` (sampleid's `query --json` lines)
/// for the queries of `bench`, labelled with the benchmark's truth.
pub(crate) fn labelled_candidates(bench: &sampleid_bench::Benchmark, results: &Path) -> Result<Vec<Candidate>> {
    #[derive(serde::Deserialize)]
    struct Line {
        query: String,
        #[serde(default)]
        duration_s: f64,
        #[serde(default)]
        library_hours: Option<f64>,
        matches: Vec<M>,
    }
    #[derive(serde::Deserialize)]
    struct M {
        reference: String,
        #[serde(default)]
        confidence: Option<f64>,
        #[serde(default)]
        evidence: sampleid_engine::stages::search::Evidence,
    }
    let by_id: std::collections::HashMap<&str, &sampleid_bench::Query> =
        bench.queries.iter().map(|q| (q.id.as_str(), q)).collect();
    let text = std::fs::read_to_string(results).with_context(|| format!("cannot read {}", results.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let l: Line = serde_json::from_str(line).with_context(|| format!("{} line {}", results.display(), i + 1))?;
        let Some(q) = by_id.get(sampleid_bench::query_id(&l.query).as_str()) else {
            continue;
        };
        let duration_s = if l.duration_s > 0.0 { l.duration_s } else { q.length_s };
        out.extend(l.matches.into_iter().map(|m| Candidate {
            right: sampleid_bench::is_right(q, &m.reference),
            unknown: q.negative,
            evidence: m.evidence,
            confidence: m.confidence,
            duration_s,
            library_hours: l.library_hours,
        }));
    }
    Ok(out)
}

/// The reliability of the confidences in `results` (every listed candidate
/// that has one): `reliability.json` and `reliability.png` in `out`.
fn write_reliability(
    bench: &sampleid_bench::Benchmark,
    results: &Path,
    out: &Path,
    system: &str,
) -> Result<Vec<PathBuf>> {
    let predicted: Vec<(f64, bool)> = labelled_candidates(bench, results)?
        .into_iter()
        .filter_map(|c| Some((c.confidence?, c.right)))
        .collect();
    if predicted.is_empty() {
        return Ok(Vec::new());
    }
    let (bins, ece) = sampleid_engine::fusion::reliability(&predicted, 10);
    let json = serde_json::json!({
        "candidates": predicted.len(),
        "ece": ece,
        "bins": bins.iter().map(|(p, o, n)| serde_json::json!({"predicted": p, "observed": o, "count": n})).collect::<Vec<_>>(),
    });
    let p = out.join("reliability.json");
    sampleid_fsio::atomic_write(&p, serde_json::to_string_pretty(&json)?.as_bytes())
        .with_context(|| format!("cannot write {}", p.display()))?;
    let png = out.join("reliability.png");
    sampleid_report::reliability_chart(
        &png,
        &format!("{system}: {} candidates, ECE {:.3}", predicted.len(), ece),
        &bins,
    )?;
    eprintln!(
        "confidence reliability over {} listed candidates: ECE {:.3}",
        predicted.len(),
        ece
    );
    Ok(vec![p, png])
}

/// sampleid's own answers to a benchmark: refs/ indexed into a library,
/// every query answered by [`Library::identify`], JSON lines in the
/// `sampleid query --json` format.
fn answer(
    args: &BenchRunArgs,
    bench: &sampleid_bench::Benchmark,
    model: Option<&Path>,
    cfg: &Config,
    out: &Path,
    quiet: bool,
) -> Result<()> {
    use std::io::Write;

    let engine = crate::cmd::engine(cfg, model)?;
    let db = args.db.clone().unwrap_or_else(|| {
        args.bench.join(format!(
            "db-{}-{}",
            engine.encoder().info().version,
            format!("{:?}", args.ann).to_lowercase()
        ))
    });
    let started = Instant::now();
    let summary = {
        let lib = crate::cmd::library::open_writer(&db, cfg, model, Some(args.ann))?;
        let refs: Vec<Source> = sampleid_engine::collect_inputs(&[args.bench.join("refs")])
            .into_iter()
            .map(|p| p.map(Source::file))
            .collect::<Result<_, _>>()?;
        let bar = crate::progress::files_bar(refs.len() as u64, quiet);
        let summary = lib.index(refs, &sampleid_engine::IndexOptions::default(), &|e| {
            if let sampleid_engine::IndexEvent::Done(o) = e {
                if let sampleid_engine::IndexOutcome::Failed { path, error } = o {
                    bar.suspend(|| eprintln!("error: {path}: {error}"));
                }
                bar.inc(1);
            }
        })?;
        bar.finish_and_clear();
        summary
    };
    tracing::info!(?summary, "indexed");
    if summary.failed > 0 {
        anyhow::bail!("{} reference(s) could not be indexed", summary.failed);
    }
    let index_s = started.elapsed().as_secs_f64();
    let lib = Library::open(&db, &engine).with_context(|| format!("cannot open the library {}", db.display()))?;
    let opts = IdentifyOptions {
        rerank: !args.no_rerank,
        top_k: None,
        stage: args.stage.into(),
        min_confidence: args.min_confidence,
    };
    let bar = crate::progress::files_bar(bench.queries.len() as u64, quiet);
    let mut file =
        sampleid_fsio::AtomicFile::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut latency = Vec::new();
    let mut per_query = Vec::new();
    for q in &bench.queries {
        let t0 = Instant::now();
        let mut line = lib
            .identify(&Source::file(args.bench.join(&q.path)), &opts)
            .with_context(|| format!("query {}", q.path))?;
        latency.push(t0.elapsed().as_secs_f64());
        per_query.push(
            serde_json::json!({"query": q.path, "length_s": q.length_s, "ms": 1000.0 * t0.elapsed().as_secs_f64()}),
        );
        // References are named by path as indexed; scoring matches their file names.
        line.query = q.path.clone();
        writeln!(file, "{}", serde_json::to_string(&line)?)?;
        bar.inc(1);
    }
    file.commit()
        .with_context(|| format!("cannot write {}", out.display()))?;
    bar.finish_and_clear();
    let timing = out.with_file_name("latency.json");
    sampleid_fsio::atomic_write(&timing, serde_json::to_string_pretty(&per_query)?.as_bytes())
        .with_context(|| format!("cannot write {}", timing.display()))?;
    eprintln!(
        "answered {} queries against {} songs ({:.2} h, {}): median {:.0} ms, p99 {:.0} ms per query \
         (decode + fingerprint + search + re-rank); indexing took {:.0} s",
        latency.len(),
        lib.len(),
        lib.stats()?.hours,
        db.display(),
        crate::stats::percentile(&latency, 0.5) * 1000.0,
        crate::stats::percentile(&latency, 0.99) * 1000.0,
        index_s
    );
    Ok(())
}

/// One system's row of `sampleid bench matching`.
#[derive(Debug, Serialize)]
struct MatchingRow {
    system: String,
    dims: usize,
    queries: usize,
    p_at_1: f64,
    map: f64,
    /// Time per query, for the systems this command runs itself.
    median_ms: Option<f64>,
    build_s: f64,
    index_mb: f64,
}

/// Average precision of a ranking (recording indices) against the relevant set.
fn average_precision(ranked: &[usize], relevant: &std::collections::HashSet<usize>) -> f64 {
    let mut hits = 0.0;
    let mut sum = 0.0;
    for (i, r) in ranked.iter().enumerate() {
        if relevant.contains(r) {
            hits += 1.0;
            sum += hits / (i + 1) as f64;
        }
    }
    if relevant.is_empty() {
        0.0
    } else {
        sum / relevant.len() as f64
    }
}

/// Ranks the recordings for a query's chroma shares.
type Ranker<'a> = dyn Fn(&str, &sampleid_engine::ChromaInput) -> Result<Vec<usize>> + 'a;

/// `sampleid bench matching`.
pub fn matching(args: &BenchMatchingArgs, cfg: &Config, model: Option<&Path>) -> Result<()> {
    use std::collections::{HashMap, HashSet};
    let bench = sampleid_bench::Benchmark::load(&args.bench)?;
    let library = crate::cmd::open_library(&args.db, cfg, model)?;
    let engine = library.engine()?.clone();
    let shingles_t = Instant::now();
    library.ensure_shingles()?;
    let shingles_s = shingles_t.elapsed().as_secs_f64();
    let lib = library.read();
    let stored_shingles = lib.shingle_count();
    let songs: Vec<_> = lib.songs().iter().filter(|s| s.chroma_frames > 0).cloned().collect();
    anyhow::ensure!(
        !songs.is_empty(),
        "{} holds no songs with chroma; index refs/ first",
        args.db.display()
    );
    let stem = |p: &str| {
        Path::new(p)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(p)
            .to_string()
    };
    let by_id: HashMap<String, usize> = songs.iter().enumerate().map(|(i, s)| (stem(&s.path), i)).collect();
    let recordings: Vec<Vec<[u8; 12]>> = songs.iter().map(|s| lib.chroma(s)).collect();
    drop(lib);
    let rate = cfg.engine.chroma.frame_rate();
    // Positive queries long enough for one shingle, whose references are all indexed.
    let mut queries = Vec::new();
    for q in &bench.queries {
        if q.negative || q.length_s + 1e-9 < args.shingle_length as f64 || q.targets.is_empty() {
            continue;
        }
        let relevant: Option<HashSet<usize>> = q.targets.iter().map(|t| by_id.get(&t.reference).copied()).collect();
        let Some(relevant) = relevant else { continue };
        let input = engine.chroma(&Source::file(args.bench.join(&q.path)), "match")?;
        queries.push((q.id.clone(), input, relevant));
    }
    anyhow::ensure!(
        !queries.is_empty(),
        "no query of the benchmark is {} s or longer",
        args.shingle_length
    );
    tracing::info!("{} queries against {} recordings", queries.len(), recordings.len());
    let mut rows = Vec::new();
    let mut score =
        |system: String, dims: usize, build_s: f64, index_mb: f64, timed: bool, rank: &Ranker| -> Result<()> {
            let (mut p1, mut ap, mut ms) = (0.0, 0.0, Vec::new());
            for (id, input, relevant) in &queries {
                let t = Instant::now();
                let ranked = rank(id, input)?;
                ms.push(t.elapsed().as_secs_f64() * 1e3);
                p1 += ranked.first().is_some_and(|r| relevant.contains(r)) as u8 as f64;
                ap += average_precision(&ranked, relevant);
            }
            let n = queries.len() as f64;
            rows.push(MatchingRow {
                system,
                dims,
                queries: queries.len(),
                p_at_1: 100.0 * p1 / n,
                map: 100.0 * ap / n,
                median_ms: timed.then(|| crate::stats::median(&ms)),
                build_s,
                index_mb,
            });
            Ok(())
        };
    let dtw_cfg = sampleid_matching::MatchConfig {
        max_matches: usize::MAX,
        hits_per_recording: 1,
        max_cost: f64::INFINITY,
        ..cfg.engine.matching.clone()
    };
    let dedup = |ids: Vec<usize>| {
        let mut seen = HashSet::new();
        ids.into_iter().filter(|r| seen.insert(*r)).collect::<Vec<_>>()
    };
    // Other systems' answers (`sampleid query --json` lines, e.g. a `bench run`'s
    // answers.jsonl) on the same queries, ranked by their answer order.
    for file in &args.results {
        let answers = sampleid_bench::read_results(file)?;
        score(format!("answers {}", file.display()), 0, 0.0, 0.0, false, &|id, _| {
            let listed = answers.get(id).map(|m| m.as_slice()).unwrap_or_default();
            Ok(dedup(
                listed
                    .iter()
                    .filter_map(|m| by_id.get(&stem(&m.reference)).copied())
                    .collect(),
            ))
        })?;
    }
    score("chroma DTW, every song".into(), 0, 0.0, 0.0, true, &|_, q| {
        let found = sampleid_matching::match_query(&q.chroma, &recordings, rate, &dtw_cfg)?;
        Ok(dedup(found.iter().map(|m| m.recording).collect()))
    })?;
    // What `sampleid match` does: the library's stored shingles shortlist
    // `[shingles] candidates` songs, subsequence DTW ranks them.
    let stored_mb = stored_shingles as f64 * engine.shingle_model().dim() as f64 * 4.0 / 1e6;
    let by_song: HashMap<i64, usize> = songs.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    score(
        format!(
            "match: stored shingles → {} songs → DTW",
            cfg.engine.shingles.candidates
        ),
        engine.shingle_model().dim(),
        shingles_s,
        stored_mb,
        true,
        &|_, q| {
            let p = library.passages_of(q.clone())?;
            Ok(dedup(
                p.matches
                    .iter()
                    .filter_map(|m| by_song.get(&m.song_id).copied())
                    .collect(),
            ))
        },
    )?;
    score(
        "stored shingles alone".into(),
        engine.shingle_model().dim(),
        shingles_s,
        stored_mb,
        true,
        &|_, q| {
            let hits = library.shingle_candidates(&q.chroma, usize::MAX)?.unwrap_or_default();
            Ok(hits
                .iter()
                .filter_map(|h| by_song.get(&(h.recording as i64)).copied())
                .collect())
        },
    )?;
    for &dims in &args.dims {
        for hnsw in [false, true] {
            let scfg = sampleid_matching::ShingleConfig {
                length: args.shingle_length,
                dims,
                hnsw,
                k: 100,
                ..Default::default()
            };
            let t = Instant::now();
            let ix = sampleid_matching::ShingleIndex::build(&recordings, &scfg)?;
            let build_s = t.elapsed().as_secs_f64();
            let mb = ix.vector_bytes() as f64 / 1e6;
            let d = if dims == 0 { args.shingle_length * 12 } else { dims };
            score(
                format!("shingles {}", if hnsw { "HNSW" } else { "exact" }),
                d,
                build_s,
                mb,
                true,
                &|_, q| Ok(ix.search(&q.chroma, rate)?.iter().map(|h| h.recording).collect()),
            )?;
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        println!(
            "{} queries (≥ {} s) against {} recordings",
            queries.len(),
            args.shingle_length,
            recordings.len()
        );
        println!("| system | dims | P@1 % | MAP % | median ms/query | build s | vectors MB |");
        println!("|---|--:|--:|--:|--:|--:|--:|");
        for r in &rows {
            println!(
                "| {} | {} | {:.1} | {:.1} | {} | {:.2} | {:.1} |",
                r.system,
                r.dims,
                r.p_at_1,
                r.map,
                r.median_ms.map(|m| format!("{m:.2}")).unwrap_or_else(|| "–".into()),
                r.build_s,
                r.index_mb
            );
        }
    }
    Ok(())
}
