//! `sampleid bench serve`: a bounded load test of a running server over real
//! HTTP. Every client is a thread with its own keep-alive connection that
//! sends requests back to back: clips to `/v1/query`, and in mixed mode
//! (`--uploads`) also songs to `POST /v1/songs` (each 201 checked by a query
//! of a 10 s excerpt of the song, which must find it) and deletes of songs it
//! uploaded (checked by `GET /v1/songs/{id}` answering 404). A 503 or 429 is
//! flow control: the client waits `Retry-After` and sends the request again.
//! The report gives throughput, latency percentiles per kind (per request,
//! queueing in the server included), every error, every failed check and the
//! server's resident memory sampled every second.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::cli::BenchServeArgs;

/// What a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Query,
    Upload,
    Delete,
}

/// One request's outcome.
#[derive(Debug, Clone, Serialize)]
struct Sample {
    client: usize,
    kind: Kind,
    /// The clip (queries) or song (uploads, deletes) sent, by index.
    item: usize,
    /// HTTP status, or 0 when no response came (connection error, timeout).
    status: u16,
    ms: f64,
    /// Seconds from the start of the test when it was sent.
    at_s: f64,
    /// 503/429 answers waited out before this one.
    retries: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Latency of one kind of request.
#[derive(Debug, Serialize)]
struct KindReport {
    requests: usize,
    ok: usize,
    per_s: f64,
    latency_ms: Percentiles,
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
    /// Songs available for uploads (mixed mode).
    upload_songs: usize,
    mix: String,
    requests: usize,
    ok: usize,
    /// Answers that are neither success nor flow control: 4xx/5xx other
    /// than 503/429, and requests without an answer.
    errors: usize,
    errors_by_kind: BTreeMap<String, usize>,
    /// 503 (`busy`) and 429 answers waited out and retried.
    retried: usize,
    /// Uploads answered 201 whose excerpt query did not find the song, or
    /// deletes whose song was still there; each listed in `errors_by_kind`.
    failed_checks: usize,
    /// Successful queries per second of elapsed time.
    throughput_rps: f64,
    /// Seconds of query audio identified per second.
    audio_s_per_s: f64,
    /// Query latency (as in the pure query load).
    latency_ms: Percentiles,
    by_kind: BTreeMap<Kind, KindReport>,
    /// The server's resident memory (MB, from `/healthz`), one sample a second,
    /// and when each was taken (s since the run began).
    rss_mb: Vec<f64>,
    rss_t_s: Vec<f64>,
    /// Of each sample: the pages backed by files (the library's mapped row
    /// files among them), and glibc's heap in use and free in its arenas
    /// (MB; empty where the server does not say).
    rss_file_mb: Vec<f64>,
    heap_in_use_mb: Vec<f64>,
    heap_free_mb: Vec<f64>,
    /// The library's songs at each of those samples (uploads and deletes
    /// change it: memory follows the library's size).
    songs: Vec<u64>,
    /// Mean resident memory over the second and the last quarter of the run
    /// (after warm-up): flat memory keeps these close.
    rss_mb_second_quarter: f64,
    rss_mb_last_quarter: f64,
    /// The least-squares trend of resident memory after the first quarter
    /// (MB per hour): 0 for flat memory, whatever the swing about it.
    rss_mb_per_hour: f64,
    /// After the first quarter, in ten equal spans of time: each span's
    /// middle (s), lowest and highest resident memory (MB); and the trend of
    /// those lows (MB per hour). The low point a server comes back to after
    /// each compaction and trim: a leak raises it, the swing above it
    /// (uploads, compactions) does not.
    rss_windows: Vec<RssWindow>,
    /// The least-squares trend of `rss_windows`' lows (MB per hour).
    rss_floor_mb_per_hour: f64,
    server: serde_json::Value,
}

/// The lowest and highest resident memory in one span of the run.
#[derive(Debug, Serialize)]
struct RssWindow {
    t_s: f64,
    min_mb: f64,
    max_mb: f64,
}

/// One sample of the server's memory (`/healthz`).
struct MemorySample {
    /// Seconds since the run began.
    t_s: f64,
    rss_mb: f64,
    songs: u64,
    file_mb: Option<f64>,
    heap_in_use_mb: Option<f64>,
    heap_free_mb: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn percentiles(mut v: Vec<f64>) -> Percentiles {
    v.sort_by(f64::total_cmp);
    Percentiles {
        p50: crate::stats::percentile(&v, 0.5),
        p90: crate::stats::percentile(&v, 0.9),
        p99: crate::stats::percentile(&v, 0.99),
        max: v.last().copied().unwrap_or(f64::NAN),
    }
}

/// A song the clients may upload: its bytes, a label and a 10 s excerpt
/// (16-bit WAV) that must find it once it is indexed.
struct UploadSong {
    bytes: Vec<u8>,
    name: String,
    excerpt: Vec<u8>,
}

/// Which upload songs are out of the library (`free`) and which are in it
/// under an id (`live`); a client takes one from either for its next upload
/// or delete.
#[derive(Default)]
struct Pool {
    free: Vec<usize>,
    live: Vec<(i64, usize)>,
}

/// The shares of queries, uploads and deletes (`--mix Q:U:D`).
fn parse_mix(text: &str) -> Result<[f64; 3]> {
    let parts: Vec<f64> = text
        .split(':')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--mix {text}: expected three numbers, QUERIES:UPLOADS:DELETES"))?;
    match parts[..] {
        [q, u, d] if [q, u, d].iter().all(|x| x.is_finite() && *x >= 0.0) && q + u + d > 0.0 => {
            let sum = q + u + d;
            Ok([q / sum, u / sum, d / sum])
        }
        _ => bail!("--mix {text}: expected three non-negative shares, e.g. 8:1:1"),
    }
}

/// The loudest 10 s of a decoded song (by energy, in steps of 1 s) as a
/// 16 kHz 16-bit mono WAV: the song's middle may be silence (a tracker
/// module's render that ends after 22 s of its 92), which the server rightly
/// refuses as a query, and the check would then fail for the test's sake.
fn excerpt(path: &std::path::Path) -> Result<Vec<u8>> {
    let cfg = sampleid_audio::AudioConfig::default();
    let d = sampleid_audio::decode_file(path, &cfg).with_context(|| format!("cannot decode {}", path.display()))?;
    let n = (10.0 * d.sample_rate as f64) as usize;
    let start = loudest_window(&d.samples, n, d.sample_rate as usize);
    let part = &d.samples[start..(start + n).min(d.samples.len())];
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: d.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut out, spec)?;
        for &x in part {
            w.write_sample((x.clamp(-1.0, 1.0) * 32767.0) as i16)?;
        }
        w.finalize()?;
    }
    Ok(out.into_inner())
}

