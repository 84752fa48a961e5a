//! `sampleid match` (audio matching against a library's stored chroma) and
//! `sampleid align` (the warping path between two recordings).

use std::path::Path;

use anyhow::{Context, Result};
use sampleid_audio::AudioStream;
use sampleid_features::{ChromaStream, quantise_shares};
use sampleid_index::Library;
use serde::Serialize;

use crate::cli::{AlignArgs, BenchMatchingArgs, MatchArgs};
use crate::config::Config;

/// A file's chroma shares (10 Hz, as a library stores them) and its duration.
pub fn chroma_of_file(path: &Path, cfg: &Config) -> Result<(Vec<[u8; 12]>, f64)> {
    let stream = AudioStream::open(path, &cfg.audio)?;
    chroma_of_stream(stream, &path.display().to_string(), cfg)
}

/// [`chroma_of_file`] of an open stream (an upload, say); `name` is for errors.
pub fn chroma_of_stream(mut stream: AudioStream, name: &str, cfg: &Config) -> Result<(Vec<[u8; 12]>, f64)> {
    let mut chroma = ChromaStream::new(&cfg.chroma)?;
    let silence = chroma.silence_energy();
    let mut out = Vec::new();
    while let Some(block) = stream.next_block()? {
        chroma.push(block, &mut |e| out.push(quantise_shares(e, silence)));
    }
    chroma.finish(&mut |e| out.push(quantise_shares(e, silence)));
    if out.iter().all(|f| f.iter().all(|&v| v == 0)) {
        return Err(crate::engine::Silent {
            name: name.to_string(),
            what: "match",
        }
        .into());
    }
    Ok((out, stream.position_s()))
}

/// One passage in `sampleid match --json`.
#[derive(Debug, Serialize)]
pub struct Passage {
    /// The song's path, as indexed.
    pub reference: String,
    /// Where the passage starts and ends in the song (s).
    pub start: f64,
    pub end: f64,
    /// Mean alignment cost (lower is closer).
    pub cost: f64,
    /// Song tempo / query tempo of the passage.
    pub tempo_factor: f64,
    /// Key change from the song to the query (semitones).
    pub pitch_shift: i32,
}

/// Chroma shares at 10 Hz, as a library stores them.
pub type Chroma = Vec<[u8; 12]>;

/// The songs of a library that can be matched (those with stored chroma) and
/// their chroma, checking the library's chroma rate against `cfg`.
pub fn matchable(lib: &Library, cfg: &Config) -> Result<(Vec<sampleid_index::Song>, Vec<Chroma>)> {
    let rate = cfg.chroma.frame_rate();
    if let Some(r) = lib.chroma_rate()
        && (r - rate).abs() > 1e-9
    {
        anyhow::bail!(
            "the library {} stores chroma at {r} frames/s but [chroma] gives {rate}; use the configuration it was indexed with",
            lib.dir().display()
        );
    }
    let songs: Vec<_> = lib.songs().iter().filter(|s| s.chroma_frames > 0).cloned().collect();
    let missing = lib.songs().len() - songs.len();
    if missing > 0 {
        tracing::warn!(
            "{missing} songs were indexed before chroma was stored and cannot be matched; \
             delete and index them again to include them"
        );
    }
    let recordings = songs.iter().map(|s| lib.chroma(s)).collect();
    Ok((songs, recordings))
}

/// The passages of the library's songs that a query's chroma matches, best first.
pub fn passages(
    query: &[[u8; 12]],
    songs: &[sampleid_index::Song],
    recordings: &[Vec<[u8; 12]>],
    cfg: &Config,
) -> Result<Vec<Passage>> {
    let found = sampleid_matching::match_query(query, recordings, cfg.chroma.frame_rate(), &cfg.matching)?;
    Ok(found
        .iter()
        .map(|m| Passage {
            reference: songs[m.recording].path.clone(),
            start: m.start_s,
            end: m.end_s,
            cost: m.cost,
            tempo_factor: m.tempo_factor,
            pitch_shift: m.pitch_shift,
        })
        .collect())
}

