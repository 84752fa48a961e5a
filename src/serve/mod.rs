//! `sampleid serve`: the library over HTTP (axum) and the web page at `/`.
//!
//! - `api`: the versioned JSON API (`/v1/...`), its errors and the upload reader.
//! - `web`: the page, its script and style, compiled into the binary.
//! - `openapi.json`: the API's description, served at `/v1/openapi.json`.
//!
//! Every route is an adapter over [`sampleid_engine::Library`] (identify,
//! passages, add, delete, songs, stats) or [`sampleid_engine::Engine::classify`].
//! Concurrency is the engine's: queries search under a shared read lock and
//! only a song's commit takes the write lock, so no reader ever sees half a
//! song. CPU-heavy work runs on `workers` dedicated threads (`pool.rs`);
//! the other requests wait their turn.

mod api;
mod conn;
mod limits;
mod pool;
mod web;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use sampleid_engine::Library;
use serde::{Deserialize, Serialize};

use crate::cli::ServeArgs;
use crate::config::Config;

/// Settings of `sampleid serve` (`[serve]` in the configuration file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on (`--addr` overrides).
    pub addr: String,
    /// Largest request body in MB; a larger one is answered 413.
    pub max_body_mb: f64,
    /// Longest clip (s) that `/v1/query` and `/v1/match` accept; longer is 413.
    pub max_query_s: f64,
    /// Longest song (s) that `POST /v1/songs` indexes; longer is 413.
    pub max_song_s: f64,
    /// Requests decoded and searched at once (0: one per core); others wait.
    pub workers: usize,
    /// Bearer token that writes (`POST`/`DELETE /v1/songs`) must carry. The
    /// environment variable `SAMPLEID_TOKEN` overrides it. Keep it out of
    /// shared config files where you can.
    pub token: Option<String>,
    /// Origins whose pages may call the API (CORS). Empty: none (the default),
    /// browsers then refuse cross-origin reads.
    pub cors_origins: Vec<String>,
    /// After writes, the ANN index is saved at least this often (s); it is
    /// also saved at shutdown (and rebuilt from the rows if it is ever stale).
    pub ann_save_every_s: f64,
    /// A request's line and headers must arrive within this many seconds of
    /// the connection becoming ready for one (a new connection, or a
    /// keep-alive connection after its last answer); slower clients, idle
    /// keep-alive connections included, are disconnected.
    pub header_timeout_s: f64,
    /// A request's whole body must arrive within this many seconds of its
    /// headers; a slower upload is answered 408 and disconnected.
    pub body_timeout_s: f64,
    /// Requests that carry audio (queries, matches, uploads) admitted at once:
    /// receiving, waiting for a worker or being worked on. More are answered
    /// 503 with `Retry-After` instead of queueing without bound.
    pub max_pending: usize,
    /// Song uploads (`POST /v1/songs`) admitted at once; more are answered 503
    /// with `Retry-After`. Each holds its body (up to `max_body_mb`) in memory.
    pub max_uploads: usize,
    /// Requests per minute that one client (IP address) may make to `/v1/`;
    /// beyond it (after `rate_limit_burst`), 429 with `Retry-After`. 0: no limit.
    pub rate_limit_per_minute: f64,
    /// Requests a client may make at once before `rate_limit_per_minute` applies.
    pub rate_limit_burst: f64,
    /// Take the client's address for the rate limit from the last entry of
    /// `X-Forwarded-For`, which only a reverse proxy in front may set
    /// (docs/serve.md). Off: the connection's peer address.
    pub forwarded_for: bool,
    /// A read-only server checks this often (s) whether another process
    /// (`sampleid index`, `sampleid delete`) changed the library, and reopens it.
    pub reload_every_s: f64,
    /// A writable server compacts its library in the background (as
    /// `sampleid compact`) once deleted songs' rows hold this share of its
    /// bytes on disk, checked after each delete and at start. Queries go
    /// on meanwhile, and so do uploads and deletes (only the commit, which
    /// catches up with them, holds them back briefly). 0: never.
    pub compact_dead_fraction: f64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            max_body_mb: 50.0,
            max_query_s: 600.0,
            max_song_s: 4.0 * 3600.0,
            workers: 0,
            token: None,
            cors_origins: Vec::new(),
            ann_save_every_s: 300.0,
            header_timeout_s: 20.0,
            body_timeout_s: 120.0,
            max_pending: 64,
            max_uploads: 4,
            rate_limit_per_minute: 0.0,
            rate_limit_burst: 30.0,
            forwarded_for: false,
            reload_every_s: 2.0,
            compact_dead_fraction: 0.25,
        }
    }
}