/// Start of the `n` samples with the most energy, among starts `step`
/// apart (the first of equals; 0 when the signal is shorter than `n`).
fn loudest_window(x: &[f32], n: usize, step: usize) -> usize {
    if x.len() <= n || step == 0 {
        return 0;
    }
    // Running sums: one pass however long the song.
    let mut sum = Vec::with_capacity(x.len() + 1);
    sum.push(0.0f64);
    for v in x {
        sum.push(sum[sum.len() - 1] + f64::from(*v) * f64::from(*v));
    }
    let energy = |a: usize| sum[a + n] - sum[a];
    let mut best = (0, energy(0));
    let mut a = step;
    while a + n <= x.len() {
        let e = energy(a);
        if e > best.1 {
            best = (a, e);
        }
        a += step;
    }
    best.0
}

/// Whether a request of `kind` succeeded with `status` (an upload's 200: the
/// same bytes were in the library already).
fn answered_ok(kind: Kind, status: u16) -> bool {
    matches!(
        (kind, status),
        (Kind::Upload, 200 | 201) | (Kind::Query | Kind::Delete, 200)
    )
}

/// A small deterministic generator per client (xorshift), for the mix.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One HTTP exchange's status and body (status 0: no answer).
type Exchange = (u16, String, Option<u64>);

