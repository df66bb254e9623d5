//! `ucms:host/blobs`: binary objects private to each plugin, streamed in chunks ([`ucms_blobs`]).
//!
//! `put` returns a `writer` resource and `get` a `reader`; both live in the invocation's resource
//! table, so they end with the instance at the latest: a writer dropped unfinished discards what
//! it wrote. The host caps chunk sizes, open handles per invocation, the size of one blob and the
//! plugin's total bytes.

use ucms_blobs::{BlobError as StoreError, BlobReader, BlobWriter, Blobs, ByteRange};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::metrics::Metrics;
use crate::wit::latest::ucms::host::blobs::{
    self as wit, BlobError, BlobPage, ByteRange as WitRange, Reader, Writer,
};
use crate::wit::latest::ucms::host::types::BlobInfo;

/// Largest chunk one `write` or `read` moves.
pub const MAX_CHUNK: usize = 4 * 1024 * 1024;
/// Writers and readers one invocation may hold open at once.
pub const MAX_OPEN_HANDLES: usize = 16;
/// Most blobs one `list` call returns.
pub const MAX_PAGE: u32 = 1000;

/// Per-plugin state of the blobs capability, resolved when the plugin loads.
#[derive(Debug, Clone, Copy)]
pub struct BlobsState {
    /// Total bytes the plugin may store.
    pub quota_bytes: u64,
    /// Largest single blob.
    pub max_blob_bytes: u64,
}

/// The guest sees `writer` and `reader` resources; the table holds our handles under the same
/// representation.
fn handle<T: 'static, U: 'static>(resource: &Resource<T>) -> Resource<U> {
    if resource.owned() {
        Resource::new_own(resource.rep())
    } else {
        Resource::new_borrow(resource.rep())
    }
}

/// A `writer` resource: the store's writer until `finish` takes it.
pub struct WriterHandle {
    writer: Option<BlobWriter>,
    written: u64,
}

/// A `reader` resource.
pub struct ReaderHandle {
    info: BlobInfo,
    reader: Option<BlobReader>,
}

/// What the blobs host functions see of the invocation.
pub struct BlobsCtx<'a> {
    pub plugin: &'a str,
    pub store: &'a Blobs,
    pub state: BlobsState,
    pub metrics: &'a Metrics,
    pub table: &'a mut ResourceTable,
    /// Writers and readers this invocation holds open.
    pub open_handles: &'a mut usize,
}

struct BlobsData;

impl HasData for BlobsData {
    type Data<'a> = BlobsCtx<'a>;
}

/// Store data that can give the `ucms:host/blobs` host functions their view of the invocation.
pub trait BlobsView: Send {
    fn blobs(&mut self) -> BlobsCtx<'_>;
}

/// Links `ucms:host/blobs`.
pub fn add_to_linker<T: BlobsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, BlobsData>(linker, T::blobs)
}

pub(crate) fn info(i: ucms_blobs::BlobInfo) -> BlobInfo {
    BlobInfo {
        key: i.key,
        size: i.size,
        content_type: i.content_type,
        sha256: i.sha256,
        created_at_ms: i.created_at_ms,
        updated_at_ms: i.updated_at_ms,
    }
}

fn to_wit(plugin: &str, error: StoreError) -> BlobError {
    match error {
        StoreError::Invalid(m) => BlobError::Invalid(m),
        StoreError::NotFound => BlobError::NotFound("no blob with this key".into()),
        StoreError::Range(m) => BlobError::RangeNotSatisfiable(m),
        StoreError::QuotaExceeded(m) => BlobError::QuotaExceeded(m),
        StoreError::TooLarge(m) => BlobError::TooLarge(m),
        other => {
            tracing::warn!(plugin, error = %other, "blob store failure");
            BlobError::Unavailable("the blob store is unavailable; try again later".into())
        }
    }
}

impl BlobsCtx<'_> {
    fn reserve_handle(&mut self) -> Result<(), BlobError> {
        if *self.open_handles >= MAX_OPEN_HANDLES {
            return Err(BlobError::Invalid(format!(
                "this call already holds {MAX_OPEN_HANDLES} open writers and readers; finish or drop one first"
            )));
        }
        *self.open_handles += 1;
        Ok(())
    }

    fn release_handle(&mut self) {
        *self.open_handles = self.open_handles.saturating_sub(1);
    }
}

type BlobResult<T> = wasmtime::Result<Result<T, BlobError>>;

