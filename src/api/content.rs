//! Raw content answers: from the row or streamed from the object store (no whole artifact in
//! memory), with `ETag` (the content's SHA-256), `If-None-Match` (304) and single byte ranges
//! (`Range`, `If-Range`: 206 or 416; several ranges are answered with the whole content, which
//! RFC 9110 allows).

use std::ops::RangeInclusive;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};

use super::ApiState;
use super::error::ApiError;
use super::read::{StorageReadError, VersionView};

/// Size of the frames content kept in a row is sent in.
const CONTENT_CHUNK: usize = 64 * 1024;

/// What part of the content a request asked for, decided from its headers alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// The client's copy is current: 304.
    NotModified,
    /// Everything: 200.
    Whole,
    /// One byte range, inclusive: 206.
    Part(RangeInclusive<u64>),
    /// A range outside the content: 416.
    Unsatisfiable,
}

/// `"<sha256>"`, the entity tag of a content.
fn etag_of(sha256: &str) -> String {
    format!("\"{sha256}\"")
}

/// True when an `If-None-Match` value lists `etag` (weak comparison) or is `*`.
fn matches_any(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// What `headers` ask of a content of `size` bytes whose tag is `etag` (pure).
pub(crate) fn wanted(headers: &HeaderMap, etag: &str, size: u64) -> Wanted {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if text(header::IF_NONE_MATCH).is_some_and(|h| matches_any(h, etag)) {
        return Wanted::NotModified;
    }
    let Some(range) = text(header::RANGE) else {
        return Wanted::Whole;
    };
    // If-Range with another tag (or a date, which we never send): the whole, current content.
    if text(header::IF_RANGE).is_some_and(|v| v.trim() != etag) {
        return Wanted::Whole;
    }
    let parsed = match http_range_header::parse_range_header(range) {
        Ok(parsed) => parsed,
        Err(http_range_header::RangeUnsatisfiableError::Unsatisfiable) => {
            return Wanted::Unsatisfiable;
        }
        // Malformed or abusive: ignored, as RFC 9110 allows.
        Err(_) => return Wanted::Whole,
    };
    match parsed.validate(size) {
        Ok(ranges) if ranges.len() == 1 => Wanted::Part(ranges[0].clone()),
        Ok(_) => Wanted::Whole,
        Err(http_range_header::RangeUnsatisfiableError::Unsatisfiable) => Wanted::Unsatisfiable,
        Err(_) => Wanted::Whole,
    }
}

/// The raw content of a version with its stored content type, as `headers` ask for it.
pub(crate) async fn content_response(
    state: &ApiState,
    mut v: VersionView,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if v.content.is_none() && v.content_object.is_none() {
        return Err(ApiError::Gone(format!(
            "{}/{} version {} is a tombstone",
            v.row.product_id, v.row.artifact_id, v.row.version
        )));
    }
    let etag = etag_of(&v.row.content_sha256);
    let size = u64::try_from(v.row.content_size).unwrap_or(0);
    let (status, range) = match wanted(headers, &etag, size) {
        Wanted::NotModified => {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            describe(response.headers_mut(), &v, &etag);
            return Ok(response);
        }
        Wanted::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable(size)),
        Wanted::Whole => (StatusCode::OK, None),
        Wanted::Part(r) => (StatusCode::PARTIAL_CONTENT, Some(r)),
    };
    let length = range.as_ref().map_or(size, |r| r.end() - r.start() + 1);
    let body = match (v.content.take(), &v.content_object) {
        (Some(content), _) => row_body(content, range.clone()),
        (None, Some(key)) => object_body(state, key, range.clone()).await?,
        (None, None) => Body::empty(),
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    describe(h, &v, &etag);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(r) = range
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {}-{}/{size}", r.start(), r.end()))
    {
        h.insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// The headers every content answer carries, 304s included.
fn describe(h: &mut HeaderMap, v: &VersionView, etag: &str) {
    let content_type = HeaderValue::from_str(&v.row.content_type)
        .ok()
        .filter(|_| v.row.content_type.contains('/'))
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(etag) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, etag);
    }
    if let Ok(version) = HeaderValue::from_str(&v.row.version.to_string()) {
        h.insert("x-bucket-version", version);
    }
}

/// Content kept in the row, in frames of 64 KiB.
fn row_body(content: Vec<u8>, range: Option<RangeInclusive<u64>>) -> Body {
    let content = bytes::Bytes::from(content);
    let (start, end) = match range {
        Some(r) => (*r.start() as usize, *r.end() as usize + 1),
        None => (0, content.len()),
    };
    let content = content.slice(start.min(content.len())..end.min(content.len()));
    let frames = (0..content.len().div_ceil(CONTENT_CHUNK)).map(move |i| {
        let end = ((i + 1) * CONTENT_CHUNK).min(content.len());
        Ok::<_, std::convert::Infallible>(content.slice(i * CONTENT_CHUNK..end))
    });
    Body::from_stream(futures::stream::iter(frames))
}

/// The object store a version's content is in; 503 when the API was started without one.
fn objects_of(state: &ApiState) -> Result<&crate::sink::store::ContentObjects, ApiError> {
    state.objects.as_ref().ok_or_else(|| {
        ApiError::Unavailable(StorageReadError::Config(
            "content is in an object store; start the API with --content-store".into(),
        ))
    })
}

/// Content in the object store, streamed as the store sends it.
async fn object_body(
    state: &ApiState,
    key: &str,
    range: Option<RangeInclusive<u64>>,
) -> Result<Body, ApiError> {
    let objects = objects_of(state)?;
    let path = object_store::path::Path::from(key);
    let result = objects
        .get(&path, range.map(|r| *r.start()..*r.end() + 1))
        .await
        .map_err(StorageReadError::from)?;
    let stream = result.into_stream().map_err(|e| {
        tracing::warn!(error = %e, "object stream failed mid-answer");
        std::io::Error::other(e)
    });
    Ok(Body::from_stream(stream.boxed()))
}

/// The version with its content in `content` (JSON answers embed it as base64), read from the
/// object store when it is there: whole, which the 16 MiB content limit bounds.
pub(crate) async fn with_content_loaded(
    state: &ApiState,
    mut v: VersionView,
) -> Result<VersionView, ApiError> {
    if let (None, Some(key)) = (&v.content, &v.content_object) {
        let objects = objects_of(state)?;
        let path = object_store::path::Path::from(key.as_str());
        let bytes = objects
            .read_all(&path)
            .await
            .map_err(StorageReadError::from)?;
        v.content = Some(Vec::from(bytes));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn conditional_and_range_requests_get_the_documented_answers() {
        let tag = "\"abc\"";
        assert_eq!(wanted(&headers(&[]), tag, 10), Wanted::Whole);
        for inm in ["\"abc\"", "W/\"abc\"", "\"x\", \"abc\"", "*"] {
            let h = headers(&[(header::IF_NONE_MATCH, inm)]);
            assert_eq!(wanted(&h, tag, 10), Wanted::NotModified, "{inm}");
        }
        let other = headers(&[(header::IF_NONE_MATCH, "\"other\"")]);
        assert_eq!(wanted(&other, tag, 10), Wanted::Whole);
        let cases = [
            ("bytes=0-3", Wanted::Part(0..=3)),
            ("bytes=5-", Wanted::Part(5..=9)),
            ("bytes=-2", Wanted::Part(8..=9)),
            ("bytes=8-100", Wanted::Part(8..=9)),
            ("bytes=10-12", Wanted::Unsatisfiable),
            ("bytes=0-1,4-5", Wanted::Whole),
            ("lines=0-1", Wanted::Whole),
            ("bytes=3-1", Wanted::Whole),
        ];
        for (range, want) in cases {
            let h = headers(&[(header::RANGE, range)]);
            assert_eq!(wanted(&h, tag, 10), want, "{range}");
        }
        let stale = headers(&[(header::RANGE, "bytes=0-3"), (header::IF_RANGE, "\"old\"")]);
        assert_eq!(wanted(&stale, tag, 10), Wanted::Whole);
        let fresh = headers(&[(header::RANGE, "bytes=0-3"), (header::IF_RANGE, tag)]);
        assert_eq!(wanted(&fresh, tag, 10), Wanted::Part(0..=3));
    }
}
