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

pub fn run(args: &BenchRunArgs) -> Result<()> {
    let bench = sampleid_bench::Benchmark::load(&args.bench)?;
    let results = sampleid_bench::read_results(&args.results)?;
    let system = args.system.clone().unwrap_or_else(|| {
        args.results
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "system".into())
    });
    let scores = sampleid_bench::score(&bench, &results);
    let summary = sampleid_bench::report::Summary {
        system: &system,
        benchmark: args.bench.display().to_string(),
        results: args.results.display().to_string(),
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
