//! Reading the audio of an HTTP request: the body itself, or the file field
//! of a `multipart/form-data` form, under the server's size and time limits.
//! The client's file name becomes a label (never a path) and a format hint.
//!
//! This is the part of `sampleid serve` that parses untrusted bytes before
//! any decoder sees them, kept apart so that it is fuzzed on its own
//! (`fuzz/fuzz_targets/upload.rs`).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};

/// The limits a request's body is read under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body in bytes (`[serve] max_body_mb`).
    pub max_body_bytes: u64,
    /// Time for the whole body to arrive (`[serve] body_timeout_s`).
    pub body_timeout: Duration,
}

/// Audio read from a request: its bytes, a display name and a format hint.
#[derive(Debug)]
pub struct Upload {
    pub bytes: Bytes,
    /// A label: the `?name=` or the form's file name, cleaned
    /// ([`clean_name`]), or the caller's default.
    pub name: String,
    /// A file extension for the decoder's guess ([`format_hint`]).
    pub ext: Option<String>,
}

/// Why no audio could be read from a request.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the request body is larger than the server's limit ([serve] max_body_mb)")]
    TooLarge,
    #[error("the request body did not arrive within {0} s ([serve] body_timeout_s)")]
    Timeout(f64),
    #[error("the request has no audio (empty body)")]
    Empty,
    #[error("the form has no file; send the audio in a field named `file`")]
    NoFile,
    /// A malformed form or a body that broke off: the parser's own words.
    #[error("{0}")]
    Malformed(String),
}

impl UploadError {
    /// The HTTP status that answers it.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Empty | Self::NoFile | Self::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// A stable code for clients (the API's `code` field).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "body_too_large",
            Self::Timeout(_) => "body_timeout",
            Self::Empty => "empty_audio",
            Self::NoFile | Self::Malformed(_) => "bad_request",
        }
    }

    fn from_read(status: StatusCode, text: String) -> Self {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Self::TooLarge
        } else {
            Self::Malformed(text)
        }
    }
}

/// A client's file name reduced to a label: last path component, no control
/// characters, at most 200 characters.
pub fn clean_name(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let s: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let s = s.trim();
    (!s.is_empty() && s != "." && s != "..").then(|| s.to_string())
}

/// The format hint from a name's extension or the content type.
pub fn format_hint(name: &str, content_type: Option<&str>) -> Option<String> {
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

/// Whether a request's declared body length is over `limits`.
pub fn declared_too_large(req: &Request, limits: &Limits) -> bool {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limits.max_body_bytes)
}

/// Reads the audio of a request: the body itself, or the first file field
/// (or a field named `file` / `audio`) of a `multipart/form-data` body. The
/// whole body must arrive within `limits.body_timeout`. `name` (a `?name=`)
/// labels it before the form's file name; `default_name` when neither does.
pub async fn read_audio(
    req: Request,
    limits: &Limits,
    name: Option<&str>,
    default_name: &str,
) -> Result<Upload, UploadError> {
    tokio::time::timeout(limits.body_timeout, read_audio_now(req, limits, name, default_name))
        .await
        .unwrap_or_else(|_| Err(UploadError::Timeout(limits.body_timeout.as_secs_f64())))
}

async fn read_audio_now(
    req: Request,
    limits: &Limits,
    name: Option<&str>,
    default_name: &str,
) -> Result<Upload, UploadError> {
    if declared_too_large(&req, limits) {
        drain(req, limits).await;
        return Err(UploadError::TooLarge);
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
        let mut form = Multipart::from_request(req, &())
            .await
            .map_err(|r| UploadError::Malformed(r.body_text()))?;
        let mut found = None;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| UploadError::from_read(e.status(), e.body_text()))?
        {
            if field.file_name().is_some_and(|n| !n.is_empty()) || matches!(field.name(), Some("file" | "audio")) {
                let fname = field.file_name().map(str::to_string);
                let ftype = field.content_type().map(str::to_string);
                let bytes = field
                    .bytes()
                    .await
                    .map_err(|e| UploadError::from_read(e.status(), e.body_text()))?;
                found = Some((bytes, fname, ftype));
                break;
            }
        }
        found.ok_or(UploadError::NoFile)?
    } else {
        let bytes = Bytes::from_request(req, &())
            .await
            .map_err(|r| UploadError::from_read(r.status(), r.body_text()))?;
        (bytes, None, content_type)
    };
    if bytes.is_empty() {
        return Err(UploadError::Empty);
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
/// the body timeout: a client still sending would otherwise see the
/// connection reset instead of the answer. A larger or slower body is cut off.
pub async fn drain(req: Request, limits: &Limits) {
    use http_body_util::BodyExt;
    let cap = limits.max_body_bytes.saturating_mul(4);
    let mut body = req.into_body();
    let read = async {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > cap {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(limits.body_timeout, read).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn limits() -> Limits {
        Limits {
            max_body_bytes: 1_000_000,
            body_timeout: Duration::from_secs(5),
        }
    }

    fn read(content_type: &str, body: &[u8], name: Option<&str>) -> Result<Upload, UploadError> {
        let req = Request::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_vec()))
            .expect("request");
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(read_audio(req, &limits(), name, "clip"))
    }

    #[test]
    fn client_names_are_labels_not_paths() {
        assert_eq!(clean_name("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(clean_name("C:\\music\\song.mp3").as_deref(), Some("song.mp3"));
        assert_eq!(clean_name("a\u{0}b\nc.wav").as_deref(), Some("abc.wav"));
        assert_eq!(clean_name(".."), None);
        assert_eq!(clean_name("  "), None);
        assert_eq!(clean_name(&"x".repeat(500)).map(|s| s.len()), Some(200));
    }

    #[test]
    fn hints_come_from_the_name_then_the_content_type() {
        assert_eq!(format_hint("clip.MP3", Some("audio/wav")).as_deref(), Some("mp3"));
        assert_eq!(
            format_hint("clip", Some("audio/x-wav; codec=1")).as_deref(),
            Some("wav")
        );
        assert_eq!(format_hint("clip", Some("text/plain")), None);
        assert_eq!(format_hint("clip.tar.verylong", None), None);
    }

    #[test]
    fn a_raw_body_and_a_form_give_the_same_audio() {
        let raw = read("audio/ogg", b"OggS-bytes", Some("dir/x.ogg")).expect("raw body");
        assert_eq!(
            (&raw.bytes[..], raw.name.as_str(), raw.ext.as_deref()),
            (&b"OggS-bytes"[..], "x.ogg", Some("ogg"))
        );
        let form = b"--B\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nnot audio\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../up.flac\"\r\nContent-Type: application/octet-stream\r\n\r\nfLaC-bytes\r\n--B--\r\n";
        let up = read("multipart/form-data; boundary=B", form, None).expect("form");
        assert_eq!(
            (&up.bytes[..], up.name.as_str(), up.ext.as_deref()),
            (&b"fLaC-bytes"[..], "up.flac", Some("flac"))
        );
    }

    #[test]
    fn bad_bodies_are_typed_errors() {
        assert!(matches!(read("audio/wav", b"", None), Err(UploadError::Empty)));
        let no_file = b"--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\ny\r\n--B--\r\n";
        assert!(matches!(
            read("multipart/form-data; boundary=B", no_file, None),
            Err(UploadError::NoFile)
        ));
        let cut = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF";
        let e = read("multipart/form-data; boundary=B", cut, None).expect_err("a form cut short");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{e}");
        let e = read("multipart/form-data", b"x", None).expect_err("no boundary");
        assert!(matches!(e, UploadError::Malformed(_)), "{e}");
    }
}
