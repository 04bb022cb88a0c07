//! Request bodies: read within a limit (gzip inflated within the same limit), JSON parsed
//! with the path of the first bad value, and a `JsonBody` extractor built on both.
//!
//! An oversized body is answered 413 only after it has been read and discarded (up to
//! [`DRAIN_LIMIT`]): clients that send the whole body without waiting for
//! `100-continue` (Python's urllib and requests, most SDKs) would otherwise see the
//! connection reset mid-upload instead of the 413, and retry forever. A client that
//! asked for `100-continue` gets the 413 at once, before it sends the body.

use std::{io::Read, time::Duration};

use axum::{
    body::Body,
    extract::{FromRequest, Request},
    http::{header, request::Parts, HeaderMap},
};
use bytes::Bytes;
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// Largest JSON body of the API's own routes (experiments, patches).
pub const MAX_JSON_BYTES: usize = 1 << 20;

/// How much of an oversized body is read (and thrown away) so the client can read its 413.
pub const DRAIN_LIMIT: u64 = 64 << 20;

/// How long draining an oversized body may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the body within `limit` bytes, inflating gzip within the same limit.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let raw = collect_within(headers, body, limit).await?;
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") | Some("") => Ok(raw),
        Some("gzip") | Some("x-gzip") => inflate(&raw, limit),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding `{other}` is not supported; use gzip or none"
        ))),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::TooLarge(format!("request body exceeds {limit} bytes"))
}

/// The raw body, or a 413 once it passes `limit` (after draining the rest, see the module docs).
async fn collect_within(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let expects_continue =
        headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if declared.is_some_and(|len| len > limit as u64) {
        if !expects_continue && declared.is_some_and(|len| len <= DRAIN_LIMIT) {
            drain(body.into_data_stream(), 0).await;
        }
        return Err(too_large(limit));
    }
    let mut stream = body.into_data_stream();
    let mut buf = Vec::with_capacity(declared.map_or(8 << 10, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::invalid(ErrorCode::InvalidBody, format!("could not read the body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            drain(stream, (buf.len() + chunk.len()) as u64).await;
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Reads and discards the rest of a body, bounded in bytes and time.
async fn drain(mut stream: axum::body::BodyDataStream, mut seen: u64) {
    let discard = async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard).await;
}

fn inflate(raw: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut inflated = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    let read = flate2::read::MultiGzDecoder::new(raw).take(limit as u64 + 1).read_to_end(&mut inflated);
    match read {
        Ok(n) if n > limit => Err(ApiError::TooLarge(format!("decompressed body exceeds {limit} bytes"))),
        Ok(_) => Ok(Bytes::from(inflated)),
        Err(e) => Err(ApiError::invalid(ErrorCode::InvalidGzip, format!("the body is not valid gzip: {e}"))),
    }
}

/// Parses JSON, naming the path of the first bad value (`[3].user_id`).
pub fn parse<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = format!("invalid JSON: {}", e.into_inner());
        match missing_field(&message).or((path != "." && !path.is_empty()).then_some(path)) {
            Some(field) => ApiError::field(ErrorCode::InvalidJson, field, message),
            None => ApiError::invalid(ErrorCode::InvalidJson, message),
        }
    })?;
    de.end().map_err(|e| ApiError::invalid(ErrorCode::InvalidJson, format!("invalid JSON: {e}")))?;
    Ok(value)
}

/// serde reports a missing field at its parent's path; the field itself is more useful.
pub(crate) fn missing_field(message: &str) -> Option<String> {
    let rest = message.split("missing field `").nth(1)?;
    rest.split('`').next().map(str::to_owned)
}

/// A JSON object body read within [`MAX_JSON_BYTES`] (gzip accepted), with errors naming
/// the path of the bad field (`variants[1].allocation_percent`). Anything but an object is
/// refused, though serde's derived structs would also read an array of the fields in order.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let (parts, body): (Parts, Body) = req.into_parts();
        let bytes = read_body(&parts.headers, body, MAX_JSON_BYTES).await?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::invalid(ErrorCode::InvalidJson, "the body must be a JSON object"));
        }
        parse(&bytes).map(JsonBody)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Named {
        name: String,
        size: u32,
    }

    fn field(e: ApiError) -> Option<String> {
        match e {
            ApiError::Invalid { field, .. } => field,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parse_errors_name_the_field() {
        assert_eq!(field(parse::<Named>(br#"{"name": "a"}"#).expect_err("missing")), Some("size".into()));
        assert_eq!(field(parse::<Named>(br#"{"name": "a", "size": -1}"#).expect_err("neg")), Some("size".into()));
        assert_eq!(
            field(parse::<Vec<Named>>(br#"[{"name": 1, "size": 1}]"#).expect_err("type")),
            Some("[0].name".into())
        );
        assert!(parse::<Named>(br#"{"name": "a", "size": 1} x"#).is_err(), "trailing bytes");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413_plain_or_inflated() {
        let headers = HeaderMap::new();
        assert!(matches!(read_body(&headers, Body::from(vec![b'x'; 11]), 10).await, Err(ApiError::TooLarge(_))));
        assert_eq!(read_body(&headers, Body::from("0123456789"), 10).await.expect("fits").len(), 10);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &[b'a'; 4096]).expect("gzip");
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, "gzip".parse().expect("header"));
        let small = gz.finish().expect("gzip");
        assert!(small.len() < 100);
        assert!(matches!(read_body(&headers, Body::from(small.clone()), 1000).await, Err(ApiError::TooLarge(_))));
        assert_eq!(read_body(&headers, Body::from(small), 5000).await.expect("fits").len(), 4096);
        headers.insert(header::CONTENT_ENCODING, "br".parse().expect("header"));
        assert!(matches!(read_body(&headers, Body::from("x"), 10).await, Err(ApiError::UnsupportedMediaType(_))));
    }
}
