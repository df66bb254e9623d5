//! Blob objects in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, R2, …) through the
//! `object_store` crate, over rustls with the ring provider (no OpenSSL).
//!
//! A write buffers up to one part (8 MiB by default): a blob that fits is sent with one `PUT`;
//! a larger one becomes a multipart upload whose parts are sent as they fill, at most
//! [`MAX_PARTS_IN_FLIGHT`] at a time, so memory per writer stays bounded whatever the blob's size.
//! Nothing is visible under the object's name until the single `PUT` or the multipart completion;
//! an aborted or dropped multipart upload is aborted in the background (best effort, logged).

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig,
    WriteMultipart,
};

use crate::BlobError;
use crate::backend::{ObjectBackend, ObjectStream, ObjectWrite};

/// The default part size of a multipart upload, and the largest blob sent with one `PUT`.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's smallest part (all but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts of one upload sent at the same time.
pub const MAX_PARTS_IN_FLIGHT: usize = 2;

/// Where and how to reach the object store. `Debug` hides the secret key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// `us-east-1` when empty.
    pub region: String,
    /// For S3-compatible servers (`http://127.0.0.1:9000`); AWS when `None`. Requests use path-style
    /// addressing (`{endpoint}/{bucket}/{object}`) with an endpoint, virtual-host style on AWS.
    pub endpoint: Option<String>,
    /// With `secret_access_key`; both empty means the standard AWS credential chain
    /// (`AWS_*` environment variables, web identity, ECS or EC2 instance credentials).
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Allow `http://` endpoints (local servers); `https://` only otherwise.
    pub allow_http: bool,
    /// Object names start with `{prefix}/`, so several sites can share a bucket.
    pub prefix: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("allow_http", &self.allow_http)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// Blob objects in an S3-compatible bucket.
#[derive(Clone)]
pub struct S3Backend {
    store: Arc<dyn ObjectStore>,
    /// `""` or `"{prefix}/"`.
    prefix: String,
    part_size: usize,
}

impl fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Backend")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl S3Backend {
    /// Builds the client; makes no request (see [`check`](Self::check)).
    pub fn new(config: S3Config) -> Result<Self, BlobError> {
        // reqwest is built without a default TLS provider in this workspace: use ring, as the
        // registry client does. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let invalid = |what: String| BlobError::Invalid(format!("blobs.s3: {what}"));
        if config.bucket.trim().is_empty() {
            return Err(invalid(
                "no bucket: set [blobs] s3.bucket to the bucket's name".into(),
            ));
        }
        if config.access_key_id.is_empty() != config.secret_access_key.is_empty() {
            return Err(invalid(
                "set both s3.access-key-id and s3.secret-access-key, or neither to use the \
                 standard AWS credential chain"
                    .into(),
            ));
        }
        let prefix = match config.prefix.as_deref().map(|p| p.trim_matches('/')) {
            None | Some("") => String::new(),
            Some(p) => {
                let parsed = Path::parse(p).map_err(|_| {
                    invalid(format!(
                        "'{p}' is not a usable prefix: use segments like 'sites/blog' without \
                         '.', '..' or empty segments"
                    ))
                })?;
                format!("{parsed}/")
            }
        };
        let mut builder = if config.access_key_id.is_empty() {
            AmazonS3Builder::from_env()
        } else {
            AmazonS3Builder::new()
                .with_access_key_id(&config.access_key_id)
                .with_secret_access_key(&config.secret_access_key)
        };
        let region = if config.region.trim().is_empty() {
            "us-east-1"
        } else {
            config.region.trim()
        };
        builder = builder
            .with_bucket_name(config.bucket.trim())
            .with_region(region)
            .with_allow_http(config.allow_http)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(config.allow_http)
                    .with_connect_timeout(Duration::from_secs(10))
                    // Streams may be long (a large blob to a slow client): bound silence, not the total.
                    .with_timeout_disabled()
                    .with_read_timeout(Duration::from_secs(60)),
            )
            .with_retry(RetryConfig {
                max_retries: 4,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = config.endpoint.as_deref().filter(|e| !e.trim().is_empty()) {
            let endpoint = endpoint.trim();
            if endpoint.starts_with("http://") && !config.allow_http {
                return Err(invalid(format!(
                    "the endpoint '{endpoint}' is plain HTTP: use https:// or set s3.allow-http = true"
                )));
            }
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let store = builder.build().map_err(|e| {
            tracing::error!(error = %e, "cannot configure the S3 blob backend");
            invalid(format!("the configuration is not usable: {}", clean(&e)))
        })?;
        Ok(Self {
            store: Arc::new(store),
            prefix,
            part_size: DEFAULT_PART_SIZE,
        })
    }

    /// Sets the multipart part size (at least [`MIN_PART_SIZE`]); blobs up to this size are sent
    /// with one `PUT`.
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(MIN_PART_SIZE);
        self
    }

    /// One cheap request (a listing of at most one page) to show that the bucket is reachable and
    /// the credentials work; for start-up and readiness checks.
    pub async fn check(&self) -> Result<(), BlobError> {
        let prefix = self.path("");
        self.store
            .list_with_delimiter(Some(&prefix))
            .await
            .map(|_| ())
            .map_err(|e| store_error("check the bucket", "", e))
    }

    fn path(&self, object: &str) -> Path {
        Path::from(format!("{}{object}", self.prefix))
    }
}

