//! The UCMS blob store: the engine behind the plugin-facing `blobs` capability.
//!
//! [`Blobs`] stores named byte streams ("blobs") for each plugin. Its two halves:
//!
//! - **metadata** — key, size, content type, SHA-256, times and the backend object's name — is a row
//!   in the host database ([`ucms_db::Db`], SQLite or PostgreSQL), together with each plugin's usage.
//!   Listing by prefix, `head` and quotas are therefore fast and identical on every backend, and a
//!   replace or delete swaps the row and the usage in one transaction.
//! - **bytes** live in an [`ObjectBackend`]: [`FileBackend`] (files under `<data>/blobs`, confined
//!   with `cap-std`) or [`S3Backend`] (any S3-compatible store). Objects are named
//!   `{plugin}/{uuid}`, never after the user's key, so no key can reach outside the store.
//!
//! A put streams: [`Blobs::writer`] returns a [`BlobWriter`] that hashes and counts each chunk as it
//! goes to the backend (never holding the whole blob), enforces the per-blob limit and the plugin's
//! quota, and on [`BlobWriter::finish`] commits the object, then the row; the object a replaced row
//! pointed at is deleted after the commit. A writer that fails, is aborted or is dropped leaves no
//! row and no object. Reads stream through a [`BlobReader`], optionally over a [`ByteRange`].
//!
//! ```no_run
//! # async fn demo(db: ucms_db::Db) -> Result<(), ucms_blobs::BlobError> {
//! use std::sync::Arc;
//! use ucms_blobs::{Blobs, FileBackend, Limits};
//!
//! let backend = Arc::new(FileBackend::open(std::path::Path::new("data/blobs"))?);
//! let blobs = Blobs::new(db, backend, Limits::default());
//! let mut writer = blobs.writer("media", "images/logo.png", "image/png", Some(1 << 30), None).await?;
//! writer.write(b"\x89PNG...").await?;
//! let info = writer.finish().await?;
//! let (_, mut reader) = blobs.reader("media", &info.key, None).await?.expect("just stored");
//! while let Some(chunk) = reader.read(64 * 1024).await? {
//!     // send `chunk`
//! #   let _ = chunk;
//! }
//! # Ok(()) }
//! ```

mod backend;
mod error;
mod files;
mod meta;
mod s3;
mod validate;

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};

pub use backend::{ObjectBackend, ObjectStream, ObjectWrite};
pub use error::BlobError;
pub use files::FileBackend;
pub use s3::{DEFAULT_PART_SIZE, MAX_PARTS_IN_FLIGHT, MIN_PART_SIZE, S3Backend, S3Config};
pub use validate::{DEFAULT_CONTENT_TYPE, MAX_CONTENT_TYPE_BYTES, MAX_KEY_BYTES};

/// What the store knows about one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub key: String,
    pub size: u64,
    pub content_type: String,
    /// Lower-case hex SHA-256 of the whole blob.
    pub sha256: String,
    /// When the key was first stored; kept when the blob is replaced.
    pub created_at_ms: i64,
    /// When the current content was stored.
    pub updated_at_ms: i64,
}

/// A plugin's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub blobs: u64,
    pub bytes: u64,
}

/// Bytes `start..end` of a blob; `end` is exclusive, `None` means to the end, and an `end` past
/// the blob is clamped to its size. `start` may equal the size (an empty read) but not exceed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: Option<u64>,
}

/// Host-wide limits, applied on top of what each call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// No blob may be larger than this, whatever a plugin's own limit says. Default: 5 GiB.
    pub max_blob_bytes: u64,
    /// The most entries one `list` call returns. Default: 1000.
    pub max_list: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_blob_bytes: 5 << 30,
            max_list: 1000,
        }
    }
}

/// The blob store. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Blobs {
    inner: Arc<Inner>,
}

struct Inner {
    db: ucms_db::Db,
    backend: Arc<dyn ObjectBackend>,
    limits: Limits,
}

