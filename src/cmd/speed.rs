//! Speed benchmarks on the user's own files, in the runtime binary:
//! `sampleid bench frontend` (decode → resample → log-mel → normalised
//! segments, per thread count, and peak memory) and `sampleid bench encoder`
//! (inference speed of the encoder in use).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rayon::prelude::*;
use sampleid_audio::AudioStream;
use sampleid_features::SegmentStream;
use serde::Serialize;

use crate::cli::BenchFrontendArgs;
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
    let mut stream = AudioStream::open(path, &cfg.engine.audio)?;
    let mut seg = SegmentStream::new(&cfg.engine.frontend)?;
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
            median_realtime: crate::stats::median(&factors),
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
    let encoder = sampleid_engine::models::load_encoder(&sampleid_engine::ModelSource::from_option(model_path))?;
    let fe = &cfg.engine.frontend;
    let audio = match &args.file {
        Some(f) => {
            sampleid_audio::decode_file(f, &cfg.engine.audio)
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
    let hop_s = cfg.engine.hop_s();
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
        let median = crate::stats::median(&runs);
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

/// One side's figures in `sampleid bench peaks`.
#[derive(Debug, Serialize)]
struct PeakSpeed {
    side: &'static str,
    /// Per second of audio.
    peaks_per_s: f64,
    pairs_per_s: f64,
    quads_per_s: f64,
    /// Audio seconds processed per wall-clock second (peaks + pairs + quads, one thread; median of runs).
    realtime: f64,
    /// The same with the files' decoding (to 16 kHz mono) added.
    realtime_with_decoding: f64,
    runs_s: Vec<f64>,
}

/// `sampleid bench peaks`: density and speed of the landmark front end
/// (sampleid-peaks, sampleid-landmarks) for the reference and query settings.
pub fn peaks(args: &crate::cli::BenchPeaksArgs, cfg: &Config) -> Result<()> {
    use sampleid_landmarks::{PairConfig, QuadConfig, pairs, quads};
    use sampleid_peaks::PeakConfig;
    // Decoding is timed on its own (median of the runs), so that the
    // front end's speed can be given with and without it.
    let mut audio = Vec::new();
    let mut decode_runs = Vec::new();
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        audio.clear();
        for f in &args.files {
            audio.push(
                sampleid_audio::decode_file(f, &cfg.engine.audio)
                    .with_context(|| f.display().to_string())?
                    .samples,
            );
        }
        decode_runs.push(t.elapsed().as_secs_f64());
    }
    let decode_s = crate::stats::median(&decode_runs);
    let seconds: f64 = audio.iter().map(|a| a.len() as f64).sum::<f64>() / cfg.engine.audio.sample_rate as f64;
    anyhow::ensure!(seconds > 0.0, "the inputs hold no audio");
    #[cfg(feature = "lab")]
    if let Some(spec) = &args.survival {
        return survival(&audio, spec, cfg, args.json);
    }
    #[cfg(not(feature = "lab"))]
    anyhow::ensure!(
        args.survival.is_none(),
        "--survival needs the lab build (feature `lab`)"
    );
    let mut results = Vec::new();
    for (side, pcfg, qcfg) in [
        ("reference", PeakConfig::reference(), QuadConfig::reference()),
        ("query", PeakConfig::query(), QuadConfig::query()),
    ] {
        let pcfg = PeakConfig {
            sample_rate: cfg.engine.audio.sample_rate,
            ..pcfg
        };
        let mut runs = Vec::new();
        let mut counts = (0usize, 0usize, 0usize);
        for _ in 0..args.repeat.max(1) {
            let t = Instant::now();
            counts = (0, 0, 0);
            for a in &audio {
                let p = sampleid_peaks::peaks(a, &pcfg)?;
                counts.0 += p.len();
                counts.1 += pairs(&p, &PairConfig::default()).len();
                counts.2 += std::hint::black_box(quads(&p, &qcfg)).len();
            }
            runs.push(t.elapsed().as_secs_f64());
        }
        results.push(PeakSpeed {
            side,
            peaks_per_s: counts.0 as f64 / seconds,
            pairs_per_s: counts.1 as f64 / seconds,
            quads_per_s: counts.2 as f64 / seconds,
            realtime: seconds / crate::stats::median(&runs),
            realtime_with_decoding: seconds / (crate::stats::median(&runs) + decode_s),
            runs_s: runs,
        });
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"files": args.files.len(), "audio_s": seconds,
                "decode_realtime": seconds / decode_s, "results": results})
        );
    } else {
        println!(
            "{} files, {:.1} s of audio, decoded at {:.0}× realtime",
            args.files.len(),
            seconds,
            seconds / decode_s
        );
        println!("| side | peaks/s | pairs/s | quads/s | × realtime (1 thread) | with decoding |");
        println!("|---|--:|--:|--:|--:|--:|");
        for r in &results {
            println!(
                "| {} | {:.1} | {:.1} | {:.1} | {:.0} | {:.0} |",
                r.side, r.peaks_per_s, r.pairs_per_s, r.quads_per_s, r.realtime, r.realtime_with_decoding
            );
        }
    }
    Ok(())
}

