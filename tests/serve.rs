//! `sampleid serve` as its users meet it: a real server on loopback, driven
//! over real HTTP (and, in `the_page_identifies_a_chosen_file`, from headless
//! Chromium through chromedriver).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{fixture, s, sampleid};

const TOKEN: &str = "test-token-0123456789abcdef";

/// A running `sampleid serve`; stopped (SIGKILL) when dropped.
struct Server {
    child: Child,
    url: String,
    /// What it printed on stderr (read in the background).
    stderr: std::sync::Mutex<std::sync::mpsc::Receiver<String>>,
}

impl Server {
    /// Starts a server and waits for its "serving … on http://…/" line.
    fn start(args: &[&str], token: Option<&str>) -> Result<Server, String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sampleid"));
        cmd.arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.env_remove("SAMPLEID_TOKEN");
        if let Some(t) = token {
            cmd.env("SAMPLEID_TOKEN", t);
        }
        let mut child = cmd.spawn().expect("the binary starts");
        let (tx, stderr) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let Some(url) = line.trim().rsplit(" on ").next().filter(|u| u.starts_with("http://")) else {
            let status = child.wait().unwrap();
            let err: Vec<String> = stderr.iter().collect();
            return Err(format!("{status}: {}", err.join("\n")));
        };
        let url = url.trim_end_matches('/').to_string();
        // Keep draining stdout so the server never blocks on it.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Ok(Server {
            child,
            url,
            stderr: std::sync::Mutex::new(stderr),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// SIGTERM, and the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "the server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

/// Status and JSON body of a response.
fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut r = r.expect("the request completes");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {status} {text}"));
    (status, v)
}

fn post(url: &str, token: Option<&str>, content_type: &str, body: &[u8]) -> (u16, Value) {
    let mut req = agent().post(url).header("Content-Type", content_type);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    answer(req.send(body))
}

fn get(url: &str) -> (u16, Value) {
    answer(agent().get(url).call())
}

fn delete(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = agent().delete(url);
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    answer(req.call())
}

