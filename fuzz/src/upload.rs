//! The `upload` target: the HTTP upload reader of `sampleid serve`
//! (`sampleid_upload::read_audio`) on a request whose `Content-Type` and
//! body come from the input. The body arrives in chunks of a size the input
//! picks, as it does from a socket, so multipart boundaries and headers fall
//! across chunk edges.
//!
//! Input: one byte of chunk size, then the `Content-Type` value up to the
//! first `\n` (at most 256 bytes), then the body.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use http_body::Frame;
use sampleid_upload::{Limits, UploadError};

/// A request body that yields its bytes in fixed-size chunks.
struct Chunked(VecDeque<Bytes>);

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
}

/// Reads `data` as described above and checks what an answer promises: a
/// label that is no path, non-empty audio, an error with a 4xx status.
pub fn upload(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = 1 + chunk as usize;
    let cut = rest.iter().take(256).position(|&b| b == b'\n');
    let (content_type, body) = match cut {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&b""[..], rest),
    };
    let chunks: VecDeque<Bytes> = body.chunks(chunk).map(Bytes::copy_from_slice).collect();
    let mut req = Request::builder().method("POST").uri("/v1/query");
    if let Ok(ct) = axum::http::HeaderValue::from_bytes(content_type) {
        req = req.header(axum::http::header::CONTENT_TYPE, ct);
    }
    let Ok(req) = req.body(Body::new(Chunked(chunks))) else {
        return;
    };
    let limits = Limits {
        max_body_bytes: 1 << 20,
        body_timeout: Duration::from_secs(5),
    };
    let answer = RUNTIME.with(|rt| rt.block_on(sampleid_upload::read_audio(req, &limits, None, "clip")));
    match answer {
        Ok(up) => {
            assert!(!up.bytes.is_empty(), "an upload without audio was accepted");
            assert!(
                !up.name.is_empty()
                    && up.name.chars().count() <= 200
                    && !up.name.contains(['/', '\\'])
                    && !up.name.chars().any(char::is_control),
                "the label {:?} is not a clean name",
                up.name
            );
            if let Some(ext) = &up.ext {
                assert!(
                    ext.len() <= 5 && ext.chars().all(|c| c.is_ascii_alphanumeric()),
                    "hint {ext:?}"
                );
            }
        }
        Err(e) => {
            assert!(e.status().is_client_error(), "{e} answered {}", e.status());
            assert!(!matches!(e, UploadError::Timeout(_)), "a body in memory timed out");
        }
    }
}