/// `sampleid bench peaks --survival KIND:VALUE`: which reference landmarks
/// a transformation leaves in place. A reference quad survives when a query
/// quad of the transformed excerpt lies within the search radius and its
/// root A is where the transformation puts the reference's A (±10 frames,
/// ±3 bins: the benchmark's phase vocoder smears by up to 32 ms); a pair
/// survives when a query pair has its hash (with the search's jitter
/// lookups) at the moved anchor (±10 frames). `[landmarks.search]` of
/// `--config` applies (radius, jitter, query fan-out).
#[cfg(feature = "lab")]
fn survival(audio: &[Vec<f32>], spec: &str, cfg: &Config, json: bool) -> Result<()> {
    use sampleid_landmarks::{LandmarkIndex, PairConfig, PairHash, QuadConfig, pairs, quads};
    use sampleid_peaks::PeakConfig;
    use sampleid_transform::{Synthetic, Transform};
    let (kind, value) = spec
        .split_once(':')
        .with_context(|| format!("--survival {spec}: expected KIND:VALUE"))?;
    let v: f64 = value.parse().with_context(|| format!("--survival {spec}: bad value"))?;
    let (transform, s_t, s_f) = match kind {
        "pitch" => (Transform::PitchShift { semitones: v }, 1.0, 2f64.powf(v / 12.0)),
        "tempo" => (Transform::TimeStretch { rate: v }, 1.0 / v, 1.0),
        "speed" => (Transform::Speed { factor: v }, 1.0 / v, v),
        _ => anyhow::bail!("--survival {spec}: KIND is pitch, tempo or speed"),
    };
    let rate = cfg.engine.audio.sample_rate;
    let search = cfg.engine.landmarks.search.clone();
    let stored = sampleid_landmarks::stored_peak_config();
    let (mut pairs_total, mut pairs_kept, mut quads_total, mut quads_kept, mut excerpts) = (0, 0, 0, 0, 0);
    for a in audio {
        let len = 10 * rate as usize;
        let mut start = 0;
        while start + len <= a.len() {
            let x = &a[start..start + len];
            start += 30 * rate as usize;
            let y = transform.apply(x, rate, &mut Synthetic { sample_rate: rate })?;
            let dense = sampleid_peaks::peaks(x, &stored)?;
            let sparse = sampleid_peaks::peaks(x, &PeakConfig::reference())?;
            let ref_quads = quads(&sparse, &QuadConfig::reference());
            let q_peaks = sampleid_peaks::peaks(&y, &cfg.engine.landmarks.query_peaks)?;
            if dense.is_empty() || q_peaks.is_empty() {
                continue;
            }
            excerpts += 1;
            let mut index = LandmarkIndex::new(PairConfig::default());
            index.insert(1, dense.clone(), &ref_quads);
            // Pairs: every reference pair, looked up among the query's pairs.
            let q_pairs = pairs(
                &q_peaks,
                &PairConfig {
                    fan_out: search.query_fan_out,
                    ..PairConfig::default()
                },
            );
            let mut found = std::collections::HashSet::new();
            let j = search.pair_jitter as i32;
            for h in &q_pairs {
                let (bin, df, dt) = PairHash::unpack(h.hash);
                for db in -j..=j {
                    for ddf in -j..=j {
                        for ddt in -j..=j {
                            let (Some(b), Some(t)) = (bin.checked_add_signed(db), dt.checked_add_signed(ddt)) else {
                                continue;
                            };
                            if b >= 1024 || (df + ddf).abs() > 127 || t >= 1 << 14 {
                                continue;
                            }
                            for p in index.pair_postings(PairHash::pack(b, df + ddf, t)) {
                                if (h.frame as f64 - p.frame as f64 * s_t).abs() <= 10.0 {
                                    found.insert((p.frame, PairHash::pack(b, df + ddf, t)));
                                }
                            }
                        }
                    }
                }
            }
            let ref_pairs = pairs(&dense, &PairConfig::default());
            pairs_total += ref_pairs.len();
            pairs_kept += ref_pairs.iter().filter(|h| found.contains(&(h.frame, h.hash))).count();
            // Quads: every reference quad, looked for among the query's.
            let q_quads = quads(&q_peaks, &cfg.engine.landmarks.query_quads);
            let mut kept = std::collections::HashSet::new();
            for q in &q_quads {
                index.quads_near(q.hash, search.radius, (0.0, f64::INFINITY), &mut |r| {
                    let ok = (q.a.0 as f64 - r.quad.a.0 as f64 * s_t).abs() <= 10.0
                        && (q.a.1 as f64 - r.quad.a.1 as f64 * s_f).abs() <= 3.0;
                    if ok {
                        kept.insert((r.quad.a, r.quad.b, r.quad.hash.map(f32::to_bits)));
                    }
                });
            }
            quads_total += ref_quads.len();
            quads_kept += kept.len();
        }
    }
    let share = |k: usize, n: usize| if n > 0 { 100.0 * k as f64 / n as f64 } else { 0.0 };
    if json {
        println!(
            "{}",
            serde_json::json!({"transform": spec, "excerpts": excerpts,
                "pairs": {"reference": pairs_total, "survived_pct": share(pairs_kept, pairs_total)},
                "quads": {"reference": quads_total, "survived_pct": share(quads_kept, quads_total)}})
        );
    } else {
        println!(
            "{spec}: {excerpts} excerpts of 10 s; pairs survived {:.1} % of {pairs_total}, quads {:.1} % of {quads_total}",
            share(pairs_kept, pairs_total),
            share(quads_kept, quads_total)
        );
    }
    Ok(())
}

