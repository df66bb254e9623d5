//! The plugin's private blob store: files, images, exports. Requires the `blobs` capability
//! (`[capabilities] blobs = {}`, or `blobs = { max-mib = 64, max-blob-mib = 16 }` to ask for more).
//!
//! Bodies never cross into the host as one value: [`put`] and [`Writer`] send chunks of at most
//! [`CHUNK`] bytes, and [`get`] and [`Reader`] read them back the same way. Each blob records its
//! size, content type and SHA-256 ([`BlobInfo`]). Nothing written is visible until the writer
//! finishes; a writer dropped unfinished discards what it wrote.
//!
//! ```no_run
//! use ucms_sdk::blobs;
//!
//! # fn main() -> ucms_sdk::Result<()> {
//! let info = blobs::put("exports/2024.csv", "text/csv", b"id,total\n1,42\n")?;
//! assert_eq!(info.size, 14);
//!
//! let bytes = blobs::get("exports/2024.csv")?.expect("just written");
//! let first_line = blobs::get_range("exports/2024.csv", 0, Some(9))?;
//!
//! for blob in blobs::list("exports/") {
//!     let blob = blob?;
//!     println!("{} ({} bytes)", blob.key, blob.size);
//! }
//! blobs::delete("exports/2024.csv")?;
//! # let _ = (bytes, first_line);
//! # Ok(())
//! # }
//! ```
//!
//! Failures convert into [`Error`]: a missing blob read through [`Reader`] is a 404, an
//! unsatisfiable range a 416, a blob over the size limit a 413, the plugin's quota a 507, an
//! outage a 503.

use std::io;

use serde::{Deserialize, Serialize};

use crate::bindings::ucms::host::{blobs as raw, types};
use crate::{Error, Request, Response, Result};

/// The largest chunk this module sends or asks for in one host call: 1 MiB.
pub const CHUNK: usize = 1024 * 1024;

/// What the store holds for one blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobInfo {
    pub key: String,
    /// In bytes.
    pub size: u64,
    pub content_type: String,
    /// Lower-case hex.
    pub sha256: String,
    /// Unix times in milliseconds.
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl BlobInfo {
    pub(crate) fn from_raw(raw: types::BlobInfo) -> Self {
        Self {
            key: raw.key,
            size: raw.size,
            content_type: raw.content_type,
            sha256: raw.sha256,
            created_at_ms: raw.created_at_ms,
            updated_at_ms: raw.updated_at_ms,
        }
    }

    /// A strong HTTP entity tag for the blob's content: its SHA-256 in quotes.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.sha256)
    }
}

impl From<raw::BlobError> for Error {
    fn from(error: raw::BlobError) -> Self {
        match error {
            raw::BlobError::Invalid(m) => Error::new(400, "blob_invalid", m),
            raw::BlobError::NotFound(m) => Error::new(404, "blob_not_found", m),
            raw::BlobError::RangeNotSatisfiable(m) => Error::new(416, "range_not_satisfiable", m),
            raw::BlobError::TooLarge(m) => Error::new(413, "blob_too_large", m),
            raw::BlobError::QuotaExceeded(m) => Error::new(507, "blobs_quota_exceeded", m),
            raw::BlobError::Closed => Error::new(
                500,
                "blob_closed",
                "the blob writer or reader was already finished or failed",
            ),
            raw::BlobError::Unavailable(m) => Error::new(503, "blobs_unavailable", m),
        }
    }
}

/// Stores `bytes` at `key` (replacing any blob there) in chunks of at most [`CHUNK`] bytes, and
/// returns what was stored.
pub fn put(key: &str, content_type: &str, bytes: &[u8]) -> Result<BlobInfo> {
    let mut writer = Writer::new(key, content_type)?;
    writer.write(bytes)?;
    writer.finish()
}

/// Stores everything `reader` yields at `key`, [`CHUNK`] bytes at a time, without holding the
/// whole body in memory.
///
/// ```no_run
/// # fn main() -> ucms_sdk::Result<()> {
/// let csv = std::io::Cursor::new(b"id,total\n".to_vec());
/// ucms_sdk::blobs::put_reader("exports/today.csv", "text/csv", csv)?;
/// # Ok(())
/// # }
/// ```
pub fn put_reader(key: &str, content_type: &str, mut reader: impl io::Read) -> Result<BlobInfo> {
    let mut writer = Writer::new(key, content_type)?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::internal(format!(
                    "reading the body of blob '{key}' failed: {e}"
                )));
            }
        };
        writer.write(&buf[..n])?;
    }
    writer.finish()
}