/// A multipart/form-data body with one file field.
fn form(field: &str, file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "sampleid-test-boundary-7MA4YWxkTrZu0gW";
    let disposition = match file_name {
        "" => format!("form-data; name=\"{field}\""),
        f => format!("form-data; name=\"{field}\"; filename=\"{f}\""),
    };
    let mut body =
        format!("--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n")
            .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A library of three of the bundled pieces (nebula is left out, to be uploaded).
fn library(dir: &Path) -> PathBuf {
    let db = dir.join("db");
    let mut args = vec!["-q", "index", "--db", s(&db)];
    let songs: Vec<PathBuf> = ["awakening-20s.ogg", "deprecation-20s.ogg", "media-threat-20s.ogg"]
        .iter()
        .map(|n| fixture(n))
        .collect();
    args.extend(songs.iter().map(|p| s(p)));
    let o = sampleid(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    db
}

fn paths_of(songs: &Value) -> Vec<String> {
    songs["songs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_api_identifies_uploads_and_guards_the_library() {
    let tmp = tempfile::tempdir().unwrap();
    let db = library(tmp.path());
    let srv = Server::start(
        &["--db", s(&db), "--addr", "127.0.0.1:0", "--max-body-mb", "2"],
        Some(TOKEN),
    )
    .unwrap();

    // Health, page and description.
    let (st, h) = get(&srv.url("/healthz"));
    assert_eq!(
        (st, h["songs"].as_u64(), h["writable"].as_bool()),
        (200, Some(3), Some(true))
    );
    // Memory as monitoring sees it: resident, of it the file-backed pages,
    // and the allocator's heap.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let (rss, file) = (h["rss_mb"].as_f64().unwrap(), h["rss_file_mb"].as_f64().unwrap());
        assert!(file > 0.0 && file < rss, "{h}");
        assert!(h["heap"]["in_use"].as_f64().unwrap() > 0.0, "{h}");
        assert!(h["heap"]["free"].as_f64().unwrap() >= 0.0, "{h}");
    }
    let mut page = agent().get(&srv.url("/")).call().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.body_mut().read_to_string().unwrap().contains("/app.js"));
    let (st, spec) = get(&srv.url("/v1/openapi.json"));
    assert_eq!(st, 200);
    for p in [
        "/healthz",
        "/v1/stats",
        "/v1/songs",
        "/v1/songs/{id}",
        "/v1/query",
        "/v1/match",
    ] {
        assert!(spec["paths"].get(p).is_some(), "{p} is described");
    }

    // The README clip (nebula, +1 st, mixed under other music): nebula is not
    // in the library yet.
    let clip = std::fs::read(fixture("query-nebula-pitch1-mixed.wav")).unwrap();
    let q = srv.url("/v1/query?name=clip.wav");
    let (st, before) = post(&q, None, "audio/wav", &clip);
    assert_eq!(st, 200, "{before}");
    assert!(!before.to_string().contains("nebula"), "{before}");
    // The landmark stage alone says "no match" for music not in the library.
    let (st, none) = post(&srv.url("/v1/query?stage=landmarks"), None, "audio/wav", &clip);
    assert_eq!(st, 200, "{none}");
    assert_eq!(none["matches"].as_array().map(Vec::len), Some(0), "{none}");
    let (st, e) = post(&srv.url("/v1/query?stage=fast"), None, "audio/wav", &clip);
    assert_eq!(st, 400, "{e}");
    let (st, e) = post(&srv.url("/v1/query?min_confidence=1.5"), None, "audio/wav", &clip);
    assert_eq!(st, 400, "{e}");
    assert!(
        e["error"].as_str().unwrap_or_default().contains("min_confidence"),
        "{e}"
    );
    // Every candidate, each with its calibrated confidence, when asked for.
    let (st, every) = post(&srv.url("/v1/query?min_confidence=0"), None, "audio/wav", &clip);
    assert_eq!(st, 200, "{every}");
    for m in every["matches"].as_array().unwrap() {
        let c = m["confidence"].as_f64().unwrap();
        assert!((0.0..0.5).contains(&c), "not in the library, yet confident: {m}");
        assert_eq!(m["score"], m["confidence"], "{m}");
    }

    // Writes need the token; the client's name is a label, never a path.
    let nebula = std::fs::read(fixture("nebula-20s.ogg")).unwrap();
    let add = srv.url("/v1/songs?name=..%2F..%2Fnebula-20s.ogg");
    let (st, e) = post(&add, None, "audio/ogg", &nebula);
    assert_eq!((st, e["code"].as_str()), (401, Some("unauthorized")), "{e}");
    let (st, e) = post(&add, Some("wrong-token-0123456789"), "audio/ogg", &nebula);
    assert_eq!(st, 401, "{e}");
    let (st, added) = post(&add, Some(TOKEN), "audio/ogg", &nebula);
    assert_eq!((st, added["status"].as_str()), (201, Some("indexed")), "{added}");
    assert_eq!(added["song"]["path"], "nebula-20s.ogg");
    let id = added["song"]["id"].as_i64().unwrap();
    let (ct, body) = form("file", "again.ogg", &nebula);
    let (st, again) = post(&srv.url("/v1/songs"), Some(TOKEN), &ct, &body);
    assert_eq!(
        (st, again["status"].as_str(), again["song"]["id"].as_i64()),
        (200, Some("skipped"), Some(id))
    );

    // Now the clip is nebula's 4 s, +1 semitone, ratio 1 — raw body or form.
    for (ct, body) in [("audio/wav".to_string(), clip.clone()), form("file", "clip.wav", &clip)] {
        let (st, a) = post(&srv.url("/v1/query"), None, &ct, &body);
        assert_eq!(st, 200, "{a}");
        let top = &a["matches"][0];
        assert_eq!(top["reference"], "nebula-20s.ogg", "{a}");
        assert_eq!(top["song_id"].as_i64(), Some(id));
        assert_eq!(a["duration_s"].as_f64(), Some(10.0));
        let at = top["reference_start"].as_f64().unwrap() - top["query_start"].as_f64().unwrap();
        assert!((at - 4.0).abs() <= 1.0, "{top}");
        assert!((top["pitch_shift"].as_f64().unwrap() - 1.0).abs() <= 0.5, "{top}");
        assert!(top["confidence"].as_f64().unwrap() >= 0.5, "{top}");
        assert!(!top["stages"].as_array().unwrap().is_empty(), "{top}");
        assert!(top["evidence"]["landmarks"]["verified"].as_bool().unwrap(), "{top}");
    }
    // The landmark stage finds it too, with its factors.
    let (st, a) = post(&srv.url("/v1/query?stage=landmarks"), None, "audio/wav", &clip);
    assert_eq!(st, 200, "{a}");
    assert_eq!(a["matches"][0]["reference"], "nebula-20s.ogg", "{a}");
    assert_eq!(a["matches"][0]["stage"], "quads", "{a}");
    assert!(
        (a["matches"][0]["time_ratio"].as_f64().unwrap() - 1.0).abs() < 0.02,
        "{a}"
    );
    // Audio matching on the stored chroma agrees.
    let (st, m) = post(&srv.url("/v1/match"), None, "audio/wav", &clip);
    assert_eq!(st, 200, "{m}");
    assert_eq!(m["matches"][0]["reference"], "nebula-20s.ogg", "{m}");
    assert_eq!(m["matches"][0]["pitch_shift"], 1, "{m}");

    // Bad input: clear JSON errors, nothing changes.
    let (st, e) = post(&q, None, "text/plain", b"this is not audio at all, just some text");
    assert_eq!((st, e["code"].as_str()), (415, Some("unsupported_audio")), "{e}");
    let (st, e) = post(&q, None, "audio/wav", b"");
    assert_eq!((st, e["code"].as_str()), (400, Some("empty_audio")), "{e}");
    let (st, e) = post(&q, None, "audio/wav", &clip[..clip.len() / 2]);
    assert_eq!(
        (st, e["code"].as_str()),
        (400, Some("bad_audio")),
        "a file cut short: {e}"
    );
    let silent = tmp.path().join("silent.wav");
    common::write_wav(&silent, 16_000, &[0.0; 16_000 * 5]);
    let (st, e) = post(&q, None, "audio/wav", &std::fs::read(&silent).unwrap());
    assert_eq!((st, e["code"].as_str()), (400, Some("silent_audio")), "{e}");
    let (st, e) = post(&add, Some(TOKEN), "audio/wav", &std::fs::read(&silent).unwrap());
    assert_eq!((st, e["code"].as_str()), (400, Some("silent_audio")), "{e}");
    let (ct, body) = form("comment", "", b"no file here");
    let (st, e) = post(&q, None, &ct, &body);
    assert_eq!(st, 400, "{e}");
    // Over the 2 MB limit: the server reads and drops the body before it
    // answers, so the client sees the 413, not a broken pipe.
    let big = vec![0u8; 2_500_000];
    let (st, e) = post(&q, None, "audio/wav", &big);
    assert_eq!((st, e["code"].as_str()), (413, Some("body_too_large")), "{e}");
    let (st, _) = get(&srv.url("/v1/nothing"));
    assert_eq!(st, 404);
    let (st, e) = post(&srv.url("/v1/genre"), None, "audio/wav", &clip);
    assert_eq!((st, e["code"].as_str()), (404, Some("no_classifier")), "{e}");
    let (st, e) = get(&srv.url("/v1/query"));
    assert_eq!((st, e["code"].as_str()), (405, Some("method_not_allowed")));

    // Deleting needs the token too.
    let one = srv.url(&format!("/v1/songs/{id}"));
    assert_eq!(delete(&one, None).0, 401);
    assert_eq!(delete(&srv.url("/v1/songs/x"), Some(TOKEN)).0, 400);
    let (st, d) = delete(&one, Some(TOKEN));
    assert_eq!((st, d["deleted"].as_i64()), (200, Some(id)));
    assert_eq!(delete(&one, Some(TOKEN)).0, 404);
    assert_eq!(get(&one).0, 404);
    let (_, songs) = get(&srv.url("/v1/songs"));
    assert_eq!(songs["total"], 3);
    let (_, stats) = get(&srv.url("/v1/stats"));
    assert_eq!(
        (stats["songs"].as_u64(), stats["dead_segments"].as_u64()),
        (Some(3), Some(32))
    );

    // While it serves, nobody else may write the library.
    let o = sampleid(&["-q", "index", "--db", s(&db), s(&fixture("nebula-20s.ogg"))]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("another sampleid process"));

    // SIGTERM stops it cleanly; the library is intact.
    assert!(srv.terminate().success());
    let o = sampleid(&["list", "--db", s(&db)]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 3);
}

#[test]
fn queries_run_while_songs_are_added_and_never_see_half_a_song() {
    let tmp = tempfile::tempdir().unwrap();
    let db = library(tmp.path());
    let srv = Server::start(&["--db", s(&db), "--addr", "127.0.0.1:0"], Some(TOKEN)).unwrap();
    let clip = std::fs::read(fixture("query-nebula-pitch1-mixed.wav")).unwrap();
    let uploads: Vec<(String, Vec<u8>)> = ["nebula-20s.ogg", "coherence-10s-ffmpeg-seek.ogg"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(fixture(n)).unwrap()))
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..3)
            .map(|r| {
                let (srv, clip, done) = (&srv, &clip, &done);
                scope.spawn(move || {
                    let mut seen = 0;
                    while !done.load(std::sync::atomic::Ordering::SeqCst) || seen == 0 {
                        if r == 0 {
                            let (st, a) = post(&srv.url("/v1/query"), None, "audio/wav", clip);
                            assert_eq!(st, 200, "{a}");
                        } else {
                            // Every song listed is whole: all of its segments
                            // are committed and counted by the stats.
                            let (st, songs) = get(&srv.url("/v1/songs"));
                            assert_eq!(st, 200);
                            for s in songs["songs"].as_array().unwrap() {
                                let d = s["duration_s"].as_f64().unwrap();
                                let n = s["segments"].as_f64().unwrap();
                                assert!(d > 0.0 && n >= ((d - 4.08) / 0.512).floor(), "{s}");
                            }
                            let (_, stats) = get(&srv.url("/v1/stats"));
                            assert_eq!(stats["dead_segments"], 0, "{stats}");
                        }
                        seen += 1;
                    }
                    seen
                })
            })
            .collect();
        for (name, bytes) in &uploads {
            let (st, a) = post(
                &srv.url(&format!("/v1/songs?name={name}")),
                Some(TOKEN),
                "audio/ogg",
                bytes,
            );
            assert_eq!(st, 201, "{a}");
            // Reported indexed → listed and found at once.
            let (_, songs) = get(&srv.url("/v1/songs"));
            assert!(paths_of(&songs).contains(name), "{songs}");
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
    });
    let (_, a) = post(&srv.url("/v1/query"), None, "audio/wav", &clip);
    assert_eq!(a["matches"][0]["reference"], "nebula-20s.ogg", "{a}");
}