impl ServeConfig {
    /// Checks the settings: limits and the save interval must be positive.
    pub fn validate(&self) -> Result<()> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.max_body_mb) || !positive(self.max_query_s) || !positive(self.max_song_s) {
            bail!("[serve] max_body_mb, max_query_s and max_song_s must be positive");
        }
        if !positive(self.ann_save_every_s) {
            bail!("[serve] ann_save_every_s must be positive");
        }
        if !positive(self.header_timeout_s) || !positive(self.body_timeout_s) || !positive(self.reload_every_s) {
            bail!("[serve] header_timeout_s, body_timeout_s and reload_every_s must be positive");
        }
        if self.max_pending == 0 || self.max_uploads == 0 {
            bail!("[serve] max_pending and max_uploads must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.compact_dead_fraction) {
            bail!("[serve] compact_dead_fraction lies in [0, 1] (0: never compact)");
        }
        if !(self.rate_limit_per_minute.is_finite() && self.rate_limit_per_minute >= 0.0) {
            bail!("[serve] rate_limit_per_minute must be 0 (no limit) or positive");
        }
        if self.rate_limit_per_minute > 0.0 && !(self.rate_limit_burst.is_finite() && self.rate_limit_burst >= 1.0) {
            bail!("[serve] rate_limit_burst must be at least 1");
        }
        Ok(())
    }
}

/// Shortest accepted token: a guessable token is no protection.
const MIN_TOKEN_LEN: usize = 16;

/// What every request handler shares.
pub struct AppState {
    /// The library with its engine (models loaded once, shared by all
    /// requests). A read-only server swaps in a freshly opened one when
    /// another process changed the library; requests keep the one they began with.
    library: RwLock<Arc<Library>>,
    pub serve: ServeConfig,
    /// `Some`: writes are enabled and must carry this token.
    pub token: Option<String>,
    /// Bounds CPU-heavy requests running at once.
    pub workers: tokio::sync::Semaphore,
    /// The threads that do the work the `workers` permits admit.
    pub pool: pool::WorkerPool,
    /// The one thread that changes the library (commits, deletes,
    /// compactions, saves, a read-only server's reopening): see `pool.rs`.
    pub writer: pool::WorkerPool,
    /// `workers`' size.
    pub worker_count: usize,
    /// Requests carrying audio admitted at once (`[serve] max_pending`).
    pub pending: limits::Gate,
    /// Song uploads admitted at once (`[serve] max_uploads`).
    pub uploads: limits::Gate,
    /// Mean work time per request, for `Retry-After`.
    pub service_time: limits::ServiceTime,
    /// Per-client request limit (`[serve] rate_limit_per_minute`), if set.
    pub rate: Option<limits::RateLimiter>,
    /// The genre classifier saved next to the library (`sampleid genre train --db`).
    pub genre: Option<sampleid_genre::Classifier>,
    pub started: Instant,
    /// True while a background compaction runs (one at a time).
    pub compacting: AtomicBool,
}