/// A blob being written. Nothing is visible until [`Writer::finish`]; dropping it unfinished
/// discards what it wrote.
///
/// It also implements [`std::io::Write`], so `serde_json::to_writer` or `std::io::copy` can
/// write into it.
///
/// ```no_run
/// use ucms_sdk::blobs::Writer;
///
/// # fn main() -> ucms_sdk::Result<()> {
/// let mut out = Writer::new("exports/all.ndjson", "application/x-ndjson")?;
/// for n in 0..3 {
///     out.write(format!("{{\"n\":{n}}}\n").as_bytes())?;
/// }
/// let info = out.finish()?;
/// # let _ = info;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Writer {
    inner: raw::Writer,
    key: String,
}

impl Writer {
    /// Starts writing the blob at `key` (UTF-8, 1 to 1024 bytes).
    pub fn new(key: &str, content_type: &str) -> Result<Self> {
        Ok(Self {
            inner: raw::put(key, content_type)?,
            key: key.to_string(),
        })
    }

    /// The key being written.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Appends `bytes`, in host calls of at most [`CHUNK`] bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        for chunk in bytes.chunks(CHUNK) {
            self.inner.write(chunk)?;
        }
        Ok(())
    }

    /// Stores the blob under its key, replacing any previous one, and returns what was stored.
    pub fn finish(self) -> Result<BlobInfo> {
        Ok(BlobInfo::from_raw(self.inner.finish()?))
    }
}

impl io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK);
        Writer::write(self, &buf[..n]).map_err(io_error)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The blob at `key`, read [`CHUNK`] bytes at a time; `None` when there is none.
pub fn get(key: &str) -> Result<Option<Vec<u8>>> {
    read_all(raw::get(key, None)?)
}

/// Bytes `start` up to (not including) `end` of the blob at `key` (`end: None`: to its end);
/// `None` when there is no such blob. A range outside the blob is a 416 error.
pub fn get_range(key: &str, start: u64, end: Option<u64>) -> Result<Option<Vec<u8>>> {
    read_all(raw::get(key, Some(raw::ByteRange { start, end }))?)
}