impl Blobs {
    /// `db` must have been migrated with the host's migrations (which include the `blobs` tables).
    pub fn new(db: ucms_db::Db, backend: Arc<dyn ObjectBackend>, limits: Limits) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                backend,
                limits,
            }),
        }
    }

    /// `files` or `s3`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// Starts storing `key` for `plugin`. `quota_bytes` is the plugin's total allowance (`None`: no
    /// quota) and `max_blob_bytes` its per-blob limit, capped by [`Limits::max_blob_bytes`]. An empty
    /// `content_type` means `application/octet-stream`. Nothing is visible until
    /// [`BlobWriter::finish`].
    pub async fn writer(
        &self,
        plugin: &str,
        key: &str,
        content_type: &str,
        quota_bytes: Option<u64>,
        max_blob_bytes: Option<u64>,
    ) -> Result<BlobWriter, BlobError> {
        validate::plugin(plugin)?;
        validate::key(key)?;
        let content_type = validate::content_type(content_type)?;
        let max_bytes = max_blob_bytes
            .unwrap_or(u64::MAX)
            .min(self.inner.limits.max_blob_bytes);
        let (quota_base, replaced_size) = match quota_bytes {
            Some(_) => meta::quota_base(&self.inner.db, plugin, key).await?,
            None => (0, 0),
        };
        let object = format!("{plugin}/{}", uuid::Uuid::now_v7().simple());
        let sink = self.inner.backend.begin_write(&object).await?;
        Ok(BlobWriter {
            inner: self.inner.clone(),
            plugin: plugin.to_string(),
            key: key.to_string(),
            content_type,
            object,
            sink: Some(sink),
            hasher: Sha256::new(),
            size: 0,
            max_bytes,
            quota: quota_bytes,
            quota_base,
            replaced_size,
            failed: None,
        })
    }

    /// The blob's info and a reader over `range` (the whole blob when `None`); `None` when the key
    /// does not exist.
    pub async fn reader(
        &self,
        plugin: &str,
        key: &str,
        range: Option<ByteRange>,
    ) -> Result<Option<(BlobInfo, BlobReader)>, BlobError> {
        validate::plugin(plugin)?;
        validate::key(key)?;
        // A second look covers a replace or delete between reading the row and opening its object.
        for attempt in 0..2 {
            let Some((info, object)) = meta::head(&self.inner.db, plugin, key).await? else {
                return Ok(None);
            };
            let (start, end) = validate::range(range, info.size)?;
            if start == end {
                return Ok(Some((info, BlobReader::empty())));
            }
            match self.inner.backend.read(&object, start..end).await {
                Ok(stream) => {
                    return Ok(Some((info, BlobReader::new(stream, end - start, object))));
                }
                Err(BlobError::NotFound) if attempt == 0 => continue,
                Err(BlobError::NotFound) => {
                    tracing::error!(
                        plugin,
                        key,
                        object,
                        backend = self.inner.backend.name(),
                        "a blob's metadata points at an object the backend does not have"
                    );
                    return Err(BlobError::NotFound);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    pub async fn head(&self, plugin: &str, key: &str) -> Result<Option<BlobInfo>, BlobError> {
        validate::plugin(plugin)?;
        validate::key(key)?;
        Ok(meta::head(&self.inner.db, plugin, key)
            .await?
            .map(|(info, _)| info))
    }

    /// Deletes the blob; `false` when there was none. The object goes after the row is gone.
    pub async fn delete(&self, plugin: &str, key: &str) -> Result<bool, BlobError> {
        validate::plugin(plugin)?;
        validate::key(key)?;
        let inner = self.inner.clone();
        let (plugin, key) = (plugin.to_string(), key.to_string());
        // Spawned so that a caller giving up half way cannot leave the object behind.
        detached(async move {
            let Some(object) = meta::delete(&inner.db, &plugin, &key).await? else {
                return Ok(false);
            };
            inner.delete_object(&object).await;
            Ok(true)
        })
        .await
    }

    /// Up to `limit` blobs (at least 1, at most [`Limits::max_list`]) whose keys start with `prefix`,
    /// in ascending key order (bytewise), after `cursor`; plus the cursor of the next page, if any.
    pub async fn list(
        &self,
        plugin: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<BlobInfo>, Option<String>), BlobError> {
        validate::plugin(plugin)?;
        let limit = limit.clamp(1, self.inner.limits.max_list.max(1));
        let cursor = cursor.map(validate::decode_cursor).transpose()?;
        // Keys have no control characters (validate::key), so a prefix with one matches nothing;
        // the database is not asked (PostgreSQL refuses a NUL in text; found by the host fuzzer).
        if prefix.chars().any(char::is_control) {
            return Ok((Vec::new(), None));
        }
        // Keys with the prefix sort together, from the prefix itself; a cursor before the prefix
        // would list keys outside it.
        let (start, after) = match &cursor {
            Some(c) if c.as_str() >= prefix => (c.as_str(), true),
            _ => (prefix, false),
        };
        let rows = meta::list(&self.inner.db, plugin, start, after, limit + 1).await?;
        let mut page: Vec<BlobInfo> = rows
            .into_iter()
            .take_while(|info| info.key.starts_with(prefix))
            .collect();
        let next = if page.len() > limit as usize {
            page.truncate(limit as usize);
            page.last().map(|info| validate::encode_cursor(&info.key))
        } else {
            None
        };
        Ok((page, next))
    }

    pub async fn usage(&self, plugin: &str) -> Result<Usage, BlobError> {
        validate::plugin(plugin)?;
        meta::usage(&self.inner.db, plugin).await
    }

    /// Deletes every blob of `plugin` (on uninstall): the rows and usage in one transaction, then
    /// every object in the plugin's namespace, including any orphan a crash left there. Running it
    /// again finishes a deletion that failed half way.
    pub async fn drop_plugin(&self, plugin: &str) -> Result<(), BlobError> {
        validate::plugin(plugin)?;
        let inner = self.inner.clone();
        let plugin = plugin.to_string();
        detached(async move {
            meta::drop_plugin(&inner.db, &plugin).await?;
            inner.backend.delete_all(&plugin).await
        })
        .await
    }
}

impl Inner {
    /// Commits the object, then its row; cleans up whichever half is left over.
    async fn commit(
        &self,
        sink: Box<dyn ObjectWrite>,
        blob: meta::NewBlob,
    ) -> Result<BlobInfo, BlobError> {
        sink.commit().await?;
        match meta::commit_put(&self.db, &blob, ucms_db::now_ms()).await {
            Ok((info, replaced)) => {
                if let Some(old) = replaced {
                    self.delete_object(&old).await;
                }
                Ok(info)
            }
            Err(e) => {
                // A database error may hide a commit that went through: delete the object only if
                // no row points at it.
                let definitely_not_stored = !matches!(e, BlobError::Unavailable(_));
                if definitely_not_stored {
                    self.delete_object(&blob.object).await;
                } else {
                    match meta::is_referenced(&self.db, &blob.object).await {
                        Ok(false) => self.delete_object(&blob.object).await,
                        Ok(true) => {
                            tracing::warn!(object = %blob.object, "a blob commit reported an error but was stored");
                        }
                        Err(_) => tracing::warn!(
                            object = %blob.object,
                            "cannot tell whether a blob commit went through; its object is kept"
                        ),
                    }
                }
                Err(e)
            }
        }
    }

    async fn delete_object(&self, object: &str) {
        if let Err(e) = self.backend.delete(object).await {
            tracing::warn!(object, error = %e, backend = self.backend.name(), "cannot delete a blob object; it is left as an orphan");
        }
    }
}

/// Runs `work` as its own task and waits for it: dropping the caller's future does not stop it, so
/// a metadata change and its object cleanup always happen together.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, BlobError>> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::spawn(work).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a blob store task failed");
        Err(BlobError::Unavailable(
            "the blob store failed internally; try again (the host log has the detail)".into(),
        ))
    })
}

