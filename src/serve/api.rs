//! The versioned JSON API: routes, handlers, the upload reader and errors.
//!
//! Every error is `{"error": MESSAGE, "code": CODE}` with a fitting status:
//! 400 bad input (corrupt, empty or silent audio, a malformed form), 401 a
//! missing or wrong token, 403 a read-only server, 404 no such song or
//! route, 405 a wrong method, 408 a body slower than `[serve]
//! body_timeout_s`, 413 a body or clip over the limits, 415 audio in a
//! format sampleid cannot decode, 429 a client over its rate limit, 503 a
//! server at its admission caps (both with `Retry-After`), 500 anything
//! else (logged).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sampleid_audio::AudioError;
use sampleid_engine::{Error, IdentifyOptions, IndexOutcome, Source};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::cors::{AllowOrigin, CorsLayer};

use sampleid_upload::{Limits, Upload};

use super::limits::Pass;
use super::{AppState, web};

/// The API's description (OpenAPI 3.1).
pub const OPENAPI: &str = include_str!("openapi.json");

/// The whole service: API, page and middleware.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = (state.serve.max_body_mb * 1e6) as usize;
    Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::script))
        .route("/recorder.js", get(web::recorder))
        .route("/style.css", get(web::style))
        .route("/healthz", get(healthz))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/stats", get(stats))
        .route("/v1/songs", get(list_songs).post(add_song))
        .route("/v1/songs/{id}", get(get_song).delete(delete_song))
        .route("/v1/query", axum::routing::post(query))
        .route("/v1/match", axum::routing::post(match_audio))
        .route("/v1/genre", axum::routing::post(genre))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route; see /v1/openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; see /v1/openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(cors(&state.serve.cors_origins))
        .with_state(state)
}

/// The client's address: the connection's peer, or with `[serve]
/// forwarded_for` the last `X-Forwarded-For` entry (the one the proxy added).
fn client_ip(st: &AppState, req: &Request) -> Option<IpAddr> {
    if st.serve.forwarded_for {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .next_back();
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

/// `[serve] rate_limit_per_minute` per client on the API (`/v1/…`); the
/// page and `/healthz` are not counted.
async fn rate_limit(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(rate) = &st.rate
        && req.uri().path().starts_with("/v1/")
        && let Some(ip) = client_ip(&st, &req)
        && let Err(wait) = rate.check(ip, Instant::now())
    {
        drain(req, &st).await;
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "more than {} requests a minute from {ip}; retry in {wait} s",
                st.serve.rate_limit_per_minute
            ),
        )
        .retry_after(wait)
        .into_response();
    }
    next.run(req).await
}

/// What a request that carries audio holds while admitted.
struct Admitted<'a> {
    _pending: Pass<'a>,
    _upload: Option<Pass<'a>>,
}

/// [`admit`], reading and dropping the body of a refused request.
async fn admit_or_drain(st: &AppState, req: Request, upload: bool) -> Result<(Admitted<'_>, Request), ApiError> {
    match admit(st, upload) {
        Ok(a) => Ok((a, req)),
        Err(e) => {
            drain(req, st).await;
            Err(e)
        }
    }
}

/// Admits a request that carries audio (and, for `upload`, a song upload),
/// or answers 503 with a `Retry-After` from the queue and the mean work time.
fn admit(st: &AppState, upload: bool) -> Result<Admitted<'_>, ApiError> {
    let busy = |what: &str, inside: usize| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!("the server is at its limit of {what}; retry later"),
        )
        .retry_after(st.service_time.retry_after(inside, st.worker_count))
    };
    let pending = st
        .pending
        .enter()
        .ok_or_else(|| busy("requests carrying audio ([serve] max_pending)", st.pending.inside()))?;
    let upload = if upload {
        Some(
            st.uploads
                .enter()
                .ok_or_else(|| busy("song uploads at once ([serve] max_uploads)", st.pending.inside()))?,
        )
    } else {
        None
    };
    Ok(Admitted {
        _pending: pending,
        _upload: upload,
    })
}

