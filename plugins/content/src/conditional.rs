//! Conditional reads: an ETag on every read, `If-None-Match` answered with 304, and the
//! Cache-Control of public (anonymous, published) reads from the `cache-max-age` setting. Used by
//! the delivery API and the sitemap.

use ucms_sdk::{Request, Response, config};

use crate::store;

/// `public, max-age=…` (the `cache-max-age` setting) or `private, no-store`.
pub fn cache_control(public: bool) -> String {
    if public {
        let age: i64 = config::get("cache-max-age").ok().flatten().unwrap_or(60);
        format!("public, max-age={age}")
    } else {
        "private, no-store".to_string()
    }
}

/// A read of `bytes` (of `content_type`) with an ETag, `If-None-Match` → 304, and `cache` as
/// its Cache-Control.
pub fn cached_bytes(req: &Request, bytes: Vec<u8>, content_type: &str, cache: &str) -> Response {
    let etag = format!("\"{}\"", store::hash(&bytes));
    let matches = req.header("if-none-match").is_some_and(|h| {
        h.split(',')
            .any(|t| t.trim().trim_start_matches("W/") == etag)
    });
    let response = if matches {
        Response::new(304)
    } else {
        Response::new(200)
            .with_header("content-type", content_type)
            .with_body(bytes)
    };
    response
        .with_header("etag", &etag)
        .with_header("cache-control", cache)
        .with_header("vary", "authorization, cookie")
}
