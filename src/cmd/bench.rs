//! `sampleid bench frontend`: throughput of decode → resample → log-mel →
//! normalised segments on real files, per thread count, and peak memory.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rayon::prelude::*;
use sampleid_audio::AudioStream;
use sampleid_features::SegmentStream;
use serde::Serialize;

use crate::cli::{BenchFrontendArgs, BenchMakeArgs, BenchRunArgs, ProtocolArg};
use crate::config::Config;

#[derive(Debug, Serialize)]
struct ThreadResult {
    threads: usize,
    /// Audio seconds processed per wall-clock second, one value per run.
    realtime_factors: Vec<f64>,
    median_realtime: f64,
    /// Share of CPU time spent decoding + resampling (the rest is the front end).
    decode_share: f64,
}

#[derive(Debug, Serialize)]
struct BenchReport {
    files: usize,
    audio_s: f64,
    segments: usize,
    results: Vec<ThreadResult>,
    /// Peak resident set size of this process (VmHWM), MiB.
    peak_rss_mib: Option<f64>,
}

struct FileRun {
    audio_s: f64,
    segments: usize,
    decode: Duration,
    frontend: Duration,
}

fn process(path: &Path, cfg: &Config) -> Result<FileRun> {
    let mut stream = AudioStream::open(path, &cfg.audio)?;
    let mut seg = SegmentStream::new(&cfg.frontend)?;
    let mut n = 0usize;
    let (mut decode, mut frontend) = (Duration::ZERO, Duration::ZERO);
    loop {
        let t0 = Instant::now();
        let block = stream.next_block()?;
        let t1 = Instant::now();
        decode += t1 - t0;
        match block {
            Some(b) => seg.push(b, &mut |s| {
                n += 1;
                std::hint::black_box(&s);
            }),
            None => break,
        }
        frontend += t1.elapsed();
    }
    let t = Instant::now();
    seg.finish(&mut |_| n += 1);
    frontend += t.elapsed();
    Ok(FileRun {
        audio_s: stream.position_s(),
        segments: n,
        decode,
        frontend,
    })
}

/// Peak resident memory of this process in MiB (Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub fn frontend(args: &BenchFrontendArgs, cfg: &Config) -> Result<()> {
    let files: Vec<PathBuf> = args.files.clone();
    // A first pass validates the inputs and warms the page cache.
    let mut audio_s = 0.0;
    let mut segments = 0;
    for f in &files {
        let r = process(f, cfg)?;
        audio_s += r.audio_s;
        segments += r.segments;
    }
    let mut results = Vec::new();
    for &threads in &args.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .context("cannot build a thread pool")?;
        let mut factors = Vec::new();
        let (mut dec, mut fe) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..args.repeat.max(1) {
            let start = Instant::now();
            let runs: Vec<FileRun> =
                pool.install(|| files.par_iter().map(|f| process(f, cfg)).collect::<Result<_>>())?;
            let wall = start.elapsed().as_secs_f64();
            factors.push(audio_s / wall);
            for r in &runs {
                dec += r.decode;
                fe += r.frontend;
            }
        }
        let total = (dec + fe).as_secs_f64().max(1e-12);
        results.push(ThreadResult {
            threads,
            median_realtime: median(&factors),
            realtime_factors: factors,
            decode_share: dec.as_secs_f64() / total,
        });
    }
    let report = BenchReport {
        files: files.len(),
        audio_s,
        segments,
        results,
        peak_rss_mib: peak_rss_mib(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "frontend: {} files, {:.1} min of audio, {} segments (decode → 16 kHz → log-mel → normalised segments)",
        report.files,
        report.audio_s / 60.0,
        report.segments
    );
    println!(
        "{:>8} {:>16} {:>22} {:>14}",
        "threads", "median ×realtime", "runs", "decode share"
    );
    for r in &report.results {
        let runs: Vec<String> = r.realtime_factors.iter().map(|f| format!("{f:.0}")).collect();
        println!(
            "{:>8} {:>16.0} {:>22} {:>13.0}%",
            r.threads,
            r.median_realtime,
            runs.join(" "),
            100.0 * r.decode_share
        );
    }
    if let (Some(a), Some(b)) = (report.results.first(), report.results.last())
        && report.results.len() > 1
    {
        println!(
            "scaling {}→{} threads: ×{:.2}",
            a.threads,
            b.threads,
            b.median_realtime / a.median_realtime
        );
    }
    if let Some(rss) = report.peak_rss_mib {
        println!("peak RSS: {rss:.1} MiB");
    }
    Ok(())
}

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
    opts.references = args.references;
    opts.negatives = args.negatives;
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
        "{}: {} references (refs/), {} negatives, {} queries ({} audio-id, {} sample-id)",
        args.out.display(),
        bench.references.len(),
        bench.negatives.len(),
        bench.queries.len(),
        count(sampleid_bench::Protocol::AudioId),
        count(sampleid_bench::Protocol::SampleId)
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
            let encoder = crate::model::encoder(model_path)?;
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
    let results = sampleid_bench::read_results(&results_path)?;
    let system = args.system.clone().unwrap_or(default_system);
    let scores = sampleid_bench::score(&bench, &results);
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
    let files = sampleid_bench::report::write(&out, &summary)?;
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