/// The object_store error without the URL it may carry.
fn clean(error: &object_store::Error) -> String {
    match error {
        object_store::Error::Generic { store, .. } => format!("{store} rejected it"),
        other => other.to_string(),
    }
}

fn store_error(op: &str, object: &str, error: object_store::Error) -> BlobError {
    if matches!(error, object_store::Error::NotFound { .. }) {
        return BlobError::NotFound;
    }
    tracing::error!(backend = "s3", op, object, error = %error, "blob object store error");
    BlobError::Unavailable(format!(
        "the blob object store failed to {op}; try again later (the host log has the detail)"
    ))
}

#[async_trait]
impl ObjectBackend for S3Backend {
    fn name(&self) -> &'static str {
        "s3"
    }

    async fn begin_write(&self, object: &str) -> Result<Box<dyn ObjectWrite>, BlobError> {
        Ok(Box::new(S3Write {
            store: self.store.clone(),
            path: self.path(object),
            object: object.to_string(),
            part_size: self.part_size,
            state: State::Buffer(Vec::new(), 0),
        }))
    }

    async fn read(&self, object: &str, range: Range<u64>) -> Result<ObjectStream, BlobError> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&self.path(object), options)
            .await
            .map_err(|e| store_error("read an object", object, e))?;
        let object = object.to_string();
        Ok(result
            .into_stream()
            .map_err(move |e| store_error("read an object", &object, e))
            .boxed())
    }

    async fn delete(&self, object: &str) -> Result<(), BlobError> {
        match self.store.delete(&self.path(object)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("delete an object", object, e)),
        }
    }

    async fn list(&self, namespace: &str) -> Result<Vec<String>, BlobError> {
        let prefix = self.path(namespace);
        let strip = self.prefix.len();
        self.store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location.as_ref()[strip..].to_string())
            .try_collect()
            .await
            .map_err(|e| store_error("list objects", namespace, e))
    }

    async fn delete_all(&self, namespace: &str) -> Result<(), BlobError> {
        let prefix = self.path(namespace);
        let locations = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        self.store
            .delete_stream(locations)
            .try_for_each(|_| async { Ok(()) })
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(()),
                e => Err(store_error("delete a namespace", namespace, e)),
            })
    }
}

enum State {
    /// Up to one part, sent with a single `PUT` at commit if the blob ends there.
    Buffer(Vec<Bytes>, usize),
    Multipart(WriteMultipart),
    Done,
}

struct S3Write {
    store: Arc<dyn ObjectStore>,
    path: Path,
    object: String,
    part_size: usize,
    state: State,
}

#[async_trait]
impl ObjectWrite for S3Write {
    async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        match &mut self.state {
            State::Buffer(parts, len) if *len + chunk.len() <= self.part_size => {
                *len += chunk.len();
                parts.push(chunk);
                Ok(())
            }
            State::Buffer(parts, _) => {
                let parts = std::mem::take(parts);
                let upload = self
                    .store
                    .put_multipart(&self.path)
                    .await
                    .map_err(|e| store_error("start a multipart upload", &self.object, e))?;
                let mut upload = WriteMultipart::new_with_chunk_size(upload, self.part_size);
                for part in parts {
                    upload.put(part);
                }
                upload.put(chunk);
                self.state = State::Multipart(upload);
                Ok(())
            }
            State::Multipart(upload) => {
                if let Err(e) = upload.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
                    self.abort_in_background();
                    return Err(store_error("upload a part", &self.object, e));
                }
                upload.put(chunk);
                Ok(())
            }
            State::Done => Err(BlobError::Invalid(
                "this object write is already finished or aborted".into(),
            )),
        }
    }

    async fn commit(mut self: Box<Self>) -> Result<(), BlobError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Buffer(parts, _) => {
                let payload: PutPayload = parts.into_iter().collect();
                self.store
                    .put(&self.path, payload)
                    .await
                    .map(|_| ())
                    .map_err(|e| store_error("store an object", &self.object, e))
            }
            // A failed completion leaves the upload to the bucket's lifecycle rule
            // (AbortIncompleteMultipartUpload): WriteMultipart::finish consumes the handle.
            State::Multipart(upload) => upload
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| store_error("complete a multipart upload", &self.object, e)),
            State::Done => Err(BlobError::Invalid(
                "this object write is already finished or aborted".into(),
            )),
        }
    }

    async fn abort(mut self: Box<Self>) {
        if let State::Multipart(upload) = std::mem::replace(&mut self.state, State::Done)
            && let Err(e) = upload.abort().await
        {
            tracing::warn!(object = %self.object, error = %e, "cannot abort a multipart upload");
        }
    }
}

impl S3Write {
    fn abort_in_background(&mut self) {
        let State::Multipart(upload) = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        let object = self.object.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = upload.abort().await {
                        tracing::warn!(%object, error = %e, "cannot abort a multipart upload");
                    }
                });
            }
            Err(_) => tracing::warn!(
                %object,
                "a multipart upload was dropped outside a runtime and is left to the bucket's \
                 lifecycle rule"
            ),
        }
    }
}

impl Drop for S3Write {
    fn drop(&mut self) {
        self.abort_in_background();
    }
}
