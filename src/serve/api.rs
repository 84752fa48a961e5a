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
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sampleid_audio::AudioError;
use sampleid_engine::{Error, IdentifyOptions, IndexOutcome, Source};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::cors::{AllowOrigin, CorsLayer};

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

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        body_error(r.status(), r.body_text())
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(r: MultipartRejection) -> Self {
        Self::bad_request(r.body_text())
    }
}

fn body_error(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "body_too_large",
            "the request body is larger than the server's limit ([serve] max_body_mb)",
        )
    } else {
        ApiError::new(status, "bad_request", text)
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

/// An audio upload: its bytes, a display name and a format hint. The name is
/// a label only (stored as the song's path for uploads); it never reaches the
/// filesystem.
struct Upload {
    bytes: Bytes,
    name: String,
    ext: Option<String>,
}

/// A client's file name reduced to a label: last path component, no control
/// characters, at most 200 characters.
fn clean_name(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let s: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let s = s.trim();
    (!s.is_empty() && s != "." && s != "..").then(|| s.to_string())
}

/// The format hint from a name's extension or the content type.
fn format_hint(name: &str, content_type: Option<&str>) -> Option<String> {
    if let Some((_, ext)) = name.rsplit_once('.')
        && (1..=5).contains(&ext.len())
        && ext.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Some(ext.to_ascii_lowercase());
    }
    let ct = content_type?.split(';').next()?.trim().to_ascii_lowercase();
    let ext = match ct.as_str() {
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "wav",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "audio/flac" | "audio/x-flac" => "flac",
        "audio/ogg" | "audio/vorbis" | "application/ogg" => "ogg",
        "audio/opus" => "opus",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "audio/aac" => "m4a",
        "audio/aiff" | "audio/x-aiff" => "aiff",
        _ => return None,
    };
    Some(ext.into())
}

/// Reads the audio of a request: the body itself, or the first file field
/// (or a field named `file` / `audio`) of a `multipart/form-data` body.
/// The whole body must arrive within `[serve] body_timeout_s` (else 408).
async fn read_audio(req: Request, st: &AppState, name: Option<&str>, default_name: &str) -> Result<Upload, ApiError> {
    let limit = Duration::from_secs_f64(st.serve.body_timeout_s);
    tokio::time::timeout(limit, read_audio_body(req, st, name, default_name))
        .await
        .unwrap_or_else(|_| Err(body_timeout(st)))
}

fn body_timeout(st: &AppState) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        format!(
            "the request body did not arrive within {} s ([serve] body_timeout_s)",
            st.serve.body_timeout_s
        ),
    )
}

async fn read_audio_body(
    req: Request,
    st: &AppState,
    name: Option<&str>,
    default_name: &str,
) -> Result<Upload, ApiError> {
    if declared_too_large(&req, st) {
        drain(req, st).await;
        return Err(body_error(StatusCode::PAYLOAD_TOO_LARGE, String::new()));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_form = content_type
        .as_deref()
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/form-data"));
    let (bytes, field_name, field_type) = if is_form {
        let mut form = Multipart::from_request(req, &()).await?;
        let mut found = None;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?
        {
            if field.file_name().is_some_and(|n| !n.is_empty()) || matches!(field.name(), Some("file" | "audio")) {
                let fname = field.file_name().map(str::to_string);
                let ftype = field.content_type().map(str::to_string);
                let bytes = field.bytes().await.map_err(|e| body_error(e.status(), e.body_text()))?;
                found = Some((bytes, fname, ftype));
                break;
            }
        }
        found.ok_or_else(|| ApiError::bad_request("the form has no file; send the audio in a field named `file`"))?
    } else {
        (Bytes::from_request(req, &()).await?, None, content_type)
    };
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_audio",
            "the request has no audio (empty body)",
        ));
    }
    let name = name
        .and_then(clean_name)
        .or_else(|| field_name.as_deref().and_then(clean_name))
        .unwrap_or_else(|| default_name.to_string());
    let ext = format_hint(&name, field_type.as_deref());
    Ok(Upload { bytes, name, ext })
}

/// Reads and drops a request's body before an early error answer, frame by
/// frame (nothing is kept), up to four times the size limit and for at most
/// `[serve] body_timeout_s`: a client still sending would otherwise see the
/// connection reset instead of the answer. A larger or slower body is cut off.
async fn drain(req: Request, st: &AppState) {
    use http_body_util::BodyExt;
    let cap = (st.serve.max_body_mb * 4e6) as usize;
    let mut body = req.into_body();
    let read = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > cap {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs_f64(st.serve.body_timeout_s), read).await;
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

/// Whether a request's declared body length is over the size limit.
fn declared_too_large(req: &Request, st: &AppState) -> bool {
    let limit = (st.serve.max_body_mb * 1e6) as u64;
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit)
}

/// Runs CPU-heavy work on a blocking thread once a worker slot is free.
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
    let done = tokio::task::spawn_blocking(move || f(&s)).await;
    st.service_time.record(began.elapsed());
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

impl Upload {
    /// The upload as an engine input, refused when longer than `max_s` seconds.
    fn source(self, max_s: f64) -> Source {
        Source::bytes(Vec::from(self.bytes), self.name, self.ext.as_deref()).with_max_duration(max_s)
    }
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
        "rss_mb": resident_mb(),
    }))
}

/// The server's resident memory in MB (Linux; `None` elsewhere), for
/// monitoring and the load test's memory samples.
fn resident_mb() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0 / 1e6)
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
    let deleted = blocking(&st, move |st| st.lib().delete(id)).await?;
    if !deleted {
        return Err(no_song(id));
    }
    tracing::info!(id, "deleted");
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
    let outcome = blocking(&st, move |st| st.lib().add(&up.source(st.serve.max_song_s), None)).await?;
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
        st.lib().identify(&up.source(st.serve.max_query_s), &opts)
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
    let passages = blocking(&st, move |st| st.lib().passages(&up.source(st.serve.max_query_s))).await?;
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
        st.lib().engine()?.classify(classifier, &up.source(st.serve.max_song_s))
    })
    .await?;
    Ok(axum::Json(json!(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_are_labels_not_paths() {
        assert_eq!(clean_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(clean_name("C:\\music\\a.mp3").as_deref(), Some("a.mp3"));
        assert_eq!(clean_name("..").as_deref(), None);
        assert_eq!(clean_name("a\u{0}b\nc.wav").as_deref(), Some("abc.wav"));
        assert_eq!(clean_name(&"x".repeat(500)).map(|s| s.len()), Some(200));
    }

    #[test]
    fn hints_come_from_the_name_then_the_content_type() {
        assert_eq!(format_hint("a.MP3", None).as_deref(), Some("mp3"));
        assert_eq!(
            format_hint("clip", Some("audio/x-wav; codecs=1")).as_deref(),
            Some("wav")
        );
        assert_eq!(format_hint("clip", Some("text/plain")), None);
        assert_eq!(format_hint("a.tar.verylong", None), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abc", b"abcdef"));
    }
}