/// sampleid's own answers to a benchmark: refs/ indexed into a library,
/// every query answered by the two-stage search, JSON lines in the
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

    let encoder = crate::model::encoder(model)?;
    let db = args.db.clone().unwrap_or_else(|| {
        args.bench.join(format!(
            "db-{}-{}",
            encoder.info().version,
            format!("{:?}", args.ann).to_lowercase()
        ))
    });
    let index_args = crate::cli::IndexArgs {
        db: db.clone(),
        paths: vec![args.bench.join("refs")],
        ann: Some(args.ann),
        jobs: None,
        json: false,
    };
    let started = Instant::now();
    let failed = crate::cmd::library::index_with(&index_args, cfg, model, quiet, false)?;
    if failed > 0 {
        anyhow::bail!("{failed} reference(s) could not be indexed");
    }
    let index_s = started.elapsed().as_secs_f64();
    let (lib, engine) = crate::cmd::query::open(&db, cfg, model)?;
    let bar = crate::progress::files_bar(bench.queries.len() as u64, quiet);
    let tmp = out.with_extension("part");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
    );
    let mut latency = Vec::new();
    let mut per_query = Vec::new();
    for q in &bench.queries {
        let t0 = Instant::now();
        let mut line = crate::cmd::query::answer(&lib, &engine, &args.bench.join(&q.path), !args.no_rerank, &cfg.query)
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
    file.flush()?;
    drop(file);
    std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    bar.finish_and_clear();
    let timing = out.with_file_name("latency.json");
    std::fs::write(&timing, serde_json::to_string_pretty(&per_query)?)
        .with_context(|| format!("cannot write {}", timing.display()))?;
    latency.sort_by(f64::total_cmp);
    let pct = |p: f64| latency[((latency.len() as f64 - 1.0) * p).round() as usize] * 1000.0;
    eprintln!(
        "answered {} queries against {} songs ({:.2} h, {}): median {:.0} ms, p99 {:.0} ms per query \
         (decode + fingerprint + search + re-rank); indexing took {:.0} s",
        latency.len(),
        lib.songs().len(),
        lib.stats()?.hours,
        db.display(),
        pct(0.5),
        pct(0.99),
        index_s
    );
    Ok(())
}

/// Encoder speed at one thread count.
#[derive(Debug, Serialize)]
struct EncoderSpeed {
    threads: usize,
    /// Median over the runs.
    segments_per_s: f64,
    ms_per_segment: f64,
    /// Audio seconds fingerprinted per second (each segment advances one hop).
    realtime: f64,
    runs_s: Vec<f64>,
}

/// `sampleid bench encoder`: inference speed of the encoder in use.
pub fn encoder(args: &crate::cli::BenchEncoderArgs, cfg: &Config, model_path: Option<&Path>) -> Result<()> {
    let encoder = crate::model::encoder(model_path)?;
    let fe = &cfg.frontend;
    let audio = match &args.file {
        Some(f) => {
            sampleid_audio::decode_file(f, &cfg.audio)
                .with_context(|| f.display().to_string())?
                .samples
        }
        None => {
            // A chord whose root sweeps over two octaves, with a beat: real spectral structure.
            let sr = fe.sample_rate as f64;
            let n = (args.segments as f64 * 0.512 * sr) as usize + 70_000;
            (0..n)
                .map(|i| {
                    let t = i as f64 / sr;
                    let f0 = 110.0 * 2f64.powf(2.0 * t / (n as f64 / sr));
                    let chord: f64 = [1.0, 1.25, 1.5]
                        .iter()
                        .map(|r| (2.0 * std::f64::consts::PI * f0 * r * t).sin())
                        .sum();
                    let beat = if (t * 2.0).fract() < 0.05 { 0.5 } else { 0.0 };
                    (0.2 * chord + beat * (i as f64 * 12.9898).sin()) as f32
                })
                .collect()
        }
    };
    let mut segs: Vec<Vec<f32>> = sampleid_features::segments(&audio, fe)?
        .into_iter()
        .map(|s| s.data)
        .collect();
    anyhow::ensure!(!segs.is_empty(), "the input gives no segments");
    let have = segs.len();
    while segs.len() < args.segments.max(1) {
        segs.push(segs[segs.len() % have].clone());
    }
    segs.truncate(args.segments.max(1));
    let refs: Vec<&[f32]> = segs.iter().map(|s| s.as_slice()).collect();
    let hop_s = crate::cmd::fingerprint::hop_s(cfg);
    let mut results = Vec::new();
    for &threads in &args.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .context("cannot build a thread pool")?;
        pool.install(|| encoder.embed(&refs[..refs.len().min(16)]))?; // warm-up
        let mut runs = Vec::new();
        for _ in 0..args.repeat.max(1) {
            let start = Instant::now();
            pool.install(|| encoder.embed(&refs))?;
            runs.push(start.elapsed().as_secs_f64());
        }
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let sps = refs.len() as f64 / median;
        results.push(EncoderSpeed {
            threads,
            segments_per_s: sps,
            ms_per_segment: 1000.0 / sps,
            realtime: sps * hop_s,
            runs_s: runs,
        });
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "model": encoder.info().version,
                "parameters": encoder.parameters(),
                "segments": refs.len(),
                "batch_size": encoder.batch_size,
                "results": results,
            })
        );
    } else {
        println!(
            "encoder {} ({} parameters), {} segments per run, batch {}",
            encoder.info().version,
            encoder.parameters(),
            refs.len(),
            encoder.batch_size
        );
        println!("| threads | segments/s | ms/segment | × realtime |");
        println!("|--:|--:|--:|--:|");
        for r in &results {
            println!(
                "| {} | {:.0} | {:.2} | {:.0} |",
                r.threads, r.segments_per_s, r.ms_per_segment, r.realtime
            );
        }
    }
    Ok(())
}