impl AppState {
    /// The library as it is now (a read-only server may reopen it between requests).
    pub fn lib(&self) -> Arc<Library> {
        self.library.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Saves the ANN index if writes changed it.
    pub fn save_ann(&self) -> Result<()> {
        self.lib().save_ann_if_changed().context("cannot save the ANN index")
    }

    /// Reopens a read-only library (another process changed it); the open
    /// one keeps answering until the new one is ready.
    fn reload(&self) -> Result<usize> {
        let old = self.lib();
        let engine = old.engine()?.clone();
        let fresh = Library::open(old.dir(), &engine)
            .with_context(|| format!("cannot reopen the library {}", old.dir().display()))?;
        let songs = fresh.len();
        *self.library.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        Ok(songs)
    }
}

/// What changes on disk when another process commits to a library: the
/// SQLite database and its write-ahead log (length and modification time).
fn disk_stamp(dir: &Path) -> Vec<Option<(u64, SystemTime)>> {
    ["library.sqlite", "library.sqlite-wal"]
        .iter()
        .map(|f| {
            let m = std::fs::metadata(dir.join(f)).ok()?;
            Some((m.len(), m.modified().ok()?))
        })
        .collect()
}

/// A random token for a loopback server started without one (hex, 128 bits).
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("cannot draw a random token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The token that writes need, from `SAMPLEID_TOKEN` or the config file.
fn configured_token(serve: &ServeConfig) -> Result<Option<String>> {
    let token = match std::env::var("SAMPLEID_TOKEN") {
        Ok(t) if !t.is_empty() => Some(t),
        _ => serve.token.clone().filter(|t| !t.is_empty()),
    };
    if let Some(t) = &token {
        if t.len() < MIN_TOKEN_LEN {
            bail!(
                "the write token is {} characters long; use at least {MIN_TOKEN_LEN}",
                t.len()
            );
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("the write token must be printable ASCII without spaces");
        }
    }
    Ok(token)
}

/// Opens the library and models as `args` ask: writable (with a token) or read-only.
pub fn state(args: &ServeArgs, cfg: &Config, model: Option<&Path>, addr: &SocketAddr) -> Result<Arc<AppState>> {
    let mut serve = cfg.serve.clone();
    if let Some(w) = args.workers {
        serve.workers = w;
    }
    if let Some(mb) = args.max_body_mb {
        serve.max_body_mb = mb;
    }
    serve.validate()?;
    let engine = cfg.load_engine(model)?;
    let (lib, token) = if args.read_only {
        let lib = Library::open(&args.db, &engine)
            .with_context(|| format!("cannot open the library {}", args.db.display()))?;
        (lib, None)
    } else {
        let token = match configured_token(&serve)? {
            Some(t) => t,
            None if addr.ip().is_loopback() => {
                let t = random_token()?;
                eprintln!(
                    "no write token configured (SAMPLEID_TOKEN or [serve] token): adding and deleting songs \
                     needs this one, valid until the server stops:\n  Authorization: Bearer {t}"
                );
                t
            }
            None => bail!(
                "refusing to serve a writable library on {addr}, which is not a loopback address, without a \
                 token: set SAMPLEID_TOKEN (or [serve] token), or pass --read-only"
            ),
        };
        let lib = Library::open_writer(&args.db, &engine).with_context(|| {
            format!(
                "cannot open the library {} for writing (pass --read-only to serve it while another process writes it)",
                args.db.display()
            )
        })?;
        (lib, Some(token))
    };
    let genre = lib.genre_classifier()?;
    let workers = match serve.workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    let rate = (serve.rate_limit_per_minute > 0.0)
        .then(|| limits::RateLimiter::new(serve.rate_limit_per_minute, serve.rate_limit_burst));
    Ok(Arc::new(AppState {
        library: RwLock::new(Arc::new(lib)),
        pending: limits::Gate::new(serve.max_pending),
        uploads: limits::Gate::new(serve.max_uploads),
        service_time: limits::ServiceTime::default(),
        rate,
        serve,
        token,
        workers: tokio::sync::Semaphore::new(workers),
        pool: pool::WorkerPool::new(workers, "sampleid-worker").context("cannot start the worker threads")?,
        writer: pool::WorkerPool::new(1, "sampleid-writer").context("cannot start the writer thread")?,
        worker_count: workers,
        genre,
        started: Instant::now(),
        compacting: AtomicBool::new(false),
    }))
}

/// Starts a compaction of a writable server's library on the blocking pool
/// when deleted songs hold `[serve] compact_dead_fraction` of its bytes and
/// none is running. It takes neither a query worker nor the writer thread,
/// but a thread of its own at a lower priority.
pub fn compact_in_background(st: &Arc<AppState>) {
    let threshold = st.serve.compact_dead_fraction;
    if st.token.is_none() || threshold <= 0.0 {
        return;
    }
    let lib = st.lib();
    match lib.dead_fraction() {
        Ok(f) if f >= threshold => {}
        Ok(_) => return,
        Err(e) => {
            tracing::warn!("cannot measure the library for compaction: {e}");
            return;
        }
    }
    if st.compacting.swap(true, Ordering::SeqCst) {
        return;
    }
    // On a thread of its own, not the writer thread: uploads and deletes
    // go on while the compaction copies (the library serialises the commits
    // themselves). At a lower priority, so that queries and uploads come
    // first on a busy machine (docs/reliability.md).
    let state = st.clone();
    let spawned = std::thread::Builder::new()
        .name("sampleid-compact".into())
        .spawn(move || {
            lower_this_threads_priority();
            compact_now(&lib);
            state.compacting.store(false, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the compaction thread: {e}");
        st.compacting.store(false, Ordering::SeqCst);
    }
}

/// Hands the allocator's free memory back to the system. glibc's malloc
/// keeps what a thread freed in that thread's arena for its next use; a
/// server whose uploads decode whole songs and whose compactions rebuild
/// whole graphs grew without end with it (docs/reliability.md).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the
    // system; it is thread-safe and takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Fixes glibc's mmap threshold at 1 MiB (unless `MALLOC_MMAP_THRESHOLD_`
/// says otherwise). By default glibc raises the threshold each time a large
/// block is freed, up to 32 MiB; after that a whole song's buffers come
/// from its arenas and stay there, free but resident, when the upload is
/// done. Measured on the 14.34 h library (`scripts/bench-serve --mixed …
/// 32 600`, one compaction each): RSS 569 → 453 MB in the second quarter,
/// 469 → 356 MB in the last, peak 768 → 625 MB, the same queries per
/// second (docs/reliability.md).
fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt sets one of the allocator's parameters; it takes
        // no pointer and holds the allocator's lock while it does.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        }
    }
}

/// Lowers the calling thread's scheduling priority (nice 10): background
/// work that should take only the CPU that requests leave.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take no pointer; on Linux a thread id
    // as PRIO_PROCESS's `who` sets that thread's nice value alone.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) != 0 {
            tracing::debug!("cannot lower the compaction thread's priority");
        }
    }
}

