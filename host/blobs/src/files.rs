//! Blob objects as local files, confined to one directory with `cap-std`.
//!
//! Ambient authority is used exactly once, to open the root (`<data>/blobs`); every later file
//! operation goes through that [`Dir`], which refuses absolute paths, `..` and symlinks that lead out
//! of it. Object names are generated (`{plugin}/{uuid}`) and checked again here, so even a corrupted
//! metadata row cannot name a file outside the root.
//!
//! Writes go to `.tmp/{uuid}` inside the root, are flushed and synced, then renamed into place: a
//! reader never sees a partial object, and a crash leaves only a temp file, swept on the next open.

use std::io::ErrorKind;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use crate::BlobError;
use crate::backend::{ObjectBackend, ObjectStream, ObjectWrite};

/// The folder, inside the root, where objects are written before they are renamed into place. A
/// dot-name, so it can never collide with a plugin namespace.
const TMP: &str = ".tmp";
/// Temp files older than this are leftovers of a crash, removed when the backend opens.
const STALE_TMP: Duration = Duration::from_secs(24 * 3600);
/// How much a read pulls from the file at a time.
const READ_CHUNK: u64 = 64 * 1024;

/// Blob objects as files under one directory (the default backend: `<data>/blobs`).
#[derive(Clone)]
pub struct FileBackend {
    dir: Arc<Dir>,
}

impl FileBackend {
    /// Opens (creating it if needed) the blob directory at `root`, and sweeps temp files left by a
    /// crash.
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        let unavailable = |what: &str, e: std::io::Error| {
            tracing::error!(root = %root.display(), error = %e, "{what}");
            BlobError::Unavailable(format!(
                "cannot {what} at {}: {e}; check that the data directory exists and is writable",
                root.display()
            ))
        };
        std::fs::create_dir_all(root).map_err(|e| unavailable("create the blob directory", e))?;
        let dir = Dir::open_ambient_dir(root, ambient_authority())
            .map_err(|e| unavailable("open the blob directory", e))?;
        dir.create_dir_all(TMP)
            .map_err(|e| unavailable("create the blob temp directory", e))?;
        let backend = Self { dir: Arc::new(dir) };
        backend.sweep_temp_files();
        Ok(backend)
    }

    fn sweep_temp_files(&self) {
        let Ok(entries) = self.dir.read_dir(TMP) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t.into_std()).unwrap_or_default() > STALE_TMP)
                .unwrap_or(false);
            if stale {
                let name = entry.file_name();
                let path = Path::new(TMP).join(&name);
                if let Err(e) = self.dir.remove_file(&path) {
                    tracing::warn!(file = ?name, error = %e, "cannot remove a stale blob temp file");
                }
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        object: &str,
        f: impl FnOnce(&Dir) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, BlobError> {
        let dir = self.dir.clone();
        match tokio::task::spawn_blocking(move || f(&dir)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if e.kind() == ErrorKind::NotFound => Err(BlobError::NotFound),
            Ok(Err(e)) => Err(io_error(op, object, e)),
            Err(e) => Err(io_error(op, object, std::io::Error::other(e))),
        }
    }
}

fn io_error(op: &str, object: &str, error: std::io::Error) -> BlobError {
    tracing::error!(backend = "files", op, object, error = %error, "blob file store error");
    BlobError::Unavailable(format!(
        "the blob file store failed to {op}; try again later (the host log has the detail)"
    ))
}

fn is_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Defence in depth on top of cap-std: only `namespace/name` made of safe characters.
fn checked_object(object: &str) -> Result<&str, BlobError> {
    match object.split_once('/') {
        Some((namespace, name)) if is_segment(namespace) && is_segment(name) => Ok(object),
        _ => Err(BlobError::Invalid(format!(
            "'{}' is not a blob object name (namespace/name of letters, digits, '-', '_')",
            object.escape_debug()
        ))),
    }
}

fn checked_namespace(namespace: &str) -> Result<&str, BlobError> {
    if is_segment(namespace) {
        Ok(namespace)
    } else {
        Err(BlobError::Invalid(format!(
            "'{}' is not a blob namespace (letters, digits, '-', '_')",
            namespace.escape_debug()
        )))
    }
}