/// CORS for the configured origins only (none by default: browsers then
/// refuse cross-origin reads); `"*"` allows any origin.
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}

/// An error answer: status, a stable code and a message a user can act on.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for the `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// Maps an engine error: what the client sent (4xx) vs. what went wrong here (500).
    fn from_engine(e: Error) -> Self {
        let message = e.to_string();
        let (status, code) = match &e {
            Error::Audio(a) => match a {
                AudioError::UnknownFormat { .. }
                | AudioError::NoAudioTrack { .. }
                | AudioError::UnsupportedCodec { .. } => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_audio"),
                AudioError::TooLong { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "audio_too_long"),
                AudioError::Empty { .. } | AudioError::NoSamples { .. } => (StatusCode::BAD_REQUEST, "empty_audio"),
                _ => (StatusCode::BAD_REQUEST, "bad_audio"),
            },
            Error::Silent { .. } => (StatusCode::BAD_REQUEST, "silent_audio"),
            Error::Matching(sampleid_matching::MatchError::TooShort { .. }) => (StatusCode::BAD_REQUEST, "too_short"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::ReadOnly(_) => (StatusCode::FORBIDDEN, "read_only"),
            _ => {
                tracing::error!("request failed: {message}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = axum::Json(json!({"error": self.message, "code": self.code}));
        let mut resp = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(s) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of a slow body is not read: the connection cannot be reused.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// Writes need the server's bearer token (compared in constant time).
fn authorize(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &st.token else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only",
            "this server is read-only (started with --read-only)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "adding and deleting songs needs the header `Authorization: Bearer TOKEN`",
        )),
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "wrong token")),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body limits of `[serve]`.
fn limits(st: &AppState) -> Limits {
    Limits {
        max_body_bytes: (st.serve.max_body_mb * 1e6) as u64,
        body_timeout: Duration::from_secs_f64(st.serve.body_timeout_s),
    }
}

/// The audio of a request (`sampleid_upload::read_audio` under `[serve]`'s limits).
async fn read_audio(req: Request, st: &AppState, name: Option<&str>, default_name: &str) -> Result<Upload, ApiError> {
    sampleid_upload::read_audio(req, &limits(st), name, default_name)
        .await
        .map_err(|e| ApiError::new(e.status(), e.code(), e.to_string()))
}

/// Reads and drops a refused request's body (`sampleid_upload::drain`).
async fn drain(req: Request, st: &AppState) {
    sampleid_upload::drain(req, &limits(st)).await;
}

/// A handler's query parameters with its request; a bad parameter is a 400,
/// given once the body has been read (a client still sending it would see
/// the connection closed instead of the answer).
async fn query_params<T>(
    params: Result<Query<T>, axum::extract::rejection::QueryRejection>,
    req: Request,
    st: &AppState,
) -> Result<(T, Request), ApiError> {
    match params {
        Ok(Query(p)) => Ok((p, req)),
        Err(e) => {
            drain(req, st).await;
            Err(ApiError::bad_request(e.body_text()))
        }
    }
}

/// Runs CPU-heavy work on a worker thread once a worker slot is free.
async fn blocking<T: Send + 'static>(
    st: &Arc<AppState>,
    f: impl FnOnce(&AppState) -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = st.workers.acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is stopping",
        )
    })?;
    let s = st.clone();
    let began = Instant::now();
    let done = st.pool.run(move || f(&s)).await;
    st.service_time.record(began.elapsed());
    answer(done)
}

/// A job's outcome as an answer: a panicked job is a 500 (logged).
fn answer<T>(done: Result<Result<T, Error>, String>) -> Result<T, ApiError> {
    done.map_err(|e| {
        tracing::error!("worker failed: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (see the server log)",
        )
    })?
    .map_err(ApiError::from_engine)
}

/// Runs a library change (a commit, a delete) on the writer thread, not
/// a worker: it may wait for a compaction, and queries should not.
async fn unmetered<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    answer(st.writer.run(f).await)
}

