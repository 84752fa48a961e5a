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
//! song. CPU-heavy work runs on blocking threads, at most `workers` at once;
//! the other requests wait their turn.

mod api;
mod web;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        Ok(())
    }
}

/// Shortest accepted token: a guessable token is no protection.
const MIN_TOKEN_LEN: usize = 16;

/// What every request handler shares.
pub struct AppState {
    /// The library with its engine (models loaded once, shared by all requests).
    pub lib: Library,
    pub serve: ServeConfig,
    /// `Some`: writes are enabled and must carry this token.
    pub token: Option<String>,
    /// Bounds CPU-heavy requests running at once.
    pub workers: tokio::sync::Semaphore,
    /// The genre classifier saved next to the library (`sampleid genre train --db`).
    pub genre: Option<sampleid_genre::Classifier>,
    pub started: Instant,
}

impl AppState {
    /// Saves the ANN index if writes changed it.
    pub fn save_ann(&self) -> Result<()> {
        self.lib.save_ann_if_changed().context("cannot save the ANN index")
    }
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
    Ok(Arc::new(AppState {
        lib,
        serve,
        token,
        workers: tokio::sync::Semaphore::new(workers),
        genre,
        started: Instant::now(),
    }))
}

/// `sampleid serve`: runs until Ctrl-C / SIGTERM, then saves the ANN index.
pub fn run(args: &ServeArgs, cfg: &Config, model: Option<&Path>) -> Result<()> {
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
            state.lib.len(),
            if state.token.is_some() { "writable" } else { "read-only" }
        );
        let saver = state.clone();
        let every = Duration::from_secs_f64(state.serve.ann_save_every_s.max(1.0));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let s = saver.clone();
                match tokio::task::spawn_blocking(move || s.save_ann()).await {
                    Ok(Err(e)) => tracing::error!("{e:#}"),
                    Err(e) => tracing::error!("ANN save task: {e}"),
                    Ok(Ok(())) => {}
                }
            }
        });
        axum::serve(listener, api::router(state.clone()))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("the server stopped")?;
        tracing::info!("shutting down");
        let s = state.clone();
        tokio::task::spawn_blocking(move || s.save_ann()).await??;
        anyhow::Ok(())
    })
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
