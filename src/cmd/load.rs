//! `sampleid bench serve`: a bounded load test of a running server over real
//! HTTP. Every client is a thread with its own keep-alive connection that
//! posts clips to `/v1/query` back to back; the report gives throughput,
//! latency percentiles (per request, queueing in the server included) and
//! every error.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::cli::BenchServeArgs;

/// One request's outcome.
#[derive(Debug, Clone, Serialize)]
struct Sample {
    client: usize,
    clip: usize,
    /// HTTP status, or 0 when no response came (connection error, timeout).
    status: u16,
    ms: f64,
    /// Seconds from the start of the test when it was sent.
    at_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What `bench serve` reports.
#[derive(Debug, Serialize)]
struct Report {
    url: String,
    clients: usize,
    duration_s: f64,
    /// Wall time until the last request in flight returned.
    elapsed_s: f64,
    clips: usize,
    clip_audio_s_mean: f64,
    requests: usize,
    ok: usize,
    errors: usize,
    errors_by_kind: BTreeMap<String, usize>,
    /// Successful requests per second of elapsed time.
    throughput_rps: f64,
    /// Seconds of query audio identified per second.
    audio_s_per_s: f64,
    latency_ms: Percentiles,
    server: serde_json::Value,
}

#[derive(Debug, Serialize)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

/// `sampleid bench serve`.
pub fn run(args: &BenchServeArgs, quiet: bool) -> Result<()> {
    if args.clients == 0 || !(args.duration_s.is_finite() && args.duration_s > 0.0) {
        bail!("--clients and --duration-s must be positive");
    }
    let base = args.url.trim_end_matches('/').to_string();
    let files: Vec<_> = sampleid_engine::collect_inputs(&args.queries)
        .into_iter()
        .collect::<Result<_, _>>()?;
    if files.is_empty() {
        bail!("no query clips found in {:?}", args.queries);
    }
    let mut clips = Vec::new();
    let mut audio_s = Vec::new();
    for f in &files {
        clips.push(std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?);
        let info = sampleid_audio::AudioStream::open(f, &Default::default())
            .with_context(|| format!("{} is not a clip sampleid can read", f.display()))?;
        audio_s.push(info.info().duration_s.unwrap_or(0.0));
    }
    let agent_cfg = |timeout: f64| -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs_f64(timeout)))
            .build()
            .into()
    };
    let server = agent_cfg(30.0)
        .get(&format!("{base}/v1/stats"))
        .call()
        .with_context(|| format!("cannot reach {base}"))?
        .body_mut()
        .read_to_string()
        .context("reading /v1/stats")?;
    let server: serde_json::Value = serde_json::from_str(&server).context("/v1/stats is not JSON")?;
    let bar = crate::progress::counter("requests", quiet);
    bar.set_message(format!("{} clients → {base}", args.clients));
    let samples = Mutex::new(Vec::<Sample>::new());
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration_s);
    std::thread::scope(|scope| {
        for client in 0..args.clients {
            let (clips, samples, bar, base) = (&clips, &samples, &bar, &base);
            let agent = agent_cfg(args.timeout_s);
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn_scoped(scope, move || {
                    let url = format!("{base}/v1/query");
                    let mut i = client;
                    while Instant::now() < deadline {
                        let clip = i % clips.len();
                        i += 1;
                        let t0 = Instant::now();
                        let at_s = (t0 - started).as_secs_f64();
                        let r = agent
                            .post(&url)
                            .header("Content-Type", "application/octet-stream")
                            .send(&clips[clip][..]);
                        let (status, error) = match r {
                            Ok(mut resp) => {
                                let status = resp.status().as_u16();
                                let body = resp.body_mut().read_to_string();
                                match (status, body) {
                                    (200, Ok(_)) => (200, None),
                                    (s, Ok(b)) => (s, Some(b.chars().take(200).collect())),
                                    (s, Err(e)) => (s, Some(format!("reading the answer: {e}"))),
                                }
                            }
                            Err(e) => (0, Some(e.to_string())),
                        };
                        let ms = t0.elapsed().as_secs_f64() * 1e3;
                        samples.lock().unwrap_or_else(|e| e.into_inner()).push(Sample {
                            client,
                            clip,
                            status,
                            ms,
                            at_s,
                            error,
                        });
                        bar.inc(1);
                    }
                })
                .expect("a client thread starts");
        }
    });
    let elapsed_s = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let samples = samples.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = &args.log {
        let mut f =
            sampleid_fsio::AtomicFile::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        for s in &samples {
            writeln!(f, "{}", serde_json::to_string(s)?)?;
        }
        f.commit().with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut lat: Vec<f64> = samples.iter().filter(|s| s.status == 200).map(|s| s.ms).collect();
    lat.sort_by(f64::total_cmp);
    let mut errors_by_kind = BTreeMap::new();
    for s in samples.iter().filter(|s| s.status != 200) {
        let kind = match s.status {
            0 => format!("no response: {}", s.error.as_deref().unwrap_or("")),
            code => format!("HTTP {code}"),
        };
        *errors_by_kind.entry(kind).or_insert(0) += 1;
    }
    let ok = lat.len();
    let ok_audio: f64 = samples
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| audio_s[s.clip])
        .sum();
    let report = Report {
        url: base.clone(),
        clients: args.clients,
        duration_s: args.duration_s,
        elapsed_s,
        clips: clips.len(),
        clip_audio_s_mean: audio_s.iter().sum::<f64>() / audio_s.len() as f64,
        requests: samples.len(),
        ok,
        errors: samples.len() - ok,
        errors_by_kind,
        throughput_rps: ok as f64 / elapsed_s,
        audio_s_per_s: ok_audio / elapsed_s,
        latency_ms: Percentiles {
            p50: crate::stats::percentile(&lat, 0.5),
            p90: crate::stats::percentile(&lat, 0.9),
            p99: crate::stats::percentile(&lat, 0.99),
            max: lat.last().copied().unwrap_or(f64::NAN),
        },
        server,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} clients for {:.0} s against {} ({} songs, {:.2} h): {} requests, {} ok, {} errors",
            report.clients,
            report.duration_s,
            report.url,
            report.server["songs"],
            report.server["hours"].as_f64().unwrap_or(0.0),
            report.requests,
            report.ok,
            report.errors
        );
        println!(
            "throughput {:.2} queries/s ({:.0} s of audio per s); latency p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            report.throughput_rps,
            report.audio_s_per_s,
            report.latency_ms.p50,
            report.latency_ms.p90,
            report.latency_ms.p99,
            report.latency_ms.max
        );
        for (k, n) in &report.errors_by_kind {
            println!("  {n} × {k}");
        }
    }
    Ok(())
}