fn exchange(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Exchange {
    match r {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            match resp.body_mut().read_to_string() {
                Ok(b) => (status, b, retry),
                Err(e) => (0, format!("reading the answer: {e}"), None),
            }
        }
        Err(e) => (0, e.to_string(), None),
    }
}

/// Sends a request again after each 503/429 (waiting its `Retry-After`, at
/// most until the test's end plus a minute); the last answer and the retries.
fn with_retries(deadline: Instant, mut send: impl FnMut() -> Exchange) -> (Exchange, usize) {
    let mut retries = 0;
    loop {
        let answer = send();
        if !matches!(answer.0, 503 | 429) || Instant::now() > deadline + Duration::from_secs(60) {
            return (answer, retries);
        }
        retries += 1;
        std::thread::sleep(Duration::from_secs(answer.2.unwrap_or(1).clamp(1, 60)));
    }
}

/// `sampleid bench serve`.
pub fn run(args: &BenchServeArgs, quiet: bool) -> Result<()> {
    if args.clients == 0 || !(args.duration_s.is_finite() && args.duration_s > 0.0) {
        bail!("--clients and --duration-s must be positive");
    }
    let mix = if args.uploads.is_empty() {
        [1.0, 0.0, 0.0]
    } else {
        parse_mix(&args.mix)?
    };
    let token = std::env::var("SAMPLEID_TOKEN").ok().filter(|t| !t.is_empty());
    if !args.uploads.is_empty() && token.is_none() {
        bail!("--uploads needs the server's write token in SAMPLEID_TOKEN");
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
    let song_files: Vec<PathBuf> = sampleid_engine::collect_inputs(&args.uploads)
        .into_iter()
        .collect::<Result<_, _>>()?;
    let songs: Vec<UploadSong> = song_files
        .iter()
        .map(|f| {
            let name = f
                .file_name()
                .map_or_else(|| "song".into(), |n| n.to_string_lossy().into_owned());
            Ok(UploadSong {
                bytes: std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
                name: format!("load-test/{name}"),
                excerpt: excerpt(f)?,
            })
        })
        .collect::<Result<_>>()?;
    if !args.uploads.is_empty() && songs.is_empty() {
        bail!("no songs found in {:?}", args.uploads);
    }
    let pool = Mutex::new(Pool {
        free: (0..songs.len()).collect(),
        live: Vec::new(),
    });
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
    let checks = Mutex::new(Vec::<String>::new());
    let rss = Mutex::new(Vec::<MemorySample>::new());
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration_s);
    let auth = token.map(|t| format!("Bearer {t}")).unwrap_or_default();
    std::thread::scope(|scope| {
        // The server's memory, once a second, on its own connection.
        {
            let (rss, base) = (&rss, &base);
            let agent = agent_cfg(10.0);
            scope.spawn(move || {
                while Instant::now() < deadline {
                    let (status, body, _) = exchange(agent.get(&format!("{base}/healthz")).call());
                    if status == 200
                        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
                        && let Some(mb) = v["rss_mb"].as_f64()
                    {
                        let sample = MemorySample {
                            t_s: started.elapsed().as_secs_f64(),
                            rss_mb: mb,
                            songs: v["songs"].as_u64().unwrap_or(0),
                            file_mb: v["rss_file_mb"].as_f64(),
                            heap_in_use_mb: v["heap"]["in_use"].as_f64(),
                            heap_free_mb: v["heap"]["free"].as_f64(),
                        };
                        rss.lock().unwrap_or_else(|e| e.into_inner()).push(sample);
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            });
        }
        for client in 0..args.clients {
            let (clips, songs, pool, samples, checks, bar, base, auth) =
                (&clips, &songs, &pool, &samples, &checks, &bar, &base, &auth);
            let agent = agent_cfg(args.timeout_s);
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn_scoped(scope, move || {
                    let query_url = format!("{base}/v1/query");
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (client as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
                    let mut i = client;
                    while Instant::now() < deadline {
                        let r = rng.unit();
                        let mut kind = if r < mix[0] {
                            Kind::Query
                        } else if r < mix[0] + mix[1] {
                            Kind::Upload
                        } else {
                            Kind::Delete
                        };
                        // An upload needs a song out of the library, a delete one in it.
                        let mut item = usize::MAX;
                        let mut live_id = 0;
                        {
                            let mut p = pool.lock().unwrap_or_else(|e| e.into_inner());
                            match kind {
                                Kind::Upload if !p.free.is_empty() => {
                                    let n = p.free.len();
                                    item = p.free.swap_remove(((rng.unit() * n as f64) as usize).min(n - 1));
                                }
                                Kind::Delete if !p.live.is_empty() => {
                                    let n = p.live.len();
                                    (live_id, item) = p.live.swap_remove(((rng.unit() * n as f64) as usize).min(n - 1));
                                }
                                _ => kind = Kind::Query,
                            }
                        }
                        if kind == Kind::Query {
                            item = i % clips.len();
                            i += 1;
                        }
                        let t0 = Instant::now();
                        let at_s = (t0 - started).as_secs_f64();
                        let ((status, body, _), retries) = match kind {
                            Kind::Query => with_retries(deadline, || {
                                exchange(
                                    agent
                                        .post(&query_url)
                                        .header("Content-Type", "application/octet-stream")
                                        .send(&clips[item][..]),
                                )
                            }),
                            Kind::Upload => with_retries(deadline, || {
                                exchange(
                                    agent
                                        .post(&format!("{base}/v1/songs"))
                                        .query("name", &songs[item].name)
                                        .header("Authorization", auth)
                                        .header("Content-Type", "application/octet-stream")
                                        .send(&songs[item].bytes[..]),
                                )
                            }),
                            Kind::Delete => with_retries(deadline, || {
                                exchange(
                                    agent
                                        .delete(&format!("{base}/v1/songs/{live_id}"))
                                        .header("Authorization", auth)
                                        .call(),
                                )
                            }),
                        };
                        let ms = t0.elapsed().as_secs_f64() * 1e3;
                        let ok = answered_ok(kind, status);
                        let error = (!ok).then(|| body.chars().take(200).collect::<String>());
                        samples.lock().unwrap_or_else(|e| e.into_inner()).push(Sample {
                            client,
                            kind,
                            item,
                            status,
                            ms,
                            at_s,
                            retries,
                            error,
                        });
                        bar.inc(1);
                        // The promises behind each answer, checked at once.
                        let fail = |what: String| checks.lock().unwrap_or_else(|e| e.into_inner()).push(what);
                        match (kind, ok) {
                            (Kind::Upload, true) => {
                                let id = serde_json::from_str::<serde_json::Value>(&body)
                                    .ok()
                                    .and_then(|v| v["song"]["id"].as_i64());
                                let Some(id) = id else {
                                    fail(format!("upload of {} answered {status} without a song id", songs[item].name));
                                    continue;
                                };
                                let ((qs, qb, _), _) = with_retries(deadline, || {
                                    exchange(
                                        agent
                                            .post(&query_url)
                                            .header("Content-Type", "audio/wav")
                                            .send(&songs[item].excerpt[..]),
                                    )
                                });
                                let found = serde_json::from_str::<serde_json::Value>(&qb).ok().is_some_and(|v| {
                                    v["matches"]
                                        .as_array()
                                        .is_some_and(|m| m.iter().any(|m| m["song_id"].as_i64() == Some(id)))
                                });
                                if !found {
                                    fail(format!(
                                        "upload of {} answered {status} (song {id}), but a query of its excerpt did not find it ({qs})",
                                        songs[item].name
                                    ));
                                }
                                pool.lock().unwrap_or_else(|e| e.into_inner()).live.push((id, item));
                            }
                            (Kind::Upload, false) => pool.lock().unwrap_or_else(|e| e.into_inner()).free.push(item),
                            (Kind::Delete, true) => {
                                let (gs, _, _) = exchange(agent.get(&format!("{base}/v1/songs/{live_id}")).call());
                                if gs != 404 {
                                    fail(format!("song {live_id} was deleted, but GET answered {gs}"));
                                }
                                pool.lock().unwrap_or_else(|e| e.into_inner()).free.push(item);
                            }
                            // A failed delete: the song stays (or went): look, and keep track.
                            (Kind::Delete, false) => {
                                let (gs, _, _) = exchange(agent.get(&format!("{base}/v1/songs/{live_id}")).call());
                                let mut p = pool.lock().unwrap_or_else(|e| e.into_inner());
                                if gs == 200 {
                                    p.live.push((live_id, item));
                                } else {
                                    p.free.push(item);
                                }
                            }
                            (Kind::Query, _) => {}
                        }
                    }
                })
                .expect("a client thread starts");
        }
    });
    let elapsed_s = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let samples = samples.into_inner().unwrap_or_else(|e| e.into_inner());
    let checks = checks.into_inner().unwrap_or_else(|e| e.into_inner());
    let rss = rss.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = &args.log {
        let mut f =
            sampleid_fsio::AtomicFile::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        for s in &samples {
            writeln!(f, "{}", serde_json::to_string(s)?)?;
        }
        f.commit().with_context(|| format!("cannot write {}", path.display()))?;
    }
    let is_ok = |s: &Sample| answered_ok(s.kind, s.status);
    let mut errors_by_kind = BTreeMap::new();
    for s in samples.iter().filter(|s| !is_ok(s)) {
        let what = match s.status {
            0 => format!("{:?}: no response: {}", s.kind, s.error.as_deref().unwrap_or("")),
            code => format!("{:?}: HTTP {code}", s.kind),
        };
        *errors_by_kind.entry(what).or_insert(0) += 1;
    }
    for c in &checks {
        *errors_by_kind.entry(format!("check failed: {c}")).or_insert(0) += 1;
    }
    let mut by_kind = BTreeMap::new();
    for kind in [Kind::Query, Kind::Upload, Kind::Delete] {
        let of: Vec<&Sample> = samples.iter().filter(|s| s.kind == kind).collect();
        if of.is_empty() {
            continue;
        }
        let ok: Vec<f64> = of.iter().filter(|s| is_ok(s)).map(|s| s.ms).collect();
        by_kind.insert(
            kind,
            KindReport {
                requests: of.len(),
                ok: ok.len(),
                per_s: ok.len() as f64 / elapsed_s,
                latency_ms: percentiles(ok),
            },
        );
    }
    let queries_ok: Vec<&Sample> = samples.iter().filter(|s| s.kind == Kind::Query && is_ok(s)).collect();
    let ok = samples.iter().filter(|s| is_ok(s)).count();
    let quarter = |q: usize| {
        let (a, b) = (rss.len() * q / 4, rss.len() * (q + 1) / 4);
        let part = &rss[a..b];
        if part.is_empty() {
            f64::NAN
        } else {
            part.iter().map(|r| r.rss_mb).sum::<f64>() / part.len() as f64
        }
    };
    let after_warm_up = &rss[rss.len() / 4..];
    let rss_mb_per_hour = 3600.0
        * crate::stats::slope(
            &after_warm_up.iter().map(|r| r.t_s).collect::<Vec<_>>(),
            &after_warm_up.iter().map(|r| r.rss_mb).collect::<Vec<_>>(),
        );
    let (t_s, rss_mb): (Vec<f64>, Vec<f64>) = rss.iter().map(|r| (r.t_s, r.rss_mb)).unzip();
    let warm = after_warm_up.first().map_or(0.0, |r| r.t_s);
    let rss_windows: Vec<RssWindow> = crate::stats::window_extremes(&t_s, &rss_mb, warm, 10)
        .into_iter()
        .map(|(t_s, min_mb, max_mb)| RssWindow { t_s, min_mb, max_mb })
        .collect();
    let rss_floor_mb_per_hour = 3600.0
        * crate::stats::slope(
            &rss_windows.iter().map(|w| w.t_s).collect::<Vec<_>>(),
            &rss_windows.iter().map(|w| w.min_mb).collect::<Vec<_>>(),
        );
    let report = Report {
        url: base.clone(),
        clients: args.clients,
        duration_s: args.duration_s,
        elapsed_s,
        clips: clips.len(),
        clip_audio_s_mean: audio_s.iter().sum::<f64>() / audio_s.len() as f64,
        upload_songs: songs.len(),
        mix: if songs.is_empty() {
            "queries".into()
        } else {
            args.mix.clone()
        },
        requests: samples.len(),
        ok,
        errors: samples.len() - ok,
        errors_by_kind,
        retried: samples.iter().map(|s| s.retries).sum(),
        failed_checks: checks.len(),
        throughput_rps: queries_ok.len() as f64 / elapsed_s,
        audio_s_per_s: queries_ok.iter().map(|s| audio_s[s.item]).sum::<f64>() / elapsed_s,
        latency_ms: percentiles(queries_ok.iter().map(|s| s.ms).collect()),
        by_kind,
        rss_mb_second_quarter: quarter(1),
        rss_mb_last_quarter: quarter(3),
        rss_mb_per_hour,
        rss_windows,
        rss_floor_mb_per_hour,
        rss_mb,
        rss_t_s: t_s,
        rss_file_mb: rss.iter().filter_map(|r| r.file_mb).collect(),
        heap_in_use_mb: rss.iter().filter_map(|r| r.heap_in_use_mb).collect(),
        heap_free_mb: rss.iter().filter_map(|r| r.heap_free_mb).collect(),
        songs: rss.iter().map(|r| r.songs).collect(),
        server,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} clients for {:.0} s against {} ({} songs, {:.2} h): {} requests, {} ok, {} errors, {} failed checks, {} retried after 503/429",
            report.clients,
            report.duration_s,
            report.url,
            report.server["songs"],
            report.server["hours"].as_f64().unwrap_or(0.0),
            report.requests,
            report.ok,
            report.errors,
            report.failed_checks,
            report.retried
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
        for (kind, k) in &report.by_kind {
            println!(
                "  {kind:?}: {} of {} ok ({:.2}/s), p50 {:.0} ms, p99 {:.0} ms",
                k.ok, k.requests, k.per_s, k.latency_ms.p50, k.latency_ms.p99
            );
        }
        println!(
            "server memory: {:.0} MB in the second quarter, {:.0} MB in the last, {:+.1} MB per hour after the first quarter, its floor {:+.1} MB per hour ({} samples)",
            report.rss_mb_second_quarter,
            report.rss_mb_last_quarter,
            report.rss_mb_per_hour,
            report.rss_floor_mb_per_hour,
            report.rss_mb.len()
        );
        for (k, n) in &report.errors_by_kind {
            println!("  {n} × {k}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_excerpt_is_the_loudest_part_not_a_silent_middle() {
        // 22 s of sound, then 70 s of silence (at 10 samples a second).
        let mut x = vec![0.5f32; 220];
        x.extend(vec![0.0f32; 700]);
        x[150..160].fill(0.75);
        let start = loudest_window(&x, 100, 10);
        assert_eq!(start, 60, "the window that ends at the loud second");
        assert!(x[start..start + 100].iter().all(|v| *v > 0.0));
        assert_eq!(loudest_window(&x[..50], 100, 10), 0, "shorter than a window");
        assert_eq!(loudest_window(&[0.0; 300], 100, 10), 0, "silence everywhere: the first");
    }

    #[test]
    fn the_mix_is_three_shares() {
        assert_eq!(parse_mix("8:1:1").unwrap(), [0.8, 0.1, 0.1]);
        assert_eq!(parse_mix("1:0:0").unwrap(), [1.0, 0.0, 0.0]);
        assert!(parse_mix("1:1").is_err());
        assert!(parse_mix("0:0:0").is_err());
        assert!(parse_mix("1:-1:1").is_err());
        assert!(parse_mix("a:b:c").is_err());
    }
}