/// Writes `head` at once, then `request` and endless `x`s byte by byte, one
/// every `every`, until the server answers or closes; what it answered
/// (empty when it closed without an answer) and when.
fn trickle(url: &str, head: &[u8], request: &[u8], every: Duration) -> (String, Duration) {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let began = Instant::now();
    tcp.write_all(head).unwrap();
    let mut got = Vec::new();
    for b in request.iter().chain(std::iter::repeat(&b'x')) {
        let mut buf = [0u8; 4096];
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        if tcp.write_all(std::slice::from_ref(b)).is_err() {
            // Closed: read what came before it.
            tcp.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            let _ = tcp.read_to_end(&mut got);
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the server never cut the client off"
        );
        std::thread::sleep(every);
    }
    (String::from_utf8_lossy(&got).into_owned(), began.elapsed())
}

#[test]
fn slow_clients_are_cut_off_and_overload_is_answered_503_or_429() {
    let tmp = tempfile::tempdir().unwrap();
    let db = library(tmp.path());
    let config = tmp.path().join("serve.toml");
    std::fs::write(
        &config,
        "[serve]\nheader_timeout_s = 1.5\nbody_timeout_s = 2.0\nmax_pending = 1\nworkers = 1\n",
    )
    .unwrap();
    let srv = Server::start(
        &["--db", s(&db), "--addr", "127.0.0.1:0", "--config", s(&config)],
        Some(TOKEN),
    )
    .unwrap();

    // Headers at one byte a second: disconnected after the header timeout.
    let (got, took) = trickle(
        &srv.url,
        b"",
        b"POST /v1/query HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(1),
    );
    assert!(!got.contains("200"), "{got}");
    assert!(
        took > Duration::from_secs(1) && took < Duration::from_secs(6),
        "cut off after {took:?}"
    );
    // A connection that sends nothing (or stays idle after an answer) is closed too.
    {
        use std::io::Read;
        let mut tcp = std::net::TcpStream::connect(srv.url.trim_start_matches("http://")).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let began = Instant::now();
        let n = tcp.read(&mut [0u8; 64]).unwrap_or(0);
        assert!(
            n == 0 && began.elapsed() < Duration::from_secs(6),
            "{n} bytes after {:?}",
            began.elapsed()
        );
    }

    // A body at a few bytes a second: 408 after the body timeout, and while it
    // trickles it holds the one place for audio requests, so a query is
    // answered 503 with Retry-After at once.
    let head = b"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: 100000\r\n\r\n";
    let (got, took) = std::thread::scope(|scope| {
        let slow = scope.spawn(|| trickle(&srv.url, head, b"RIFF", Duration::from_millis(20)));
        std::thread::sleep(Duration::from_millis(1000));
        let clip = std::fs::read(fixture("query-nebula-pitch1-mixed.wav")).unwrap();
        let r = agent()
            .post(&srv.url("/v1/query"))
            .header("Content-Type", "audio/wav")
            .send(&clip[..])
            .unwrap();
        assert_eq!(r.status().as_u16(), 503);
        let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        slow.join().unwrap()
    });
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(
        took > Duration::from_secs(2) && took < Duration::from_secs(8),
        "answered after {took:?}"
    );
    // The place is free again: the query is answered.
    let clip = std::fs::read(fixture("query-nebula-pitch1-mixed.wav")).unwrap();
    let (st, a) = post(&srv.url("/v1/query"), None, "audio/wav", &clip);
    assert_eq!(st, 200, "{a}");
    drop(srv);

    // A rate limit per client: the burst, then 429 with Retry-After; the
    // page and /healthz are not counted.
    std::fs::write(&config, "[serve]\nrate_limit_per_minute = 6\nrate_limit_burst = 3\n").unwrap();
    let srv = Server::start(
        &["--db", s(&db), "--addr", "127.0.0.1:0", "--config", s(&config)],
        Some(TOKEN),
    )
    .unwrap();
    for _ in 0..3 {
        assert_eq!(get(&srv.url("/v1/songs")).0, 200);
    }
    let r = agent().get(&srv.url("/v1/songs")).call().unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    assert_eq!(get(&srv.url("/healthz")).0, 200);
}

