//! The registry client sites use.
//!
//! [`RegistryClient::refresh`] fetches the signed snapshot and checks it against the site's trust
//! and the highest version seen before (kept in the cache folder), then loads the registry's
//! endorsements, rotations and revocations into the trust store. Index files are fetched with
//! `If-None-Match` against a local cache and must hash to what the snapshot says. Downloads are
//! cached by digest and must hash to what the index says.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use ucms_package::index::IndexEntry;
use ucms_package::keys::PublicKeyFile;
use ucms_package::metadata::{MetadataError, Signed, Snapshot};
use ucms_package::signature::{PackageSignature, digest};
use ucms_package::trust::{Endorsement, Revocation, Rotation, TrustStore};
use ucms_package::unix_now;

/// Installs the process-wide TLS crypto provider (ring) once; reqwest and sqlx need one.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot reach the registry at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the registry answered {status} for {url}: {message}")]
    Status {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{0}")]
    Metadata(#[from] MetadataError),
    #[error(
        "the index file of '{id}' does not match the registry's signed snapshot (expected {expected}, got {actual}): it was altered in transit or in the cache"
    )]
    IndexMismatch {
        id: String,
        expected: String,
        actual: String,
    },
    #[error(
        "the download of {id} {version} has digest {actual}, but the index says {expected}: the package was altered"
    )]
    DownloadMismatch {
        id: String,
        version: String,
        expected: String,
        actual: String,
    },
    #[error("the registry's answer is not valid: {0}")]
    Invalid(String),
    #[error("the registry cache at {path} failed: {error}")]
    Cache { path: String, error: std::io::Error },
}

impl ClientError {
    pub fn code(&self) -> &str {
        match self {
            Self::Status { code, .. } => code,
            Self::Unreachable { .. } => "registry_unreachable",
            Self::Metadata(MetadataError::Rollback { .. }) => "metadata_rollback",
            Self::Metadata(MetadataError::Expired { .. }) => "metadata_expired",
            Self::Metadata(_) => "metadata_untrusted",
            Self::IndexMismatch { .. } => "index_mismatch",
            Self::DownloadMismatch { .. } => "digest_mismatch",
            Self::Invalid(_) => "registry_invalid",
            Self::Cache { .. } => "cache_error",
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// The highest snapshot version seen: an older one is a rollback.
    seen_version: Option<u64>,
}

/// A client of one registry, with its cache folder and the site's trust.
#[derive(Debug)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
    cache: PathBuf,
    trust: TrustStore,
    snapshot: Option<Snapshot>,
}

impl RegistryClient {
    /// A client of the registry at `base_url`, caching under `cache_root` (one folder per
    /// registry), trusting what `trust` trusts.
    pub fn new(base_url: &str, cache_root: &Path, trust: TrustStore) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_string();
        let folder: String = base
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let cache = cache_root.join(folder);
        for dir in [cache.join("index"), cache.join("packages")] {
            std::fs::create_dir_all(&dir).map_err(|error| ClientError::Cache {
                path: dir.display().to_string(),
                error,
            })?;
        }
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("ucms/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        Ok(Self {
            base,
            http,
            cache,
            trust,
            snapshot: None,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The site's trust, with what the registry said about keys since the last refresh.
    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    async fn get(
        &self,
        path: &str,
        etag: Option<&str>,
    ) -> Result<(u16, Option<String>, bytes::Bytes), ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.get(&url);
        if let Some(etag) = etag {
            request = request.header(http::header::IF_NONE_MATCH, etag);
        }
        let response = send(&url, request).await?;
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.bytes().await.map_err(unreachable(&url))?;
        Ok((status, etag, body))
    }

    /// Fetches and checks the signed snapshot, then the registry's key statements.
    pub async fn refresh(&mut self) -> Result<&Snapshot, ClientError> {
        let (_, _, body) = self.get("/index/snapshot.json", None).await?;
        let signed: Signed<Snapshot> = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Invalid(format!("snapshot.json: {e}")))?;
        let state_path = self.cache.join("state.json");
        let mut state: State = std::fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let snapshot = signed
            .verify(&self.trust, state.seen_version, unix_now())?
            .clone();
        state.seen_version = Some(state.seen_version.unwrap_or(0).max(snapshot.version));
        write_atomic(
            &state_path,
            &serde_json::to_vec(&state).expect("serializes"),
        )?;