#[async_trait]
impl ObjectBackend for FileBackend {
    fn name(&self) -> &'static str {
        "files"
    }

    async fn begin_write(&self, object: &str) -> Result<Box<dyn ObjectWrite>, BlobError> {
        let object = checked_object(object)?.to_string();
        let tmp = format!("{TMP}/{}", uuid::Uuid::new_v4().simple());
        let tmp_path = tmp.clone();
        let file = self
            .blocking("create a temp file", &object, move |dir| {
                let options = OpenOptions::new().write(true).create_new(true).clone();
                match dir.open_with(&tmp_path, &options) {
                    // Someone removed the temp folder: make it again.
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        dir.create_dir_all(TMP)?;
                        dir.open_with(&tmp_path, &options)
                    }
                    other => other,
                }
            })
            .await
            .map_err(|e| match e {
                BlobError::NotFound => io_error(
                    "create a temp file",
                    &object,
                    std::io::Error::from(ErrorKind::NotFound),
                ),
                e => e,
            })?;
        Ok(Box::new(FileWrite {
            dir: self.dir.clone(),
            tmp,
            object,
            file: Some(tokio::fs::File::from_std(file.into_std())),
        }))
    }

    async fn read(&self, object: &str, range: Range<u64>) -> Result<ObjectStream, BlobError> {
        let object = checked_object(object)?.to_string();
        let path = object.clone();
        let file = self
            .blocking("open an object", &object, move |dir| dir.open(&path))
            .await?;
        let mut file = tokio::fs::File::from_std(file.into_std());
        if range.start > 0 {
            file.seek(std::io::SeekFrom::Start(range.start))
                .await
                .map_err(|e| io_error("seek in an object", &object, e))?;
        }
        let remaining = range.end - range.start;
        let stream = futures::stream::try_unfold(
            (file, remaining, object),
            |(mut file, remaining, object)| async move {
                if remaining == 0 {
                    return Ok(None);
                }
                let mut buf = vec![0; remaining.min(READ_CHUNK) as usize];
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(|e| io_error("read an object", &object, e))?;
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                Ok(Some((
                    Bytes::from(buf),
                    (file, remaining - n as u64, object),
                )))
            },
        );
        Ok(stream.boxed())
    }

    async fn delete(&self, object: &str) -> Result<(), BlobError> {
        let path = checked_object(object)?.to_string();
        match self
            .blocking("delete an object", object, move |dir| {
                dir.remove_file(&path)
            })
            .await
        {
            Ok(()) | Err(BlobError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, namespace: &str) -> Result<Vec<String>, BlobError> {
        let ns = checked_namespace(namespace)?.to_string();
        let listed = self
            .blocking("list objects", namespace, move |dir| {
                let mut names = Vec::new();
                for entry in dir.read_dir(&ns)? {
                    let name = entry?.file_name();
                    names.push(format!("{ns}/{}", name.to_string_lossy()));
                }
                Ok(names)
            })
            .await;
        match listed {
            Err(BlobError::NotFound) => Ok(Vec::new()),
            other => other,
        }
    }

    async fn delete_all(&self, namespace: &str) -> Result<(), BlobError> {
        let ns = checked_namespace(namespace)?.to_string();
        match self
            .blocking("delete a namespace", namespace, move |dir| {
                dir.remove_dir_all(&ns)
            })
            .await
        {
            Ok(()) | Err(BlobError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A file being written under `.tmp/`; renamed to its object name on commit, removed otherwise.
struct FileWrite {
    dir: Arc<Dir>,
    tmp: String,
    object: String,
    /// `None` once committed or aborted.
    file: Option<tokio::fs::File>,
}

impl FileWrite {
    async fn finish(&mut self) -> Result<(), BlobError> {
        let mut file = self.file.take().ok_or_else(|| closed(&self.object))?;
        let synced = async {
            file.flush().await?;
            file.sync_data().await
        }
        .await;
        drop(file);
        synced.map_err(|e| io_error("write an object", &self.object, e))?;
        let (dir, tmp, object) = (self.dir.clone(), self.tmp.clone(), self.object.clone());
        let renamed = tokio::task::spawn_blocking(move || {
            if let Some((namespace, _)) = object.split_once('/') {
                dir.create_dir_all(namespace)?;
            }
            dir.rename(&tmp, &dir, &object)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        renamed.map_err(|e| io_error("store an object", &self.object, e))
    }
}

fn closed(object: &str) -> BlobError {
    BlobError::Invalid(format!(
        "the write of object '{object}' is already finished or aborted"
    ))
}

#[async_trait]
impl ObjectWrite for FileWrite {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        let file = self.file.as_mut().ok_or_else(|| closed(&self.object))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| io_error("write an object", &self.object, e))
    }

    async fn commit(mut self: Box<Self>) -> Result<(), BlobError> {
        // On error, Drop removes the temp file.
        self.finish().await
    }

    async fn abort(self: Box<Self>) {
        // Drop removes the temp file.
    }
}

impl Drop for FileWrite {
    fn drop(&mut self) {
        // A committed write has renamed the temp file away, so NotFound is the normal case then.
        self.file = None;
        match self.dir.remove_file(&self.tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %self.tmp, error = %e, "cannot remove a blob temp file")
            }
        }
    }
}