impl wit::Host for BlobsCtx<'_> {
    #[tracing::instrument(
        name = "blobs.put",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn put(&mut self, key: String, content_type: String) -> BlobResult<Resource<Writer>> {
        if let Err(e) = self.reserve_handle() {
            return Ok(Err(e));
        }
        let writer = self
            .store
            .writer(
                self.plugin,
                &key,
                &content_type,
                Some(self.state.quota_bytes),
                Some(self.state.max_blob_bytes),
            )
            .await;
        match writer {
            Ok(writer) => {
                let pushed = self.table.push(WriterHandle {
                    writer: Some(writer),
                    written: 0,
                })?;
                Ok(Ok(handle(&pushed)))
            }
            Err(e) => {
                self.release_handle();
                Ok(Err(to_wit(self.plugin, e)))
            }
        }
    }

    #[tracing::instrument(
        name = "blobs.get",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn get(
        &mut self,
        key: String,
        range: Option<WitRange>,
    ) -> BlobResult<Option<Resource<Reader>>> {
        if let Err(e) = self.reserve_handle() {
            return Ok(Err(e));
        }
        let range = range.map(|r| ByteRange {
            start: r.start,
            end: r.end,
        });
        match self.store.reader(self.plugin, &key, range).await {
            Ok(Some((i, reader))) => {
                let pushed = self.table.push(ReaderHandle {
                    info: info(i),
                    reader: Some(reader),
                })?;
                Ok(Ok(Some(handle(&pushed))))
            }
            Ok(None) => {
                self.release_handle();
                Ok(Ok(None))
            }
            Err(e) => {
                self.release_handle();
                Ok(Err(to_wit(self.plugin, e)))
            }
        }
    }

    #[tracing::instrument(
        name = "blobs.head",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn head(&mut self, key: String) -> BlobResult<Option<BlobInfo>> {
        let result = self.store.head(self.plugin, &key).await;
        Ok(result
            .map(|i| i.map(info))
            .map_err(|e| to_wit(self.plugin, e)))
    }

    #[tracing::instrument(
        name = "blobs.delete",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn delete(&mut self, key: String) -> BlobResult<bool> {
        let result = self.store.delete(self.plugin, &key).await;
        Ok(result.map_err(|e| to_wit(self.plugin, e)))
    }

    #[tracing::instrument(
        name = "blobs.list",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn list(
        &mut self,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> BlobResult<BlobPage> {
        let limit = match limit {
            0 => 100,
            n => n.min(MAX_PAGE),
        };
        let result = self
            .store
            .list(self.plugin, &prefix, cursor.as_deref(), limit)
            .await;
        Ok(result
            .map(|(blobs, next_cursor)| BlobPage {
                blobs: blobs.into_iter().map(info).collect(),
                next_cursor,
            })
            .map_err(|e| to_wit(self.plugin, e)))
    }
}

impl wit::HostWriter for BlobsCtx<'_> {
    #[tracing::instrument(
        name = "blobs.write",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn write(&mut self, writer: Resource<Writer>, chunk: Vec<u8>) -> BlobResult<()> {
        let handle: Resource<WriterHandle> = handle(&writer);
        if chunk.len() > MAX_CHUNK {
            return Ok(Err(BlobError::Invalid(format!(
                "a chunk is at most {MAX_CHUNK} bytes; this one is {}",
                chunk.len()
            ))));
        }
        let entry = self.table.get_mut(&handle)?;
        let Some(writer) = entry.writer.as_mut() else {
            return Ok(Err(BlobError::Closed));
        };
        match writer.write(&chunk).await {
            Ok(()) => {
                entry.written += chunk.len() as u64;
                Ok(Ok(()))
            }
            Err(e) => {
                // A failed writer is done: discard what it wrote.
                if let Some(writer) = entry.writer.take() {
                    writer.abort().await;
                }
                Ok(Err(to_wit(self.plugin, e)))
            }
        }
    }

    #[tracing::instrument(
        name = "blobs.finish",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn finish(&mut self, writer: Resource<Writer>) -> BlobResult<BlobInfo> {
        let handle: Resource<WriterHandle> = handle(&writer);
        let entry = self.table.get_mut(&handle)?;
        let Some(writer) = entry.writer.take() else {
            return Ok(Err(BlobError::Closed));
        };
        let written = entry.written;
        match writer.finish().await {
            Ok(i) => {
                self.metrics.blob_bytes(self.plugin, "in", written);
                Ok(Ok(info(i)))
            }
            Err(e) => Ok(Err(to_wit(self.plugin, e))),
        }
    }

    async fn drop(&mut self, writer: Resource<Writer>) -> wasmtime::Result<()> {
        let handle: Resource<WriterHandle> = handle(&writer);
        let entry = self.table.delete(handle)?;
        self.release_handle();
        if let Some(writer) = entry.writer {
            writer.abort().await;
        }
        Ok(())
    }
}

impl wit::HostReader for BlobsCtx<'_> {
    #[tracing::instrument(
        name = "blobs.info",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn info(&mut self, reader: Resource<Reader>) -> wasmtime::Result<BlobInfo> {
        let handle: Resource<ReaderHandle> = handle(&reader);
        Ok(self.table.get(&handle)?.info.clone())
    }

    #[tracing::instrument(
        name = "blobs.read",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn read(&mut self, reader: Resource<Reader>, max: u32) -> BlobResult<Option<Vec<u8>>> {
        let handle: Resource<ReaderHandle> = handle(&reader);
        let max = (max as usize).clamp(1, MAX_CHUNK);
        let entry = self.table.get_mut(&handle)?;
        let Some(reader) = entry.reader.as_mut() else {
            return Ok(Err(BlobError::Closed));
        };
        match reader.read(max).await {
            Ok(Some(bytes)) => {
                self.metrics
                    .blob_bytes(self.plugin, "out", bytes.len() as u64);
                Ok(Ok(Some(bytes.to_vec())))
            }
            Ok(None) => {
                entry.reader = None;
                Ok(Ok(None))
            }
            Err(e) => {
                entry.reader = None;
                Ok(Err(to_wit(self.plugin, e)))
            }
        }
    }

    async fn drop(&mut self, reader: Resource<Reader>) -> wasmtime::Result<()> {
        let handle: Resource<ReaderHandle> = handle(&reader);
        self.table.delete(handle)?;
        self.release_handle();
        Ok(())
    }
}