/// A blob being stored. Write chunks, then [`finish`](Self::finish); [`abort`](Self::abort) or
/// dropping it discards what was written. After an error every call returns that error again.
pub struct BlobWriter {
    inner: Arc<Inner>,
    plugin: String,
    key: String,
    content_type: String,
    object: String,
    /// `None` once the backend write was committed or discarded.
    sink: Option<Box<dyn ObjectWrite>>,
    hasher: Sha256,
    size: u64,
    max_bytes: u64,
    quota: Option<u64>,
    /// The plugin's bytes in use without this key, when the writer started.
    quota_base: u64,
    replaced_size: u64,
    failed: Option<BlobError>,
}

impl BlobWriter {
    /// Appends `chunk`: hashed, counted and sent to the backend.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if chunk.is_empty() {
            return Ok(());
        }
        let size = self.size.saturating_add(chunk.len() as u64);
        if size > self.max_bytes {
            let e = BlobError::TooLarge(format!(
                "the blob is larger than the limit of {} bytes per blob: store smaller blobs, or \
                 ask the operator to raise the limit",
                self.max_bytes
            ));
            return self.fail(e).await;
        }
        // Early, advisory check (the exact one is in the commit transaction): stop streaming as
        // soon as the blob cannot fit.
        if let Some(quota) = self.quota {
            let total = self.quota_base.saturating_add(size);
            if total > quota && size > self.replaced_size {
                let e = meta::quota_exceeded(&self.plugin, total, quota);
                return self.fail(e).await;
            }
        }
        let Some(sink) = self.sink.as_mut() else {
            return Err(closed());
        };
        self.hasher.update(chunk);
        self.size = size;
        if let Err(e) = sink.write(Bytes::copy_from_slice(chunk)).await {
            return self.fail(e).await;
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.size
    }

    /// Stores the blob: the object is committed, then the metadata row and usage in one
    /// transaction (where the quota is checked exactly), then a replaced object is deleted.
    pub async fn finish(mut self) -> Result<BlobInfo, BlobError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let sink = self.sink.take().ok_or_else(closed)?;
        let blob = meta::NewBlob {
            plugin: self.plugin,
            key: self.key,
            object: self.object,
            size: self.size,
            content_type: self.content_type,
            sha256: hex::encode(self.hasher.finalize()),
            quota: self.quota,
        };
        let inner = self.inner;
        detached(async move { inner.commit(sink, blob).await }).await
    }

    /// Discards what was written; nothing is stored.
    pub async fn abort(mut self) {
        if let Some(sink) = self.sink.take() {
            sink.abort().await;
        }
    }

    async fn fail(&mut self, error: BlobError) -> Result<(), BlobError> {
        if let Some(sink) = self.sink.take() {
            sink.abort().await;
        }
        self.failed = Some(error.clone());
        Err(error)
    }
}