/// `sampleid match`; returns the number of files that failed.
pub fn run_match(args: &MatchArgs, cfg: &Config) -> Result<usize> {
    let lib = Library::open(&args.db).with_context(|| format!("cannot open the library {}", args.db.display()))?;
    let (songs, recordings) = matchable(&lib, cfg)?;
    let mut failed = 0;
    for file in &args.files {
        let name = file.display().to_string();
        let result = chroma_of_file(file, cfg).and_then(|(q, _)| passages(&q, &songs, &recordings, cfg));
        match result {
            Ok(passages) => {
                if args.json {
                    println!("{}", serde_json::json!({"query": name, "matches": passages}));
                } else {
                    println!("{name}");
                    if passages.is_empty() {
                        println!("  no passage matches");
                    }
                    for (i, p) in passages.iter().enumerate() {
                        println!(
                            "  {}. {}  {:.1}–{:.1} s  cost {:.3}  tempo ×{:.2}  key {:+} st",
                            i + 1,
                            p.reference,
                            p.start,
                            p.end,
                            p.cost,
                            p.tempo_factor,
                            p.pitch_shift
                        );
                    }
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

/// `sampleid align`.
pub fn run_align(args: &AlignArgs, cfg: &Config) -> Result<()> {
    let (a, _) = chroma_of_file(&args.a, cfg).with_context(|| format!("cannot read {}", args.a.display()))?;
    let (b, _) = chroma_of_file(&args.b, cfg).with_context(|| format!("cannot read {}", args.b.display()))?;
    let al = sampleid_matching::align(&a, &b, cfg.chroma.frame_rate(), &cfg.align)?;
    let path_s = al.path_s();
    if let Some(out) = &args.plot {
        let m = &al.matrix;
        sampleid_report::cost_matrix(
            out,
            &format!(
                "{} vs {}",
                args.a.file_name().unwrap_or_default().to_string_lossy(),
                args.b.file_name().unwrap_or_default().to_string_lossy()
            ),
            m.rows(),
            m.cols(),
            m.values(),
            al.rate,
            &al.path,
            "A",
            "B",
        )
        .with_context(|| format!("cannot draw {}", out.display()))?;
    }
    if args.json {
        let path: Vec<[f64; 2]> = path_s.iter().map(|&(x, y)| [x, y]).collect();
        println!(
            "{}",
            serde_json::json!({
                "a": args.a.display().to_string(), "b": args.b.display().to_string(),
                "rate": al.rate, "cost": al.cost, "mean_cost": al.mean_cost(), "path": path,
            })
        );
    } else {
        println!(
            "{} ↔ {}: {} path steps at {} features/s, mean cost {:.3}",
            args.a.display(),
            args.b.display(),
            al.path.len(),
            al.rate,
            al.mean_cost()
        );
        // About ten evenly spaced correspondences.
        let every = (path_s.len() / 10).max(1);
        for (x, y) in path_s.iter().step_by(every).chain(path_s.last()) {
            println!("  A {x:7.1} s  ↔  B {y:7.1} s");
        }
        if let Some(out) = &args.plot {
            println!("plot: {}", out.display());
        }
    }
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
type Ranker<'a> = dyn Fn(&str, &[[u8; 12]]) -> Result<Vec<usize>> + 'a;

/// `sampleid bench matching`.
pub fn bench(args: &BenchMatchingArgs, cfg: &Config) -> Result<()> {
    use std::collections::{HashMap, HashSet};
    use std::time::Instant;
    let bench = sampleid_bench::Benchmark::load(&args.bench)?;
    let lib = Library::open(&args.db).with_context(|| format!("cannot open the library {}", args.db.display()))?;
    let songs: Vec<_> = lib.songs().iter().filter(|s| s.chroma_frames > 0).collect();
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
    let rate = cfg.chroma.frame_rate();
    // Positive queries long enough for one shingle, whose references are all indexed.
    let mut queries = Vec::new();
    for q in &bench.queries {
        if q.negative || q.length_s + 1e-9 < args.shingle_length as f64 || q.targets.is_empty() {
            continue;
        }
        let relevant: Option<HashSet<usize>> = q.targets.iter().map(|t| by_id.get(&t.reference).copied()).collect();
        let Some(relevant) = relevant else { continue };
        let (shares, _) = chroma_of_file(&args.bench.join(&q.path), cfg)?;
        queries.push((q.id.clone(), shares, relevant));
    }
    anyhow::ensure!(
        !queries.is_empty(),
        "no query of the benchmark is {} s or longer",
        args.shingle_length
    );
    tracing::info!("{} queries against {} recordings", queries.len(), recordings.len());
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut rows = Vec::new();
    let mut score =
        |system: String, dims: usize, build_s: f64, index_mb: f64, timed: bool, rank: &Ranker| -> Result<()> {
            let (mut p1, mut ap, mut ms) = (0.0, 0.0, Vec::new());
            for (id, shares, relevant) in &queries {
                let t = Instant::now();
                let ranked = rank(id, shares)?;
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
                median_ms: timed.then(|| median(ms)),
                build_s,
                index_mb,
            });
            Ok(())
        };
    let dtw_cfg = sampleid_matching::MatchConfig {
        max_matches: usize::MAX,
        hits_per_recording: 1,
        max_cost: f64::INFINITY,
        ..cfg.matching.clone()
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
    score("chroma DTW (match)".into(), 0, 0.0, 0.0, true, &|_, q| {
        let found = sampleid_matching::match_query(q, &recordings, rate, &dtw_cfg)?;
        Ok(dedup(found.iter().map(|m| m.recording).collect()))
    })?;
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
                &|_, q| Ok(ix.search(q, rate)?.iter().map(|h| h.recording).collect()),
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