        let endorsements: Vec<Endorsement> = self.statements("endorsements").await?;
        let rotations: Vec<Rotation> = self.statements("rotations").await?;
        let revocations: Vec<Revocation> = self.statements("revocations").await?;
        for e in endorsements {
            self.trust.add_endorsement(e);
        }
        for r in rotations {
            self.trust.add_rotation(r);
        }
        for r in revocations {
            self.trust.add_revocation(r);
        }
        self.snapshot = Some(snapshot);
        Ok(self.snapshot.as_ref().expect("just set"))
    }

    async fn statements<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Vec<T>, ClientError> {
        let (_, _, body) = self.get(&format!("/keys/{name}.json"), None).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Invalid(format!("{name}: {e}")))
    }

    /// Every version of `id`, checked against the snapshot; `None` when the registry has no such
    /// package. Call [`RegistryClient::refresh`] first.
    pub async fn index(&self, id: &str) -> Result<Option<Vec<IndexEntry>>, ClientError> {
        let snapshot = self.snapshot.as_ref().ok_or_else(|| {
            ClientError::Invalid("refresh the snapshot before reading the index".into())
        })?;
        let Some(expected) = snapshot.packages.get(id) else {
            return Ok(None);
        };
        let cached_path = self.cache.join("index").join(id);
        let etag_path = self.cache.join("index").join(format!("{id}.etag"));
        let cached = std::fs::read_to_string(&cached_path).ok();
        // A cached copy that already matches the snapshot needs no request at all.
        let text = match cached {
            Some(text) if digest(text.as_bytes()) == *expected => text,
            cached => {
                let etag = std::fs::read_to_string(&etag_path).ok();
                let (status, new_etag, body) = self
                    .get(
                        &format!("/index/{id}"),
                        etag.as_deref().filter(|_| cached.is_some()),
                    )
                    .await?;
                let text = if status == 304 {
                    cached.unwrap_or_default()
                } else {
                    String::from_utf8(body.to_vec()).map_err(|_| {
                        ClientError::Invalid(format!("index file of '{id}' is not UTF-8"))
                    })?
                };
                if status != 304 {
                    write_atomic(&cached_path, text.as_bytes())?;
                    if let Some(etag) = new_etag {
                        write_atomic(&etag_path, etag.as_bytes())?;
                    }
                }
                text
            }
        };
        let actual = digest(text.as_bytes());
        if actual != *expected {
            let _ = std::fs::remove_file(&cached_path);
            return Err(ClientError::IndexMismatch {
                id: id.to_string(),
                expected: expected.clone(),
                actual,
            });
        }
        let entries = IndexEntry::parse_file(&text)
            .map_err(|e| ClientError::Invalid(format!("index file of '{id}': {e}")))?;
        Ok(Some(entries))
    }

    /// The index entries of `roots` and of everything any of their versions depends on.
    pub async fn closure(
        &self,
        roots: &[String],
    ) -> Result<BTreeMap<String, Vec<IndexEntry>>, ClientError> {
        let mut out = BTreeMap::new();
        let mut queue: VecDeque<String> = roots.iter().cloned().collect();
        let mut seen: BTreeSet<String> = queue.iter().cloned().collect();
        while let Some(id) = queue.pop_front() {
            let Some(entries) = self.index(&id).await? else {
                continue;
            };
            for entry in &entries {
                for dep in entry.dependencies.keys() {
                    if seen.insert(dep.clone()) {
                        queue.push_back(dep.clone());
                    }
                }
            }
            out.insert(id, entries);
        }
        Ok(out)
    }

    /// Downloads a package (or takes it from the cache) and checks its digest. `progress` gets
    /// (bytes so far, total when known).
    pub async fn download(
        &self,
        entry: &IndexEntry,
        progress: &mut (dyn FnMut(u64, Option<u64>) + Send),
    ) -> Result<Vec<u8>, ClientError> {
        let cached = self.cache.join("packages").join(format!(
            "{}.ucpkg",
            entry.digest.trim_start_matches("sha256:")
        ));
        if let Ok(bytes) = std::fs::read(&cached)
            && digest(&bytes) == entry.digest
        {
            progress(bytes.len() as u64, Some(bytes.len() as u64));
            return Ok(bytes);
        }
        let url = format!(
            "{}/packages/{}/{}/download",
            self.base, entry.id, entry.version
        );
        let mut response = send(&url, self.http.get(&url)).await?;
        let total = response.content_length();
        let mut bytes = Vec::with_capacity(total.unwrap_or(entry.size) as usize);
        while let Some(chunk) = response.chunk().await.map_err(unreachable(&url))? {
            bytes.extend_from_slice(&chunk);
            progress(bytes.len() as u64, total);
            if bytes.len() as u64 > entry.size.max(1) * 2 + (1 << 20) {
                return Err(ClientError::Invalid(format!(
                    "the download of {} is far larger than the index says",
                    entry.id
                )));
            }
        }
        let actual = digest(&bytes);
        if actual != entry.digest {
            return Err(ClientError::DownloadMismatch {
                id: entry.id.clone(),
                version: entry.version.to_string(),
                expected: entry.digest.clone(),
                actual,
            });
        }
        write_atomic(&cached, &bytes)?;
        Ok(bytes)
    }

    /// Publishes a signed package (publisher side).
    pub async fn publish(
        &self,
        token: &str,
        archive: Vec<u8>,
        signature: &PackageSignature,
        public_key: Option<&PublicKeyFile>,
    ) -> Result<IndexEntry, ClientError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let url = format!("{}/api/v1/packages", self.base);
        let mut request = self
            .http
            .post(&url)
            .bearer_auth(token)
            .header("x-ucms-signature", b64.encode(signature.to_json()))
            .body(archive);
        if let Some(key) = public_key {
            request = request.header(
                "x-ucms-public-key",
                b64.encode(serde_json::to_vec(key).expect("serializes")),
            );
        }
        self.send_json(&url, request).await
    }

    /// Yanks (or un-yanks) a version (publisher side).
    pub async fn set_yanked(
        &self,
        token: &str,
        id: &str,
        version: &str,
        yanked: bool,
    ) -> Result<(), ClientError> {
        let url = format!("{}/api/v1/packages/{id}/{version}/yank", self.base);
        let request = if yanked {
            self.http.post(&url)
        } else {
            self.http.delete(&url)
        };
        send(&url, request.bearer_auth(token)).await?;
        Ok(())
    }

    /// Searches the registry.
    pub async fn search(&self, query: &str) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}/api/v1/search", self.base);
        let mut full = url::Url::parse(&url).map_err(|e| ClientError::Invalid(e.to_string()))?;
        full.query_pairs_mut().append_pair("q", query);
        let request = self.http.get(full);
        self.send_json(&url, request).await
    }

    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let body = send(url, request)
            .await?
            .bytes()
            .await
            .map_err(unreachable(url))?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Invalid(e.to_string()))
    }
}

/// Sends `request` to `url`: a transport failure or an error status becomes a [`ClientError`]
/// naming the URL (with the registry's own message when it sent one).
async fn send(
    url: &str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, ClientError> {
    let response = request.send().await.map_err(unreachable(url))?;
    let status = response.status().as_u16();
    if status >= 400 {
        let body = response.bytes().await.unwrap_or_default();
        return Err(status_error(url, status, &body));
    }
    Ok(response)
}

/// Turns a transport failure while talking to `url` into [`ClientError::Unreachable`].
fn unreachable(url: &str) -> impl Fn(reqwest::Error) -> ClientError + '_ {
    move |e| ClientError::Unreachable {
        url: url.to_string(),
        message: error_chain(&e),
    }
}

fn status_error(url: &str, status: u16, body: &[u8]) -> ClientError {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v["error"][name].as_str())
            .map(str::to_string)
    };
    ClientError::Status {
        url: url.to_string(),
        status,
        code: field("code").unwrap_or_else(|| "http_error".into()),
        message: field("message")
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect()),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let cache = |error| ClientError::Cache {
        path: path.display().to_string(),
        error,
    };
    std::fs::write(&tmp, bytes).map_err(cache)?;
    std::fs::rename(&tmp, path).map_err(cache)
}