fn compact_now(lib: &Library) {
    let began = Instant::now();
    match lib.compact() {
        Ok(Some(d)) => tracing::info!(
            segments_removed = d.segments_removed,
            mb_before = d.bytes_before as f64 / 1e6,
            mb_after = d.bytes_after as f64 / 1e6,
            seconds = began.elapsed().as_secs_f64(),
            "compacted the library"
        ),
        Ok(None) => {}
        Err(e) => tracing::error!("compaction failed (the library is unchanged): {e}"),
    }
    release_free_memory();
}

/// `sampleid serve`: runs until Ctrl-C / SIGTERM, then saves the ANN index.
pub fn run(args: &ServeArgs, cfg: &Config, model: Option<&Path>) -> Result<()> {
    fix_mmap_threshold();
    let addr_text = args.addr.clone().unwrap_or_else(|| cfg.serve.addr.clone());
    let addr: SocketAddr = addr_text
        .parse()
        .with_context(|| format!("--addr {addr_text}: expected IP:PORT, e.g. 127.0.0.1:8080"))?;
    let state = state(args, cfg, model, &addr)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        println!(
            "sampleid serving {} ({} songs, {}) on http://{local}/",
            args.db.display(),
            state.lib().len(),
            if state.token.is_some() { "writable" } else { "read-only" }
        );
        let saver = state.clone();
        let every = Duration::from_secs_f64(state.serve.ann_save_every_s.max(1.0));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let s = saver.clone();
                match saver.writer.run(move || s.save_ann()).await {
                    Ok(Err(e)) => tracing::error!("{e:#}"),
                    Err(e) => tracing::error!("ANN save task: {e}"),
                    Ok(Ok(())) => {}
                }
            }
        });
        tokio::spawn(async {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                let _ = tokio::task::spawn_blocking(release_free_memory).await;
            }
        });
        if state.token.is_none() {
            tokio::spawn(watch_library(state.clone()));
        } else {
            compact_in_background(&state);
        }
        let header_timeout = Duration::from_secs_f64(state.serve.header_timeout_s);
        conn::serve(listener, api::router(state.clone()), header_timeout, shutdown_signal()).await;
        tracing::info!("shutting down");
        let s = state.clone();
        state
            .writer
            .run(move || s.save_ann())
            .await
            .map_err(anyhow::Error::msg)??;
        anyhow::Ok(())
    })
}

/// A read-only server's watch for other processes' writes: every
/// `reload_every_s`, a changed database or log reopens the library.
async fn watch_library(state: Arc<AppState>) {
    let dir = state.lib().dir().to_path_buf();
    let every = Duration::from_secs_f64(state.serve.reload_every_s);
    let mut seen = disk_stamp(&dir);
    loop {
        tokio::time::sleep(every).await;
        let now = disk_stamp(&dir);
        if now == seen {
            continue;
        }
        let s = state.clone();
        match state.writer.run(move || s.reload()).await {
            Ok(Ok(songs)) => {
                tracing::info!(songs, "the library changed on disk; reopened");
                seen = now;
            }
            // A writer in the middle of its first commit, say: try again next time.
            Ok(Err(e)) => tracing::warn!("{e:#}"),
            Err(e) => tracing::error!("reload task: {e}"),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    /// Bytes glibc holds in mmapped blocks.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn mmapped() -> usize {
        // SAFETY: see `api::heap_mb`.
        unsafe { libc::mallinfo2() }.hblkhd
    }

    /// After a large block is freed, a 2 MiB buffer is still mmapped (and
    /// so given back to the system when freed), not taken from the arenas
    /// where glibc's raised threshold would put it.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn large_buffers_stay_mmapped_after_a_larger_one_was_freed() {
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
            return;
        }
        super::fix_mmap_threshold();
        let big = vec![1u8; 8 << 20];
        std::hint::black_box(&big);
        drop(big);
        let before = mmapped();
        let buffer = vec![1u8; 2 << 20];
        std::hint::black_box(&buffer);
        let during = mmapped();
        drop(buffer);
        assert!(during >= before + (2 << 20), "{before} → {during}");
    }
}
