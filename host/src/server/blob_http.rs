//! Blobs over HTTP, streamed by the host so a large file never travels through the sandbox as one
//! value.
//!
//! Upload routes (`upload = true` in the manifest): the host streams the request body into the
//! plugin's blobs before the plugin runs; the plugin gets references (`request.uploads`).
//!
//! A `multipart/form-data` body stores each file part as one blob and passes the other fields as
//! a JSON object of strings in the request body; any other body is stored whole as one blob (field
//! `body`). Blobs are named `uploads/{uuid}`. When the plugin fails or answers with an error
//! status, the host deletes what it stored, so a refused upload leaves nothing behind.
//!
//! Blob responses: a response with an `x-ucms-blob: <percent-encoded key>` header (what the SDK's
//! `Response::blob` returns) gets the blob's bytes as its body, streamed from the store — the whole
//! blob, or for a 206 the range its `content-range` names.

use axum::body::Body;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use percent_encoding::percent_decode_str;

use super::ApiError;
use crate::capabilities::blobs::{BlobsState, info};
use crate::wit::latest::exports::ucms::plugin::http_handler::Upload;

/// Text fields of a multipart form, in bytes altogether.
const MAX_FORM_FIELDS_BYTES: usize = 64 * 1024;
/// File parts in one multipart body.
const MAX_FILES: usize = 32;

/// What an upload route hands the plugin.
pub struct Uploaded {
    pub uploads: Vec<Upload>,
    /// The non-file form fields as a JSON object (empty for a raw upload).
    pub body: Vec<u8>,
}

fn blob_error(error: ucms_blobs::BlobError) -> ApiError {
    use ucms_blobs::BlobError as E;
    match error {
        E::TooLarge(m) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large", m),
        E::QuotaExceeded(m) => {
            ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "blob_quota_exceeded", m)
        }
        E::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_upload", m),
        other => {
            tracing::warn!(error = %other, "cannot store an upload");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "blob_store_unavailable",
                "the blob store is unavailable; try again later",
            )
        }
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_upload", message)
}

/// A content type that is safe to record: the client's when it parses, else bytes.
fn content_type(raw: Option<&str>) -> String {
    raw.and_then(|v| v.parse::<mime::Mime>().ok())
        .map(|m| m.essence_str().to_string())
        .unwrap_or_else(|| "application/octet-stream".into())
}

/// Streams `body` into the plugin's blobs.
pub async fn receive(
    plugin: &str,
    store: &ucms_blobs::Blobs,
    state: BlobsState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Uploaded, ApiError> {
    let header = |name: http::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let ctype = header(http::header::CONTENT_TYPE);
    let mut stored = Stored {
        plugin: plugin.to_string(),
        store: store.clone(),
        uploads: Vec::new(),
    };
    if let Some(boundary) = ctype.and_then(|c| multer::parse_boundary(c).ok()) {
        let mut form = serde_json::Map::new();
        let mut form_bytes = 0usize;
        let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(e) => {
                    stored.discard().await;
                    return Err(bad_request(format!("the multipart body is malformed: {e}")));
                }
            };
            let name = field.name().unwrap_or("file").to_string();
            match field.file_name().map(str::to_string) {
                Some(filename) => {
                    if stored.uploads.len() >= MAX_FILES {
                        stored.discard().await;
                        return Err(bad_request(format!(
                            "an upload carries at most {MAX_FILES} files"
                        )));
                    }
                    let ctype = content_type(field.content_type().map(|m| m.as_ref()));
                    let chunks = field.map(|c| c.map_err(|e| e.to_string()));
                    if let Err(e) = stored
                        .put(state, name, Some(filename), &ctype, chunks)
                        .await
                    {
                        stored.discard().await;
                        return Err(e);
                    }
                }
                None => {
                    let text = match field.text().await {
                        Ok(text) => text,
                        Err(e) => {
                            stored.discard().await;
                            return Err(bad_request(format!("form field '{name}': {e}")));
                        }
                    };
                    form_bytes += name.len() + text.len();
                    if form_bytes > MAX_FORM_FIELDS_BYTES {
                        stored.discard().await;
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "request_body_too_large",
                            format!(
                                "the form's text fields are over {MAX_FORM_FIELDS_BYTES} bytes; send large content as files"
                            ),
                        ));
                    }
                    form.insert(name, serde_json::Value::String(text));
                }
            }
        }
        Ok(Uploaded {
            body: serde_json::Value::Object(form).to_string().into_bytes(),
            uploads: stored.into_uploads(),
        })
    } else {
        let filename = header(http::header::CONTENT_DISPOSITION).and_then(disposition_filename);
        let ctype = content_type(ctype);
        let chunks = body
            .into_data_stream()
            .map(|c| c.map_err(|e| e.to_string()));
        if let Err(e) = stored
            .put(state, "body".into(), filename, &ctype, chunks)
            .await
        {
            stored.discard().await;
            return Err(e);
        }
        Ok(Uploaded {
            body: Vec::new(),
            uploads: stored.into_uploads(),
        })
    }
}