#[test]
fn a_read_only_server_sees_songs_indexed_after_it_started() {
    let tmp = tempfile::tempdir().unwrap();
    let db = library(tmp.path());
    let config = tmp.path().join("serve.toml");
    std::fs::write(&config, "[serve]\nreload_every_s = 0.2\n").unwrap();
    let srv = Server::start(
        &[
            "--db",
            s(&db),
            "--addr",
            "127.0.0.1:0",
            "--read-only",
            "--config",
            s(&config),
        ],
        None,
    )
    .unwrap();
    assert_eq!(get(&srv.url("/v1/songs")).1["total"], 3);
    let o = sampleid(&["-q", "index", "--db", s(&db), s(&fixture("nebula-20s.ogg"))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Generous deadlines: on a loaded machine the reopening waits its turn.
    let deadline = Instant::now() + Duration::from_secs(90);
    while get(&srv.url("/v1/songs")).1["total"] != 4 {
        assert!(Instant::now() < deadline, "the new song never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    let clip = std::fs::read(fixture("query-nebula-pitch1-mixed.wav")).unwrap();
    let (st, a) = post(&srv.url("/v1/query"), None, "audio/wav", &clip);
    assert_eq!(st, 200, "{a}");
    let first = a["matches"][0]["reference"].as_str().unwrap_or_default();
    assert!(first.ends_with("nebula-20s.ogg"), "{a}");
    // A deleted song goes away the same way.
    let id = get(&srv.url("/v1/songs")).1["songs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"].as_str().unwrap().ends_with("nebula-20s.ogg"))
        .unwrap()["id"]
        .to_string();
    let o = sampleid(&["-q", "delete", "--db", s(&db), &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deadline = Instant::now() + Duration::from_secs(90);
    while get(&srv.url("/v1/songs")).1["total"] != 3 {
        assert!(Instant::now() < deadline, "the deleted song stayed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn writes_need_a_token_and_public_addresses_need_one_set() {
    let tmp = tempfile::tempdir().unwrap();
    let db = library(tmp.path());
    // Not loopback, no token: refused, with the way out in the message.
    let e = Server::start(&["--db", s(&db), "--addr", "0.0.0.0:0"], None)
        .err()
        .expect("refused");
    assert!(e.contains("without a token") && e.contains("--read-only"), "{e}");
    // A short token is refused.
    let e = Server::start(&["--db", s(&db), "--addr", "127.0.0.1:0"], Some("short"))
        .err()
        .expect("refused");
    assert!(e.contains("at least 16"), "{e}");

    // Read-only serves queries anywhere and refuses writes.
    {
        let srv = Server::start(&["--db", s(&db), "--addr", "0.0.0.0:0", "--read-only"], None).unwrap();
        let port = srv.url.rsplit(':').next().unwrap().to_string();
        let local = format!("http://127.0.0.1:{port}");
        let (st, h) = get(&format!("{local}/healthz"));
        assert_eq!((st, h["writable"].as_bool()), (200, Some(false)));
        let (st, e) = post(
            &format!("{local}/v1/songs"),
            Some(TOKEN),
            "audio/ogg",
            &std::fs::read(fixture("nebula-20s.ogg")).unwrap(),
        );
        assert_eq!((st, e["code"].as_str()), (403, Some("read_only")), "{e}");
    }

    // Loopback without a token: a random one is printed, and only it works.
    let srv = Server::start(&["--db", s(&db), "--addr", "127.0.0.1:0"], None).unwrap();
    let token = loop {
        let line = srv
            .stderr
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(30))
            .expect("the token is printed");
        if let Some(t) = line.trim().strip_prefix("Authorization: Bearer ") {
            break t.to_string();
        }
    };
    assert_eq!(token.len(), 32);
    assert_eq!(delete(&srv.url("/v1/songs/1"), Some(TOKEN)).0, 401);
    assert_eq!(delete(&srv.url("/v1/songs/1"), Some(&token)).0, 200);

    // CORS is off: no Access-Control header for another origin.
    let r = agent()
        .get(&srv.url("/v1/stats"))
        .header("Origin", "http://evil.example")
        .call()
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    drop(srv);

    // … and on for the origins the configuration lists.
    let cfg = tmp.path().join("cors.toml");
    std::fs::write(&cfg, "[serve]\ncors_origins = [\"http://app.example\"]\n").unwrap();
    let srv = Server::start(
        &[
            "--config",
            s(&cfg),
            "--db",
            s(&db),
            "--addr",
            "127.0.0.1:0",
            "--read-only",
        ],
        None,
    )
    .unwrap();
    let header = |origin: &str| {
        let r = agent()
            .get(&srv.url("/v1/stats"))
            .header("Origin", origin)
            .call()
            .unwrap();
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string())
    };
    assert_eq!(header("http://app.example").as_deref(), Some("http://app.example"));
    assert_eq!(header("http://evil.example"), None);
}

/// The short version of `scripts/torture`'s server rounds: a writable server
/// killed (SIGKILL) while it takes an upload keeps every song it answered
/// 201 for, whole, and the next server carries on.
#[test]
fn a_server_killed_during_an_upload_keeps_what_it_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let db = library(tmp.path());
    let nebula = std::fs::read(fixture("nebula-20s.ogg")).unwrap();
    let coherence = std::fs::read(fixture("coherence-10s-ffmpeg-seek.ogg")).unwrap();
    for delay_ms in [0u64, 40, 120] {
        let mut srv = Server::start(&["--db", s(&db), "--addr", "127.0.0.1:0"], Some(TOKEN)).unwrap();
        let (_, before) = get(&srv.url("/v1/songs"));
        let had = paths_of(&before);
        // Deleted in a completed request: must stay gone.
        let gone = before["songs"][0]["id"].as_i64().unwrap();
        let (st, d) = delete(&srv.url(&format!("/v1/songs/{gone}")), Some(TOKEN));
        assert_eq!(st, 200, "{d}");
        // One upload answered, then another killed in flight.
        let (st, up) = post(&srv.url("/v1/songs?name=first.ogg"), Some(TOKEN), "audio/ogg", &nebula);
        assert!(st == 201 || st == 200, "{up}");
        let answered = up["song"]["id"].as_i64().unwrap();
        std::thread::scope(|scope| {
            let url = srv.url("/v1/songs?name=second.ogg");
            let body = &coherence;
            let upload = scope.spawn(move || {
                agent()
                    .post(&url)
                    .header("Authorization", &format!("Bearer {TOKEN}"))
                    .send(&body[..])
                    .map(|r| r.status().as_u16())
            });
            std::thread::sleep(Duration::from_millis(delay_ms));
            srv.child.kill().unwrap();
            srv.child.wait().unwrap();
            let _ = upload.join().unwrap();
        });
        drop(srv);
        // The library opens; the answered song is there and finds itself;
        // the deleted one stayed deleted; nothing else was lost.
        let o = sampleid(&["list", "--db", s(&db), "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let listed: Vec<Value> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let ids: Vec<i64> = listed.iter().map(|s| s["id"].as_i64().unwrap()).collect();
        assert!(
            ids.contains(&answered),
            "song {answered} was answered 201 and is gone: {ids:?}"
        );
        assert!(
            !ids.contains(&gone),
            "song {gone} came back after its delete was answered"
        );
        let paths: Vec<String> = listed.iter().map(|s| s["path"].as_str().unwrap().to_string()).collect();
        for p in had.iter().skip(1) {
            assert!(paths.contains(p), "{p} was lost");
        }
        let q = sampleid(&[
            "query",
            "--db",
            s(&db),
            "--json",
            s(&fixture("query-nebula-pitch1-mixed.wav")),
        ]);
        let a: Value = serde_json::from_slice(&q.stdout).unwrap();
        assert!(
            a["matches"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["song_id"] == answered),
            "the answered upload does not find itself: {a}"
        );
        // Put the deleted song back for the next round (its bytes, a new id).
        let name = before["songs"][0]["path"].as_str().unwrap().to_string();
        let o = sampleid(&["-q", "index", "--db", s(&db), &name]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = sampleid(&["-q", "delete", "--db", s(&db), &answered.to_string()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // The next server carries on.
    let srv = Server::start(&["--db", s(&db), "--addr", "127.0.0.1:0"], Some(TOKEN)).unwrap();
    let (st, up) = post(&srv.url("/v1/songs?name=again.ogg"), Some(TOKEN), "audio/ogg", &nebula);
    assert!(st == 201 || st == 200, "{up}");
}

#[test]
fn a_library_with_a_genre_classifier_answers_genre_queries() {
    let tmp = tempfile::tempdir().unwrap();
    let db = library(tmp.path());
    let mut csv = String::from("path,label\n");
    for (n, l) in [
        ("awakening-20s.ogg", "one"),
        ("deprecation-20s.ogg", "two"),
        ("media-threat-20s.ogg", "one"),
        ("coherence-10s-ffmpeg-seek.ogg", "two"),
    ] {
        csv.push_str(&format!("{},{l}\n", fixture(n).display()));
    }
    let labels = tmp.path().join("labels.csv");
    std::fs::write(&labels, csv).unwrap();
    let o = sampleid(&["-q", "genre", "train", "--labels", s(&labels), "--db", s(&db)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let srv = Server::start(&["--db", s(&db), "--addr", "127.0.0.1:0", "--read-only"], None).unwrap();
    let (_, h) = get(&srv.url("/healthz"));
    assert_eq!(h["genre"], json!(["one", "two"]));
    let nebula = std::fs::read(fixture("nebula-20s.ogg")).unwrap();
    let (st, g) = post(&srv.url("/v1/genre?name=nebula.ogg"), None, "audio/ogg", &nebula);
    assert_eq!(st, 200, "{g}");
    assert!(["one", "two"].contains(&g["label"].as_str().unwrap()), "{g}");
    assert_eq!(g["classes"].as_array().unwrap().len(), 2);
    assert_eq!(g["neighbours"].as_array().unwrap().len(), 4);
    let (st, e) = post(&srv.url("/v1/genre"), None, "text/plain", b"not audio, only words here");
    assert_eq!((st, e["code"].as_str()), (415, Some("unsupported_audio")), "{e}");
}

// ---- the web page in a real browser -----------------------------------------

/// Where the browser and its driver are. CI (`.ci/run`) installs Debian's
/// `chromium` and `chromium-driver` and sets `SAMPLEID_BROWSER_TEST=required`;
/// elsewhere `build.rs` marks the test ignored when they are missing.
fn browser() -> (PathBuf, PathBuf) {
    let chromium =
        std::env::var_os("SAMPLEID_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let driver =
        std::env::var_os("SAMPLEID_CHROMEDRIVER").map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from);
    if chromium.exists() && driver.exists() {
        return (chromium, driver);
    }
    let msg = format!(
        "headless Chromium test needs {} and {} (Debian: apt-get install chromium chromium-driver)",
        chromium.display(),
        driver.display()
    );
    // The test is marked ignored at build time when the browser is missing;
    // reaching here means it was required (or run with --include-ignored).
    panic!("{msg}");
}

/// A W3C WebDriver session on a local chromedriver.
struct Browser {
    driver: Child,
    base: String,
    session: String,
}

impl Browser {
    fn start(chromium: &Path, driver: &Path, profile: &Path) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !agent()
            .get(&format!("{base}/status"))
            .call()
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_str().unwrap(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1000,1200",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let mut b = Browser {
            driver: child,
            base,
            session: String::new(),
        };
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        b
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let a = agent();
        let r = match method {
            "POST" => a.post(&url).send(body.unwrap_or(json!({})).to_string()),
            "GET" => a.get(&url).call(),
            _ => a.delete(&url).call(),
        };
        let (st, v) = answer(r);
        assert_eq!(st, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn script(&self, js: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": js, "args": []})))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = agent()
                .delete(&format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
#[cfg_attr(
    not(has_browser),
    ignore = "needs Debian's chromium and chromium-driver (CI installs them and sets SAMPLEID_BROWSER_TEST=required)"
)]
fn the_page_identifies_a_chosen_file() {
    let (chromium, driver) = browser();
    let tmp = tempfile::tempdir().unwrap();
    let db = library(tmp.path());
    let o = sampleid(&["-q", "index", "--db", s(&db), s(&fixture("nebula-20s.ogg"))]);
    assert!(o.status.success());
    let srv = Server::start(&["--db", s(&db), "--addr", "127.0.0.1:0", "--read-only"], None).unwrap();
    let profile = tmp.path().join("profile");
    let b = Browser::start(&chromium, &driver, &profile);
    b.call("POST", "/url", Some(json!({"url": srv.url("/")})));
    // The page asks the server for the library's size.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b
        .script("return document.getElementById('library').textContent")
        .as_str()
        .is_some_and(|t| t.contains("4 songs"))
    {
        assert!(Instant::now() < deadline, "the page did not show the library");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Choose the README clip in the file input, as a user would.
    let input = b.call(
        "POST",
        "/element",
        Some(json!({"using": "css selector", "value": "#file"})),
    );
    let id = input["element-6066-11e4-a52e-4f735466cecf"]
        .as_str()
        .unwrap_or_else(|| panic!("no element: {input}"))
        .to_string();
    let clip = fixture("query-nebula-pitch1-mixed.wav");
    b.call(
        "POST",
        &format!("/element/{id}/value"),
        Some(json!({"text": clip.to_str().unwrap()})),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let state = loop {
        let v = b.script(
            "const r = document.querySelectorAll('#results li');\
             return {state: document.body.dataset.state || '', status: document.getElementById('status').textContent,\
                     first: r.length ? r[0].textContent : '', n: r.length,\
                     timelines: document.querySelectorAll('#results svg.timeline').length,\
                     spectrogram: document.getElementById('spectrogram').dataset.ready || ''};",
        );
        if (v["state"] == "done" && v["spectrogram"] != "0") || v["state"] == "error" {
            break v;
        }
        assert!(Instant::now() < deadline, "no answer on the page: {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(state["state"], "done", "{state}");
    let first = state["first"].as_str().unwrap();
    assert!(first.contains("nebula-20s.ogg"), "the best match is nebula: {state}");
    assert!(first.contains("pitch +1.0 st"), "{state}");
    assert!(state["timelines"].as_u64().unwrap() >= 1, "{state}");
    assert_eq!(state["spectrogram"], "1", "the browser drew the spectrogram: {state}");
}

#[test]
fn a_writable_server_compacts_after_deletes_and_keeps_answering() {
    let tmp = tempfile::tempdir().unwrap();
    let db = library(tmp.path());
    let config = tmp.path().join("serve.toml");
    std::fs::write(&config, "[serve]\ncompact_dead_fraction = 0.05\n").unwrap();
    let srv = Server::start(
        &["--db", s(&db), "--addr", "127.0.0.1:0", "--config", s(&config)],
        Some(TOKEN),
    )
    .unwrap();
    let nebula = std::fs::read(fixture("nebula-20s.ogg")).unwrap();
    let (st, added) = post(&srv.url("/v1/songs?name=nebula.ogg"), Some(TOKEN), "audio/ogg", &nebula);
    assert_eq!(st, 201, "{added}");
    let songs = get(&srv.url("/v1/songs")).1;
    let first = songs["songs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"].as_str().unwrap().ends_with("awakening-20s.ogg"))
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (st, e) = delete(&srv.url(&format!("/v1/songs/{first}")), Some(TOKEN));
    assert_eq!(st, 200, "{e}");
    // The delete left a third of the rows dead: the server compacts.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stats = get(&srv.url("/v1/stats")).1;
        let busy = get(&srv.url("/healthz")).1["compacting"].as_bool().unwrap();
        if stats["dead_segments"] == 0 && !busy {
            assert_eq!(stats["songs"], 3, "{stats}");
            break;
        }
        assert!(Instant::now() < deadline, "never compacted: {stats}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(db.join("fingerprints-1.f16").exists() && !db.join("fingerprints.f16").exists());
    // It answers from the compacted rows, and takes the next upload.
    let clip = std::fs::read(fixture("query-nebula-pitch1-mixed.wav")).unwrap();
    let (st, a) = post(&srv.url("/v1/query"), None, "audio/wav", &clip);
    assert_eq!(
        (st, a["matches"][0]["reference"].as_str()),
        (200, Some("nebula.ogg")),
        "{a}"
    );
    let awakening = std::fs::read(fixture("awakening-20s.ogg")).unwrap();
    let (st, again) = post(
        &srv.url("/v1/songs?name=again.ogg"),
        Some(TOKEN),
        "audio/ogg",
        &awakening,
    );
    assert_eq!(st, 201, "a deleted song can come back: {again}");
    assert_eq!(get(&srv.url("/v1/songs")).1["total"], 4);
    assert!(srv.terminate().success());
    // Another process sees the same library.
    let o = sampleid(&["list", "--db", s(&db), "--json"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 4);
}