fn read_all(reader: Option<raw::Reader>) -> Result<Option<Vec<u8>>> {
    let Some(reader) = reader else {
        return Ok(None);
    };
    let size = usize::try_from(reader.info().size).unwrap_or(usize::MAX);
    // `info` describes the whole blob; a range read may be shorter.
    let mut out = Vec::with_capacity(size.min(16 * CHUNK));
    while let Some(chunk) = reader.read(CHUNK as u32)? {
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// A reader over the blob at `key`; `None` when there is none.
///
/// ```no_run
/// use std::io::{BufRead, BufReader};
///
/// # fn main() -> ucms_sdk::Result<()> {
/// if let Some(reader) = ucms_sdk::blobs::reader("imports/users.csv")? {
///     for line in BufReader::new(reader).lines() {
///         let line = line.map_err(|e| ucms_sdk::Error::internal(e.to_string()))?;
///         // ...
/// #       let _ = line;
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub fn reader(key: &str) -> Result<Option<Reader>> {
    Ok(raw::get(key, None)?.map(Reader::new))
}

/// A reader over bytes `start` up to (not including) `end` of the blob at `key`.
pub fn reader_range(key: &str, start: u64, end: Option<u64>) -> Result<Option<Reader>> {
    Ok(raw::get(key, Some(raw::ByteRange { start, end }))?.map(Reader::new))
}

/// A blob being read; implements [`std::io::Read`]. Errors from the host come out as
/// [`std::io::Error`]s wrapping the SDK's [`Error`].
#[derive(Debug)]
pub struct Reader {
    inner: raw::Reader,
    info: BlobInfo,
    buffer: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Reader {
    fn new(inner: raw::Reader) -> Self {
        let info = BlobInfo::from_raw(inner.info());
        Self {
            inner,
            info,
            buffer: Vec::new(),
            pos: 0,
            done: false,
        }
    }

    /// The blob being read (its whole size, even when reading a range).
    pub fn info(&self) -> &BlobInfo {
        &self.info
    }

    /// The next chunk of at most `max` bytes (capped at [`CHUNK`]); `None` at the end.
    pub fn read_chunk(&mut self, max: usize) -> Result<Option<Vec<u8>>> {
        if self.pos < self.buffer.len() {
            let end = self.buffer.len().min(self.pos + max.max(1));
            let out = self.buffer[self.pos..end].to_vec();
            self.pos = end;
            return Ok(Some(out));
        }
        if self.done {
            return Ok(None);
        }
        let chunk = self.inner.read(max.clamp(1, CHUNK) as u32)?;
        if chunk.is_none() {
            self.done = true;
        }
        Ok(chunk)
    }
}

impl io::Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pos >= self.buffer.len() {
            if self.done {
                return Ok(0);
            }
            // Ask for big chunks even when the caller reads in small ones: a host call costs
            // more than a copy.
            let want = buf.len().clamp(64 * 1024, CHUNK) as u32;
            match self.inner.read(want).map_err(|e| io_error(e.into()))? {
                Some(chunk) => {
                    self.buffer = chunk;
                    self.pos = 0;
                }
                None => self.done = true,
            }
        }
        let n = buf.len().min(self.buffer.len() - self.pos);
        buf[..n].copy_from_slice(&self.buffer[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn io_error(error: Error) -> io::Error {
    io::Error::other(error)
}

/// What is stored at `key`, without reading it.
pub fn head(key: &str) -> Result<Option<BlobInfo>> {
    Ok(raw::head(key)?.map(BlobInfo::from_raw))
}

/// Removes the blob at `key`; true when there was one.
pub fn delete(key: &str) -> Result<bool> {
    Ok(raw::delete(key)?)
}

/// One page of blobs whose key starts with a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobPage {
    pub blobs: Vec<BlobInfo>,
    /// Pass back to [`list_page`] for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// One page of at most `limit` (capped at 1000) blobs whose key starts with `prefix`, in key
/// order, after `cursor`.
pub fn list_page(prefix: &str, cursor: Option<&str>, limit: u32) -> Result<BlobPage> {
    let page = raw::list(prefix, cursor, limit)?;
    Ok(BlobPage {
        blobs: page.blobs.into_iter().map(BlobInfo::from_raw).collect(),
        next_cursor: page.next_cursor,
    })
}

/// Every blob whose key starts with `prefix`, in key order, fetched a page at a time as the
/// iterator advances. After an error the iterator ends.
pub fn list(prefix: &str) -> List {
    List {
        prefix: prefix.to_string(),
        cursor: None,
        page: Vec::new().into_iter(),
        finished: false,
    }
}

/// The iterator [`list`] returns.
#[derive(Debug)]
pub struct List {
    prefix: String,
    cursor: Option<String>,
    page: std::vec::IntoIter<BlobInfo>,
    finished: bool,
}

impl Iterator for List {
    type Item = Result<BlobInfo>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(info) = self.page.next() {
                return Some(Ok(info));
            }
            if self.finished {
                return None;
            }
            match list_page(&self.prefix, self.cursor.as_deref(), 1000) {
                Ok(page) => {
                    self.finished = page.next_cursor.is_none();
                    self.cursor = page.next_cursor;
                    self.page = page.blobs.into_iter();
                }
                Err(error) => {
                    self.finished = true;
                    return Some(Err(error));
                }
            }
        }
    }
}

impl Response {
    /// A 200 response with the blob at `key` as its body, its content type, `etag` and
    /// `accept-ranges`; a 404 error when there is no such blob.
    ///
    /// The bytes don't pass through the plugin: the response names the blob (header
    /// [`BLOB_HEADER`]) and the host streams it to the client, so any size can be served.
    pub fn blob(key: &str) -> Result<Response> {
        let info = head(key)?.ok_or_else(|| no_blob(key))?;
        Ok(blob_response(200, &info))
    }

    /// Like [`Response::blob`], but answering the request's conditional and range headers: a
    /// matching `If-None-Match` gives 304, and `Range: bytes=a-b` (one range; also `a-` and `-n`)
    /// gives 206 with `content-range`, or 416 when it doesn't fit the blob.
    ///
    /// ```no_run
    /// use ucms_sdk::{Request, Response, Result};
    ///
    /// fn download(req: Request) -> Result<Response> {
    ///     let key = format!("files/{}", req.require_param("name")?);
    ///     Response::blob_for(&req, &key)
    /// }
    /// ```
    pub fn blob_for(request: &Request, key: &str) -> Result<Response> {
        let info = head(key)?.ok_or_else(|| no_blob(key))?;
        if let Some(tags) = request.header("if-none-match")
            && tags
                .split(',')
                .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == info.etag())
        {
            return Ok(Response::new(304)
                .with_header("etag", &info.etag())
                .with_header("accept-ranges", "bytes"));
        }
        let range = match request.header("range") {
            None => None,
            Some(header) => match parse_range(header, info.size) {
                RangeSpec::Ignore => None,
                RangeSpec::Unsatisfiable => {
                    return Ok(Response::from(Error::new(
                        416,
                        "range_not_satisfiable",
                        format!("the blob has {} bytes; '{header}' is outside it", info.size),
                    ))
                    .with_header("content-range", &format!("bytes */{}", info.size)));
                }
                RangeSpec::Bytes(start, end) => Some((start, end)),
            },
        };
        match range {
            None => Ok(blob_response(200, &info)),
            Some((start, end)) => Ok(blob_response(206, &info).with_header(
                "content-range",
                &format!("bytes {start}-{}/{}", end - 1, info.size),
            )),
        }
    }
}

fn no_blob(key: &str) -> Error {
    Error::new(404, "blob_not_found", format!("there is no blob '{key}'"))
}

/// A response the host fills from the blob: `x-ucms-blob` names it (percent-encoded) and the
/// host streams its bytes to the client — the whole blob, or the `content-range` of a 206 — so a
/// download is never limited by the response size a plugin may return.
fn blob_response(status: u16, info: &BlobInfo) -> Response {
    let content_type = if info.content_type.is_empty() {
        "application/octet-stream"
    } else {
        &info.content_type
    };
    Response::new(status)
        .with_header("content-type", content_type)
        .with_header("etag", &info.etag())
        .with_header("accept-ranges", "bytes")
        .with_header(BLOB_HEADER, &percent_encode(&info.key))
}

/// The response header that asks the host to stream a blob as the body.
pub const BLOB_HEADER: &str = "x-ucms-blob";

/// Percent-encodes every byte that is not visible ASCII (and `%` itself), for a header value.
fn percent_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// Not a single byte range we understand: serve the whole blob, as RFC 9110 allows.
    Ignore,
    Unsatisfiable,
    /// Start and exclusive end.
    Bytes(u64, u64),
}

fn parse_range(header: &str, size: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match parse(last) {
            Some(0) => RangeSpec::Unsatisfiable,
            Some(n) if size > 0 => RangeSpec::Bytes(size.saturating_sub(n), size),
            Some(_) => RangeSpec::Unsatisfiable,
            None => RangeSpec::Ignore,
        },
        // `a-`: from a to the end.
        (false, true) => match parse(first) {
            Some(a) if a < size => RangeSpec::Bytes(a, size),
            Some(_) => RangeSpec::Unsatisfiable,
            None => RangeSpec::Ignore,
        },
        // `a-b`, both inclusive.
        (false, false) => match (parse(first), parse(last)) {
            (Some(a), Some(b)) if a <= b => {
                if a < size {
                    RangeSpec::Bytes(a, b.saturating_add(1).min(size))
                } else {
                    RangeSpec::Unsatisfiable
                }
            }
            _ => RangeSpec::Ignore,
        },
        (true, true) => RangeSpec::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::{RangeSpec, parse_range};

    #[test]
    fn byte_ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Bytes(0, 10));
        assert_eq!(parse_range("bytes=90-200", 100), RangeSpec::Bytes(90, 100));
        assert_eq!(parse_range("bytes=10-", 100), RangeSpec::Bytes(10, 100));
        assert_eq!(parse_range("bytes=-10", 100), RangeSpec::Bytes(90, 100));
        assert_eq!(parse_range("bytes=-500", 100), RangeSpec::Bytes(0, 100));
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Ignore);
    }
}