/// `attachment; filename="a.txt"` → `a.txt`.
fn disposition_filename(value: &str) -> Option<String> {
    value.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k.trim().eq_ignore_ascii_case("filename")).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The blobs stored so far, deleted again if the upload fails.
struct Stored {
    plugin: String,
    store: ucms_blobs::Blobs,
    uploads: Vec<Upload>,
}

impl Stored {
    async fn put<S, B>(
        &mut self,
        state: BlobsState,
        field: String,
        filename: Option<String>,
        content_type: &str,
        mut chunks: S,
    ) -> Result<(), ApiError>
    where
        S: futures::Stream<Item = Result<B, String>> + Unpin,
        B: AsRef<[u8]>,
    {
        let key = format!("uploads/{}", uuid::Uuid::now_v7());
        let mut writer = self
            .store
            .writer(
                &self.plugin,
                &key,
                content_type,
                Some(state.quota_bytes),
                Some(state.max_blob_bytes),
            )
            .await
            .map_err(blob_error)?;
        while let Some(chunk) = chunks.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    writer.abort().await;
                    return Err(bad_request(format!("the upload was interrupted: {e}")));
                }
            };
            if let Err(e) = writer.write(chunk.as_ref()).await {
                writer.abort().await;
                return Err(blob_error(e));
            }
        }
        let blob = writer.finish().await.map_err(blob_error)?;
        self.uploads.push(Upload {
            field,
            filename,
            blob: info(blob),
        });
        Ok(())
    }

    async fn discard(&mut self) {
        discard(&self.plugin, &self.store, &self.uploads).await;
        self.uploads.clear();
    }

    fn into_uploads(self) -> Vec<Upload> {
        self.uploads
    }
}

/// Deletes uploads the plugin did not accept.
pub async fn discard(plugin: &str, store: &ucms_blobs::Blobs, uploads: &[Upload]) {
    for upload in uploads {
        if let Err(e) = store.delete(plugin, &upload.blob.key).await {
            tracing::warn!(plugin, key = %upload.blob.key, error = %e, "cannot delete a refused upload");
        }
    }
}

/// The header a plugin sets to have a blob streamed as its response body.
pub const BLOB_HEADER: &str = "x-ucms-blob";

/// `bytes a-b/total` → `a..b+1`.
fn content_range(value: &str) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes ")?;
    let (range, _total) = spec.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b) = (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?);
    (a <= b).then_some((a, b + 1))
}

/// Replaces the body of a blob response with the blob's bytes, streamed from the store.
pub async fn stream_blob(
    plugin: &str,
    store: &ucms_blobs::Blobs,
    status: StatusCode,
    mut headers: HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let raw = headers
        .remove(BLOB_HEADER)
        .expect("called for responses with the blob header");
    let key = percent_decode_str(raw.to_str().unwrap_or_default())
        .decode_utf8()
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "plugin_invalid_response",
                format!("plugin '{plugin}' named a blob that is not UTF-8"),
            )
        })?
        .into_owned();
    let range = if status == StatusCode::PARTIAL_CONTENT {
        let range = headers
            .get(http::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(content_range)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "plugin_invalid_response",
                    format!(
                        "plugin '{plugin}' answered 206 with a blob but no valid content-range"
                    ),
                )
            })?;
        Some(ucms_blobs::ByteRange {
            start: range.0,
            end: Some(range.1),
        })
    } else {
        None
    };
    let opened = store
        .reader(plugin, &key, range)
        .await
        .map_err(|e| match e {
            ucms_blobs::BlobError::Range(m) => ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                m,
            ),
            other => blob_error(other),
        })?;
    let Some((_, reader)) = opened else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "blob_not_found",
            format!("plugin '{plugin}' answered with blob '{key}', which does not exist"),
        ));
    };
    headers.insert(
        http::header::CONTENT_LENGTH,
        HeaderValue::from(reader.len()),
    );
    let body = futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.read(256 * 1024).await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(reader))),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "a blob response broke off");
                Some((Err(std::io::Error::other(e.to_string())), None))
            }
        }
    });
    let mut response = axum::response::Response::new(Body::from_stream(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_come_from_content_disposition() {
        assert_eq!(
            disposition_filename("attachment; filename=\"report.pdf\"").as_deref(),
            Some("report.pdf")
        );
        assert_eq!(disposition_filename("inline").as_deref(), None);
        assert_eq!(content_type(Some("image/png; q=1")), "image/png");
        assert_eq!(content_type(Some("not a type")), "application/octet-stream");
        assert_eq!(content_range("bytes 10-19/100"), Some((10, 20)));
        assert_eq!(content_range("bytes 19-10/100"), None);
        assert_eq!(content_range("items 1-2/3"), None);
    }
}
