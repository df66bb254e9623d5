//! The object backend trait: where blob bytes live.
//!
//! A backend stores opaque objects under names the blob store generates (`{plugin}/{uuid}`, never a
//! user's key). It knows nothing of keys, sizes, hashes or quotas: those are metadata rows in the host
//! database, which is what makes listing, `head` and quotas identical on every backend.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::BlobError;

/// A stream of an object's bytes, in chunks of the backend's choosing.
pub type ObjectStream = BoxStream<'static, Result<Bytes, BlobError>>;

/// Where blob bytes live: local files ([`crate::FileBackend`]) or S3 ([`crate::S3Backend`]).
#[async_trait]
pub trait ObjectBackend: Send + Sync + 'static {
    /// `files` or `s3`, for logs and metrics.
    fn name(&self) -> &'static str;

    /// Starts writing `object`. Nothing is visible under that name until [`ObjectWrite::commit`];
    /// an aborted or dropped write leaves nothing behind.
    async fn begin_write(&self, object: &str) -> Result<Box<dyn ObjectWrite>, BlobError>;

    /// Streams bytes `range` of `object` (never empty, always inside the object).
    /// [`BlobError::NotFound`] when the object does not exist.
    async fn read(&self, object: &str, range: Range<u64>) -> Result<ObjectStream, BlobError>;

    /// Deletes `object`; deleting a missing object succeeds.
    async fn delete(&self, object: &str) -> Result<(), BlobError>;

    /// The names of every committed object under `{namespace}/`, in no particular order.
    async fn list(&self, namespace: &str) -> Result<Vec<String>, BlobError>;

    /// Deletes every object under `{namespace}/`.
    async fn delete_all(&self, namespace: &str) -> Result<(), BlobError> {
        for object in self.list(namespace).await? {
            self.delete(&object).await?;
        }
        Ok(())
    }
}

/// An object being written. Dropping it without [`commit`](Self::commit) cleans up like
/// [`abort`](Self::abort) (in the background where that needs I/O).
#[async_trait]
pub trait ObjectWrite: Send {
    /// Appends a chunk.
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError>;
    /// Makes the object visible under its name, replacing nothing (names are never reused). On
    /// error, the partial object is cleaned up.
    async fn commit(self: Box<Self>) -> Result<(), BlobError>;
    /// Discards what was written.
    async fn abort(self: Box<Self>);
}