/// An upload as an engine input, refused when longer than `max_s` seconds.
fn source(up: Upload, max_s: f64) -> Source {
    Source::bytes(Vec::from(up.bytes), up.name, up.ext.as_deref()).with_max_duration(max_s)
}

async fn healthz(State(st): State<Arc<AppState>>) -> axum::Json<Value> {
    let songs = st.lib().len();
    axum::Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "songs": songs,
        "writable": st.token.is_some(),
        "genre": st.genre.as_ref().map(|c| c.info.classes.clone()),
        "uptime_s": st.started.elapsed().as_secs_f64(),
        "rss_mb": resident_mb(1),
        "rss_file_mb": resident_mb(2),
        "heap": heap_mb(),
        "compacting": st.compacting.load(std::sync::atomic::Ordering::SeqCst),
    }))
}

/// The server's resident memory in MB (Linux; `None` elsewhere), for
/// monitoring and the load test's memory samples: field 1 of
/// `/proc/self/statm` is all of it, field 2 the pages backed by files (the
/// library's memory-mapped row files among them), which the kernel can
/// drop and read again.
fn resident_mb(field: usize) -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(field)?.parse().ok()?;
    Some(pages * 4096.0 / 1e6)
}

/// glibc's view of the heap in MB: what is allocated (`in_use`, arenas and
/// mmapped blocks) and what is free but still held in its arenas (`free`).
/// Resident memory that grows while `in_use` does not is the allocator's
/// fragmentation, not something kept (`docs/reliability.md`).
fn heap_mb() -> Option<Value> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no argument and returns a plain struct
        // (glibc ≥ 2.33); it locks each arena while it counts.
        let m = unsafe { libc::mallinfo2() };
        Some(json!({
            "in_use": (m.uordblks + m.hblkhd) as f64 / 1e6,
            "free": m.fordblks as f64 / 1e6,
        }))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn stats(State(st): State<Arc<AppState>>) -> Result<axum::Json<Value>, ApiError> {
    let stats = st.lib().stats().map_err(ApiError::from_engine)?;
    Ok(axum::Json(json!(stats)))
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

async fn list_songs(
    State(st): State<Arc<AppState>>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(page) = page.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let songs = st.lib().songs();
    let limit = page.limit.unwrap_or(songs.len());
    let slice: Vec<_> = songs.iter().skip(page.offset).take(limit).collect();
    Ok(axum::Json(
        json!({"total": songs.len(), "offset": page.offset, "songs": slice}),
    ))
}

fn song_id(id: Result<Path<i64>, axum::extract::rejection::PathRejection>) -> Result<i64, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ApiError::bad_request("a song id is a whole number (see GET /v1/songs)"))
}

async fn get_song(
    State(st): State<Arc<AppState>>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let id = song_id(id)?;
    let song = st.lib().song(id).ok_or_else(|| no_song(id))?;
    Ok(axum::Json(json!(song)))
}

fn no_song(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no song {id} in the library"),
    )
}

async fn delete_song(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    authorize(&st, &headers)?;
    let id = song_id(id)?;
    let lib = st.lib();
    let deleted = unmetered(&st, move || lib.delete(id)).await?;
    if !deleted {
        return Err(no_song(id));
    }
    tracing::info!(id, "deleted");
    super::compact_in_background(&st);
    Ok(axum::Json(json!({"deleted": id})))
}

#[derive(Debug, Deserialize)]
struct NameParam {
    name: Option<String>,
}