fn closed() -> BlobError {
    BlobError::Invalid("this blob writer is already finished or aborted; start a new one".into())
}

/// A blob's bytes (or a range of them), read in chunks.
pub struct BlobReader {
    stream: Option<ObjectStream>,
    /// Pulled from the stream but not yet returned.
    pending: Bytes,
    /// Still to pull from the stream.
    remaining: u64,
    len: u64,
    object: String,
}

impl BlobReader {
    fn new(stream: ObjectStream, len: u64, object: String) -> Self {
        Self {
            stream: Some(stream),
            pending: Bytes::new(),
            remaining: len,
            len,
            object,
        }
    }

    fn empty() -> Self {
        Self {
            stream: None,
            pending: Bytes::new(),
            remaining: 0,
            len: 0,
            object: String::new(),
        }
    }

    /// How many bytes this reader yields in all (the range's length): for `Content-Length`.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next chunk, at most `max` bytes (at least 1); `None` at the end.
    pub async fn read(&mut self, max: usize) -> Result<Option<Bytes>, BlobError> {
        let max = max.max(1);
        loop {
            if !self.pending.is_empty() {
                let n = max.min(self.pending.len());
                return Ok(Some(self.pending.split_to(n)));
            }
            if self.remaining == 0 {
                self.stream = None;
                return Ok(None);
            }
            let Some(stream) = self.stream.as_mut() else {
                return Ok(None);
            };
            match stream.next().await {
                Some(Ok(mut chunk)) => {
                    if chunk.len() as u64 > self.remaining {
                        chunk.truncate(self.remaining as usize);
                    }
                    self.remaining -= chunk.len() as u64;
                    self.pending = chunk;
                }
                Some(Err(e)) => {
                    self.stream = None;
                    return Err(e);
                }
                None => {
                    self.stream = None;
                    tracing::error!(object = %self.object, missing = self.remaining, "a blob object ended early");
                    return Err(BlobError::Unavailable(
                        "the stored blob is shorter than its metadata says; it may be damaged \
                         (the host log has the detail)"
                            .into(),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host keeps writers and readers in wasmtime resource tables and awaits these futures
    /// from async host functions: all must be `Send + 'static`.
    #[allow(dead_code)]
    fn handles_and_futures_are_send(blobs: Blobs, mut w: BlobWriter, mut r: BlobReader) {
        fn send<T: Send + 'static>(_: &T) {}
        fn send_future<F: Future + Send>(_: F) {}
        send(&blobs);
        send(&w);
        send(&r);
        send_future(blobs.writer("p", "k", "", None, None));
        send_future(blobs.reader("p", "k", None));
        send_future(blobs.head("p", "k"));
        send_future(blobs.delete("p", "k"));
        send_future(blobs.list("p", "", None, 10));
        send_future(blobs.usage("p"));
        send_future(blobs.drop_plugin("p"));
        send_future(w.write(b""));
        send_future(r.read(1));
        send_future(w.finish());
    }
}
