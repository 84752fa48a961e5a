//! The web page at `/`: plain HTML, CSS and JavaScript compiled into the
//! binary (no CDN, no build step). It sends a dropped, chosen or recorded
//! clip to `/v1/query` and draws the ranked matches, a timeline of what
//! matched where, and a spectrogram thumbnail of the clip.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const RECORDER: &str = include_str!("web/recorder.js");
const STYLE: &str = include_str!("web/style.css");

/// Only our own scripts, styles and API: nothing from elsewhere runs on the page.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
                   style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn recorder() -> Response {
    asset("text/javascript; charset=utf-8", RECORDER)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