async fn add_song(
    State(st): State<Arc<AppState>>,
    params: Result<Query<NameParam>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    // The token is checked before the body is decoded: no work for strangers.
    if let Err(e) = authorize(&st, req.headers()) {
        drain(req, &st).await;
        return Err(e);
    }
    let (_admitted, req) = admit_or_drain(&st, req, true).await?;
    let (p, req) = query_params(params, req, &st).await?;
    let up = read_audio(req, &st, p.name.as_deref(), "upload").await?;
    // Decoded and encoded on a worker; committed without one: a commit
    // waits while a compaction runs (see `compact_in_background`), and must
    // not hold a worker from the queries meanwhile.
    let lib = st.lib();
    let prepared = blocking(&st, {
        let lib = lib.clone();
        move |st| {
            let src = source(up, st.serve.max_song_s);
            let hash = src.content_hash()?;
            if lib.read().find_hash(&hash).is_some() {
                return lib.add(&src, None).map(Err);
            }
            let rows = lib.engine()?.reference_rows(&src, None)?;
            Ok(Ok((src.name().to_string(), hash, rows)))
        }
    })
    .await?;
    let outcome = match prepared {
        Err(known) => known,
        Ok((name, hash, rows)) => unmetered(&st, move || lib.commit(&name, &hash, &rows)).await?,
    };
    let (status, id) = match &outcome {
        IndexOutcome::Indexed { id, path, .. } => {
            tracing::info!(id, name = %path, "indexed");
            (StatusCode::CREATED, Some(*id))
        }
        IndexOutcome::Skipped { id, .. } => (StatusCode::OK, *id),
        IndexOutcome::Failed { error, .. } => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                error.clone(),
            ));
        }
    };
    let mut body = json!(outcome);
    body["song"] = json!(id.and_then(|id| st.lib().song(id)));
    Ok((status, axum::Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
struct QueryParams {
    name: Option<String>,
    top_k: Option<usize>,
    rerank: Option<bool>,
    /// `landmarks`, `neural` or `all` (default).
    stage: Option<sampleid_engine::Stage>,
    /// Report songs from this calibrated confidence up (0–1).
    min_confidence: Option<f64>,
}

async fn query(
    State(st): State<Arc<AppState>>,
    params: Result<Query<QueryParams>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Result<axum::Json<Value>, ApiError> {
    let (_admitted, req) = admit_or_drain(&st, req, false).await?;
    let (p, req) = query_params(params, req, &st).await?;
    if let Some(c) = p.min_confidence.filter(|c| !(0.0..=1.0).contains(c)) {
        drain(req, &st).await;
        return Err(ApiError::bad_request(format!(
            "min_confidence lies in [0, 1] (got {c})"
        )));
    }
    let up = read_audio(req, &st, p.name.as_deref(), "clip").await?;
    let opts = IdentifyOptions {
        rerank: p.rerank.unwrap_or(true),
        top_k: p.top_k,
        stage: p.stage.unwrap_or_default(),
        min_confidence: p.min_confidence,
    };
    let line = blocking(&st, move |st| {
        st.lib().identify(&source(up, st.serve.max_query_s), &opts)
    })
    .await?;
    Ok(axum::Json(json!(line)))
}

async fn match_audio(
    State(st): State<Arc<AppState>>,
    params: Result<Query<NameParam>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Result<axum::Json<Value>, ApiError> {
    let (_admitted, req) = admit_or_drain(&st, req, false).await?;
    let (p, req) = query_params(params, req, &st).await?;
    let up = read_audio(req, &st, p.name.as_deref(), "clip").await?;
    let passages = blocking(&st, move |st| st.lib().passages(&source(up, st.serve.max_query_s))).await?;
    Ok(axum::Json(json!(passages)))
}

/// The style of an uploaded track, from the classifier saved next to the library.
async fn genre(
    State(st): State<Arc<AppState>>,
    params: Result<Query<NameParam>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Result<axum::Json<Value>, ApiError> {
    if st.genre.is_none() {
        drain(req, &st).await;
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_classifier",
            "this library has no genre classifier; train one with `sampleid genre train --labels LABELS.csv --db DIR` and restart the server",
        ));
    }
    let (_admitted, req) = admit_or_drain(&st, req, false).await?;
    let (p, req) = query_params(params, req, &st).await?;
    let up = read_audio(req, &st, p.name.as_deref(), "clip").await?;
    let p = blocking(&st, move |st| {
        let Some(classifier) = &st.genre else {
            return Err(Error::NotFound("no classifier".into()));
        };
        st.lib()
            .engine()?
            .classify(classifier, &source(up, st.serve.max_song_s))
    })
    .await?;
    Ok(axum::Json(json!(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abc", b"abcdef"));
    }
}