/// `sampleid bench landmarks`: the landmark search against a large
/// in-memory index, built from real peaks without the neural indexing.
pub fn landmarks(args: &crate::cli::BenchLandmarksArgs, cfg: &Config) -> Result<()> {
    use sampleid_landmarks::search::search_timed;
    use sampleid_landmarks::{LandmarkIndex, PairConfig, QuadConfig, QueryLandmarks, quads};
    use sampleid_peaks::{Peak, PeakConfig};
    let lm = &cfg.engine.landmarks;
    let stored = sampleid_landmarks::stored_peak_config();
    let rate = stored.frame_rate();
    // Real peak sets: (dense, sparse, seconds).
    let mut sets = Vec::new();
    let files_key = cache_key(&args.files);
    if let Some(c) = args.cache.as_ref().filter(|c| c.exists()) {
        sets = read_peak_cache(c, files_key).with_context(|| format!("cannot use the cache {}", c.display()))?;
    }
    let cached = !sets.is_empty();
    let bar = crate::progress::files_bar(if cached { 0 } else { args.files.len() as u64 }, false);
    for f in args.files.iter().filter(|_| !cached) {
        bar.inc(1);
        let audio = match sampleid_audio::decode_file(f, &cfg.engine.audio) {
            Ok(d) => d.samples,
            Err(e) => {
                bar.suspend(|| eprintln!("skipped {}: {e}", f.display()));
                continue;
            }
        };
        let dense = sampleid_peaks::peaks(&audio, &stored)?;
        let sparse = sampleid_peaks::peaks(&audio, &PeakConfig::reference())?;
        sets.push((dense, sparse, audio.len() as f64 / cfg.engine.audio.sample_rate as f64));
    }
    bar.finish_and_clear();
    anyhow::ensure!(!sets.is_empty(), "no reference could be decoded");
    if let Some(c) = args.cache.as_ref().filter(|c| !c.exists()) {
        write_peak_cache(c, files_key, &sets).with_context(|| format!("cannot write the cache {}", c.display()))?;
    }
    let real_s: f64 = sets.iter().map(|s| s.2).sum();
    // Copies scaled in time and frequency until --hours: factor pairs cycle
    // through ±3–12 %, so no copy repeats another's geometry.
    let scale = |p: &[Peak], st: f64, sf: f64| -> Vec<Peak> {
        p.iter()
            .map(|k| Peak {
                frame: (k.frame as f64 * st).round() as u32,
                bin: (k.bin as f64 * sf).round() as u32,
                magnitude: k.magnitude,
            })
            .filter(|k| k.bin < 513)
            .collect()
    };
    let t0 = Instant::now();
    let mut index = LandmarkIndex::new(PairConfig::default());
    let (mut seconds, mut song, mut copy, mut sealed) = (0.0, 0u32, 0usize, false);
    let factors = [1.0, 1.03, 0.97, 1.06, 0.94, 1.09, 0.91, 1.12, 0.89, 1.05, 0.95];
    'fill: loop {
        for (dense, sparse, s) in &sets {
            let (st, sf) = (factors[copy % factors.len()], factors[(copy * 7 + 3) % factors.len()]);
            let (st, sf) = if copy == 0 { (1.0, 1.0) } else { (st, sf) };
            let d = scale(dense, st, sf);
            let q = quads(&scale(sparse, st, sf), &QuadConfig::reference());
            song += 1;
            if !sealed && seconds >= (args.hours - args.pending_hours) * 3600.0 {
                index.seal();
                sealed = true;
            }
            index.insert(song, d, &q);
            seconds += s * st;
            if seconds >= args.hours * 3600.0 {
                break 'fill;
            }
        }
        copy += 1;
    }
    if args.pending_hours <= 0.0 {
        index.seal();
    }
    let build_s = t0.elapsed().as_secs_f64();
    let (songs, peaks, pairs, n_quads) = index.sizes();
    // Queries.
    let mut queries = Vec::new();
    for f in &args.queries {
        let audio = sampleid_audio::decode_file(f, &cfg.engine.audio)
            .with_context(|| f.display().to_string())?
            .samples;
        let p = sampleid_peaks::peaks(&audio, &lm.query_peaks)?;
        let frames = (audio.len() as f64 / cfg.engine.audio.sample_rate as f64 * rate).ceil() as u32 + 1;
        queries.push(QueryLandmarks::new(
            p,
            frames,
            lm.query_peaks.bins() as u32,
            &PairConfig::default(),
            &lm.query_quads,
            lm.search.query_fan_out,
        ));
    }
    // Query extraction is not timed: make the (lazy) quads now.
    for q in &queries {
        std::hint::black_box(q.quads());
    }
    let mut per_query: Vec<Vec<f64>> = vec![Vec::new(); queries.len()];
    let mut parts = [Vec::new(), Vec::new(), Vec::new()];
    let mut hits = Vec::new();
    let mut found = 0;
    for _ in 0..args.repeat.max(1) {
        found = 0;
        for (i, q) in queries.iter().enumerate() {
            let t = Instant::now();
            let (m, times) = std::hint::black_box(search_timed(&index, q, &lm.search));
            per_query[i].push(t.elapsed().as_secs_f64());
            parts[0].push(times.pairs);
            parts[1].push(times.quads);
            parts[2].push(times.verify);
            hits.push(times.quad_hits as f64);
            found += usize::from(!m.is_empty());
        }
    }
    let part_ms = parts.map(|p| crate::stats::median(&p) * 1000.0);
    let medians: Vec<f64> = per_query.iter().map(|v| crate::stats::median(v)).collect();
    let median_ms = crate::stats::median(&medians) * 1000.0;
    let p90_ms = crate::stats::percentile(&medians, 0.9) * 1000.0;
    let out = serde_json::json!({
        "hours": seconds / 3600.0, "real_hours": real_s / 3600.0, "songs": songs,
        "pending_quads": index.pending_quads(), "peaks": peaks, "pairs": pairs, "quads": n_quads, "build_s": build_s,
        "queries": queries.len(), "answered": found,
        "search_median_ms": median_ms, "search_p90_ms": p90_ms,
        "quad_hits_median": crate::stats::median(&hits),
        "pairs_median_ms": part_ms[0], "quads_median_ms": part_ms[1], "verify_median_ms": part_ms[2],
        "peak_rss_mib": peak_rss_mib(),
    });
    if args.json {
        println!("{out}");
    } else {
        println!(
            "{:.1} h of landmarks ({:.1} h real, the rest scaled copies): {songs} songs, {peaks} peaks, {pairs} pairs, {n_quads} quads, built in {build_s:.1} s",
            seconds / 3600.0,
            real_s / 3600.0
        );
        println!(
            "{} queries ({found} answered): search median {median_ms:.1} ms, p90 {p90_ms:.1} ms per query \
             (medians of the parts: pairs {:.1} ms, quads {:.1} ms with {:.0} hits, verification {:.1} ms); peak RSS {:.0} MiB",
            queries.len(),
            part_ms[0],
            part_ms[1],
            crate::stats::median(&hits),
            part_ms[2],
            peak_rss_mib().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

/// A key of the reference file list (FNV-1a over the paths), so that a
/// cache made from other files is refused.
fn cache_key(files: &[PathBuf]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in files {
        for b in f.to_string_lossy().bytes().chain([0]) {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// The peak cache of `bench landmarks`: the file list's key (u64), then per
/// set, seconds (f64), the dense and the sparse peaks, each as a count (u64)
/// and codec rows.
fn write_peak_cache(
    path: &Path,
    key: u64,
    sets: &[(Vec<sampleid_peaks::Peak>, Vec<sampleid_peaks::Peak>, f64)],
) -> Result<()> {
    use sampleid_landmarks::codec::encode_peaks;
    let mut out = key.to_le_bytes().to_vec();
    for (dense, sparse, s) in sets {
        out.extend_from_slice(&s.to_le_bytes());
        for p in [dense, sparse] {
            out.extend_from_slice(&(p.len() as u64).to_le_bytes());
            out.extend(encode_peaks(p));
        }
    }
    sampleid_fsio::atomic_write(path, &out)?;
    Ok(())
}

type PeakSets = Vec<(Vec<sampleid_peaks::Peak>, Vec<sampleid_peaks::Peak>, f64)>;

fn read_peak_cache(path: &Path, key: u64) -> Result<PeakSets> {
    use sampleid_landmarks::codec::{PEAK_BYTES, decode_peaks};
    let b = std::fs::read(path)?;
    let mut at = 0;
    let take = |at: &mut usize, n: usize| -> Result<&[u8]> {
        anyhow::ensure!(*at + n <= b.len(), "truncated");
        *at += n;
        Ok(&b[*at - n..*at])
    };
    let stored = u64::from_le_bytes(take(&mut at, 8)?.try_into()?);
    anyhow::ensure!(
        stored == key,
        "it was made from other reference files; delete it or pass the same files"
    );
    let mut sets = Vec::new();
    while at < b.len() {
        let s = f64::from_le_bytes(take(&mut at, 8)?.try_into()?);
        let mut two = Vec::new();
        for _ in 0..2 {
            let n = u64::from_le_bytes(take(&mut at, 8)?.try_into()?) as usize;
            two.push(decode_peaks(take(&mut at, n * PEAK_BYTES)?)?);
        }
        let sparse = two.pop().unwrap_or_default();
        let dense = two.pop().unwrap_or_default();
        sets.push((dense, sparse, s));
    }
    Ok(sets)
}
