//! The registry's state and the operations that change it. Every change ends with
//! [`Registry::republish`], which rebuilds the index files and signs a new snapshot.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use ucms_db::on_db;
use ucms_package::archive::{self, Limits};
use ucms_package::component;
use ucms_package::index::IndexEntry;
use ucms_package::keys::{KeyId, PublicKey};
use ucms_package::metadata::{Signed, Snapshot};
use ucms_package::signature::{PackageSignature, digest};
use ucms_package::trust::{Endorsement, Revocation, Rotation, TrustStore};
use ucms_package::unix_now;

use crate::{Registry, RegistryError};

/// What the registry currently serves: the signed snapshot and every index file.
#[derive(Debug)]
pub(crate) struct Published {
    pub snapshot: Signed<Snapshot>,
    pub snapshot_json: String,
    /// Package id → index file text.
    pub index: BTreeMap<String, String>,
}

impl Published {
    /// Before the first [`Registry::republish`].
    pub(crate) fn placeholder(key: &ucms_package::keys::SecretKey) -> Self {
        let signed = Signed::sign(
            key,
            Snapshot {
                version: 0,
                timestamp: 0,
                expires: 0,
                packages: BTreeMap::new(),
            },
        );
        Self {
            snapshot_json: serde_json::to_string(&signed).expect("serializes"),
            snapshot: signed,
            index: BTreeMap::new(),
        }
    }
}

/// A publisher's new token: the secret is shown once.
#[derive(Debug, Clone, Serialize)]
pub struct PublisherToken {
    pub publisher: String,
    pub token: String,
}

const TOKEN_PREFIX: &str = "ucmsr_";

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source works");
    hex::encode(buf)
}

fn now_ms() -> i64 {
    ucms_db::now_ms()
}

impl Registry {
    /// Creates a publisher and its first token.
    pub async fn add_publisher(&self, name: &str) -> Result<PublisherToken, RegistryError> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(RegistryError::bad_request(format!(
                "'{name}' is not a publisher name: use up to 64 lower-case letters, digits, '-' and '_'"
            )));
        }
        let inserted = on_db!(&self.db, write, |pool| {
            sqlx::query("INSERT INTO publishers (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(now_ms())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if inserted == 0 {
            return Err(RegistryError::conflict(format!(
                "the publisher '{name}' already exists"
            )));
        }
        self.add_token(name).await
    }

    /// Issues another token for a publisher.
    pub async fn add_token(&self, publisher: &str) -> Result<PublisherToken, RegistryError> {
        let known: Option<(String,)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT name FROM publishers WHERE name = $1")
                .bind(publisher)
                .fetch_optional(pool)
                .await
        })?;
        if known.is_none() {
            return Err(RegistryError::not_found(format!(
                "there is no publisher '{publisher}'\n  hint: create it with `ucms registry add-publisher {publisher}`"
            )));
        }
        let id = random_hex(8);
        let secret = random_hex(24);
        let hash = Sha256::digest(secret.as_bytes()).to_vec();
        on_db!(&self.db, write, |pool| {
            sqlx::query("INSERT INTO tokens (id, publisher, secret_hash, created_at) VALUES ($1, $2, $3, $4)")
                .bind(&id)
                .bind(publisher)
                .bind(&hash)
                .bind(now_ms())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(PublisherToken {
            publisher: publisher.to_string(),
            token: format!("{TOKEN_PREFIX}{id}_{secret}"),
        })
    }

    /// The publisher a bearer token belongs to.
    pub(crate) async fn authenticate(
        &self,
        token: &str,
    ) -> Result<(String, String), RegistryError> {
        let invalid = || RegistryError::unauthorized("the publisher token is not valid");
        let rest = token.strip_prefix(TOKEN_PREFIX).ok_or_else(invalid)?;
        let (id, secret) = rest.split_once('_').ok_or_else(invalid)?;
        let row: Option<(String, Vec<u8>, Option<i64>)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT publisher, secret_hash, revoked_at FROM tokens WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        let (publisher, hash, revoked) = row.ok_or_else(invalid)?;
        let presented = Sha256::digest(secret.as_bytes());
        if !bool::from(presented.as_slice().ct_eq(hash.as_slice())) || revoked.is_some() {
            return Err(invalid());
        }
        Ok((publisher, id.to_string()))
    }

    /// Registers a publisher key and endorses it with the registry's key.
    pub async fn add_key(
        &self,
        publisher: &str,
        key: &PublicKey,
    ) -> Result<Endorsement, RegistryError> {
        let not_after = unix_now() + self.config.endorsement_ttl.as_secs() as i64;
        let endorsement = Endorsement::issue(&self.key, publisher, key, not_after);
        let existing: Option<(String,)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT publisher FROM keys WHERE key_id = $1")
                .bind(&key.id().0)
                .fetch_optional(pool)
                .await
        })?;
        if let Some((owner,)) = existing
            && owner != publisher
        {
            return Err(RegistryError::conflict(format!(
                "key {} is registered to another publisher",
                key.id()
            )));
        }
        let json = serde_json::to_string(&endorsement).expect("serializes");
        on_db!(&self.db, write, |pool| {
            sqlx::query(
                "INSERT INTO keys (key_id, publisher, public_key, endorsement, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (key_id) DO UPDATE SET endorsement = excluded.endorsement",
            )
            .bind(&key.id().0)
            .bind(publisher)
            .bind(key.to_base64())
            .bind(&json)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.republish().await?;
        Ok(endorsement)
    }

    /// Records a publisher's key rotation, signed by its old key.
    pub async fn add_rotation(
        &self,
        publisher: &str,
        rotation: Rotation,
    ) -> Result<(), RegistryError> {
        if rotation.publisher != publisher {
            return Err(RegistryError::forbidden(
                "a rotation must be for your own publisher",
            ));
        }
        // The rotation must chain from a key the registry trusts for this publisher.
        let mut trust = self.trust().await?;
        trust.add_rotation(rotation.clone());
        let resolved = trust
            .resolve(&rotation.new_key_id, unix_now())
            .map_err(|e| RegistryError::bad_request(format!("the rotation is not valid: {e}")))?;
        if resolved.publisher != publisher {
            return Err(RegistryError::forbidden(
                "the rotation's old key belongs to another publisher",
            ));
        }
        let json = serde_json::to_string(&rotation).expect("serializes");
        on_db!(&self.db, write, |pool| {
            sqlx::query("INSERT INTO rotations (new_key_id, statement) VALUES ($1, $2) ON CONFLICT (new_key_id) DO NOTHING")
                .bind(&rotation.new_key_id.0)
                .bind(&json)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        self.republish().await
    }

    /// Revokes a key: packages it signed are refused by every site that reads this registry.
    pub async fn revoke_key(
        &self,
        key_id: &KeyId,
        reason: &str,
    ) -> Result<Revocation, RegistryError> {
        let revocation = Revocation::issue(&self.key, key_id, unix_now(), reason);
        let json = serde_json::to_string(&revocation).expect("serializes");
        let updated = on_db!(&self.db, write, |pool| {
            sqlx::query("UPDATE keys SET revocation = $1 WHERE key_id = $2 AND revocation IS NULL")
                .bind(&json)
                .bind(&key_id.0)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if updated == 0 {
            return Err(RegistryError::not_found(format!(
                "no active key {key_id} is registered"
            )));
        }
        self.republish().await?;
        Ok(revocation)
    }

    /// The publisher a key is registered to, if any.
    pub(crate) async fn key_owner(&self, key_id: &KeyId) -> Result<Option<String>, RegistryError> {
        let row: Option<(String,)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT publisher FROM keys WHERE key_id = $1")
                .bind(&key_id.0)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(p,)| p))
    }

    /// The registry's own view of trust: its key, its endorsements, rotations and revocations.
    pub(crate) async fn trust(&self) -> Result<TrustStore, RegistryError> {
        let mut trust = TrustStore::new();
        trust.trust_registry(self.key.public());
        for statement in self.statements().await?.into_values().flatten() {
            match statement {
                Statement::Endorsement(e) => trust.add_endorsement(e),
                Statement::Rotation(r) => trust.add_rotation(r),
                Statement::Revocation(r) => {
                    trust.add_revocation(r);
                }
            }
        }
        Ok(trust)
    }

    /// Endorsements, rotations and revocations, as served under `/keys/`.
    pub(crate) async fn statements(
        &self,
    ) -> Result<BTreeMap<&'static str, Vec<Statement>>, RegistryError> {
        let keys: Vec<(String, Option<String>)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT endorsement, revocation FROM keys ORDER BY key_id")
                .fetch_all(pool)
                .await
        })?;
        let rotations: Vec<(String,)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT statement FROM rotations ORDER BY new_key_id")
                .fetch_all(pool)
                .await
        })?;
        let mut out: BTreeMap<&'static str, Vec<Statement>> = BTreeMap::new();
        for (endorsement, revocation) in keys {
            if let Ok(e) = serde_json::from_str(&endorsement) {
                out.entry("endorsements")
                    .or_default()
                    .push(Statement::Endorsement(e));
            }
            if let Some(r) = revocation.and_then(|r| serde_json::from_str(&r).ok()) {
                out.entry("revocations")
                    .or_default()
                    .push(Statement::Revocation(r));
            }
        }
        for (rotation,) in rotations {
            if let Ok(r) = serde_json::from_str(&rotation) {
                out.entry("rotations")
                    .or_default()
                    .push(Statement::Rotation(r));
            }
        }
        Ok(out)
    }

    /// Checks and stores a package. Versions are immutable: publishing one again is refused.
    pub async fn publish(
        &self,
        publisher: &str,
        archive_bytes: &[u8],
        signature: &PackageSignature,
        public_key: Option<&PublicKey>,
    ) -> Result<IndexEntry, RegistryError> {
        if archive_bytes.len() > self.config.max_package_bytes {
            return Err(RegistryError::too_large(format!(
                "the package is {} bytes; this registry accepts up to {} bytes",
                archive_bytes.len(),
                self.config.max_package_bytes
            )));
        }
        let contents = archive::unpack(
            archive_bytes,
            &Limits {
                max_compressed: self.config.max_package_bytes as u64,
                ..Limits::default()
            },
        )
        .map_err(|e| RegistryError::invalid("invalid_package", e.to_string()))?;
        let manifest = &contents.manifest;
        let id = manifest.id.to_string();
        let info = component::read(&contents.wasm)
            .map_err(|e| RegistryError::invalid("invalid_component", e.to_string()))?;
        component::check(&info, manifest, &self.config.supported_api)
            .map_err(|e| RegistryError::invalid("invalid_component", e.to_string()))?;
        for page in &manifest.admin_pages {
            let asset = page.entry.trim_start_matches("assets/");
            if !contents.assets.contains_key(asset) {
                return Err(RegistryError::invalid(
                    "invalid_package",
                    format!(
                        "the admin page {} names {}, which is not in the package",
                        page.path, page.entry
                    ),
                ));
            }
        }
        if manifest.publisher != publisher {
            return Err(RegistryError::forbidden(format!(
                "the package says it is published by '{}', but the token belongs to '{publisher}'",
                manifest.publisher
            )));
        }
        let owners: Vec<(String,)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT publisher FROM owners WHERE package = $1")
                .bind(&id)
                .fetch_all(pool)
                .await
        })?;
        if !owners.is_empty() && !owners.iter().any(|(o,)| o == publisher) {
            return Err(RegistryError::forbidden(format!(
                "'{publisher}' is not an owner of the package '{id}'"
            )));
        }
        if let Some(key) = public_key {
            match self.key_owner(&key.id()).await? {
                None => {
                    self.add_key(publisher, key).await?;
                }
                Some(owner) if owner != publisher => {
                    return Err(RegistryError::forbidden(format!(
                        "key {} is registered to another publisher",
                        key.id()
                    )));
                }
                Some(_) => {}
            }
        }
        let trust = self.trust().await?;
        trust
            .verify_package(archive_bytes, Some(signature), publisher, unix_now())
            .map_err(|e| RegistryError::invalid("signature_refused", e.to_string()))?;

        let entry =
            IndexEntry::for_package(&contents, archive_bytes, signature.clone(), unix_now());
        let path = self.package_path(&id, &manifest.version);
        std::fs::create_dir_all(path.parent().expect("package paths have a parent"))?;
        let tmp = path.with_extension(format!("tmp-{}", random_hex(4)));
        std::fs::write(&tmp, archive_bytes)?;
        let search_text = search_text(&entry);
        let version = manifest.version.to_string();
        let entry_json = entry.to_line();
        let now = now_ms();
        let stored: Result<bool, sqlx::Error> = on_db!(&self.db, write, |pool| {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query("INSERT INTO packages (id, created_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
                    .bind(&id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO owners (package, publisher) VALUES ($1, $2) ON CONFLICT (package, publisher) DO NOTHING")
                    .bind(&id)
                    .bind(publisher)
                    .execute(&mut *tx)
                    .await?;
                let inserted = sqlx::query(
                    "INSERT INTO versions (package, version, entry, yanked, search_text, published_at, readme, changelog) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (package, version) DO NOTHING",
                )
                .bind(&id)
                .bind(&version)
                .bind(&entry_json)
                .bind(false)
                .bind(&search_text)
                .bind(now)
                .bind(contents.readme.as_deref())
                .bind(contents.changelog.as_deref())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Ok(false);
                }
                tx.commit().await?;
                Ok(true)
            }
            .await
        });
        match stored {
            Ok(true) => {
                std::fs::rename(&tmp, &path)?;
            }
            Ok(false) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(RegistryError::conflict(format!(
                    "{id} {version} is already published; versions are immutable, publish a new version"
                )));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
        }
        self.republish().await?;
        tracing::info!(package = %id, %version, publisher, "published");
        Ok(entry)
    }

    /// Marks a version yanked (or not): existing installs keep it, new resolutions skip it.
    pub async fn set_yanked(
        &self,
        publisher: &str,
        id: &str,
        version: &str,
        yanked: bool,
    ) -> Result<(), RegistryError> {
        self.require_owner(publisher, id).await?;
        let row: Option<(String,)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT entry FROM versions WHERE package = $1 AND version = $2")
                .bind(id)
                .bind(version)
                .fetch_optional(pool)
                .await
        })?;
        let (entry,) = row
            .ok_or_else(|| RegistryError::not_found(format!("{id} {version} is not published")))?;
        let mut entry: IndexEntry =
            serde_json::from_str(&entry).map_err(|e| RegistryError::Internal(e.into()))?;
        entry.yanked = yanked;
        let json = entry.to_line();
        on_db!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE versions SET yanked = $1, entry = $2 WHERE package = $3 AND version = $4",
            )
            .bind(yanked)
            .bind(&json)
            .bind(id)
            .bind(version)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.republish().await
    }

    pub(crate) async fn require_owner(
        &self,
        publisher: &str,
        id: &str,
    ) -> Result<(), RegistryError> {
        let owners = self.owners(id).await?;
        if owners.is_empty() {
            return Err(RegistryError::not_found(format!(
                "no package '{id}' is published here"
            )));
        }
        if !owners.iter().any(|o| o == publisher) {
            return Err(RegistryError::forbidden(format!(
                "'{publisher}' is not an owner of '{id}'"
            )));
        }
        Ok(())
    }

    pub async fn owners(&self, id: &str) -> Result<Vec<String>, RegistryError> {
        let rows: Vec<(String,)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT publisher FROM owners WHERE package = $1 ORDER BY publisher")
                .bind(id)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(|(p,)| p).collect())
    }

    pub async fn set_owner(
        &self,
        by: &str,
        id: &str,
        publisher: &str,
        add: bool,
    ) -> Result<Vec<String>, RegistryError> {
        self.require_owner(by, id).await?;
        if add {
            on_db!(&self.db, write, |pool| {
                sqlx::query("INSERT INTO owners (package, publisher) VALUES ($1, $2) ON CONFLICT (package, publisher) DO NOTHING")
                    .bind(id)
                    .bind(publisher)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })
            .map_err(|e| {
                RegistryError::or_missing(e, || format!("there is no publisher '{publisher}'"))
            })?;
        } else {
            let owners = self.owners(id).await?;
            if owners.len() == 1 && owners[0] == publisher {
                return Err(RegistryError::conflict(
                    "a package keeps at least one owner",
                ));
            }
            on_db!(&self.db, write, |pool| {
                sqlx::query("DELETE FROM owners WHERE package = $1 AND publisher = $2")
                    .bind(id)
                    .bind(publisher)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        self.owners(id).await
    }

    /// Every version of every package, newest last per package.
    pub(crate) async fn all_entries(
        &self,
    ) -> Result<BTreeMap<String, Vec<IndexEntry>>, RegistryError> {
        let rows: Vec<(String, String)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT package, entry FROM versions ORDER BY package, published_at, version",
            )
            .fetch_all(pool)
            .await
        })?;
        let mut out: BTreeMap<String, Vec<IndexEntry>> = BTreeMap::new();
        for (package, entry) in rows {
            let entry: IndexEntry =
                serde_json::from_str(&entry).map_err(|e| RegistryError::Internal(e.into()))?;
            out.entry(package).or_default().push(entry);
        }
        Ok(out)
    }

    /// Rebuilds every index file and signs a new snapshot with a higher version.
    pub async fn republish(&self) -> Result<(), RegistryError> {
        let mut published = self.published.write().await;
        let entries = self.all_entries().await?;
        let index: BTreeMap<String, String> = entries
            .into_iter()
            .map(|(id, versions)| {
                let text: String = versions.iter().map(|e| e.to_line() + "\n").collect();
                (id, text)
            })
            .collect();
        let version = self.next_snapshot_version().await?;
        let now = unix_now();
        let snapshot = Snapshot {
            version,
            timestamp: now,
            expires: now + self.config.snapshot_ttl.as_secs() as i64,
            packages: index
                .iter()
                .map(|(id, text)| (id.clone(), digest(text.as_bytes())))
                .collect(),
        };
        let signed = Signed::sign(&self.key, snapshot);
        let snapshot_json = serde_json::to_string_pretty(&signed).expect("serializes");
        *published = Arc::new(Published {
            snapshot: signed,
            snapshot_json,
            index,
        });
        Ok(())
    }

    async fn next_snapshot_version(&self) -> Result<u64, RegistryError> {
        let version: i64 = on_db!(&self.db, write, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let current: Option<(String,)> = sqlx::query_as("SELECT value FROM meta WHERE key = 'snapshot_version'")
                    .fetch_optional(&mut *tx)
                    .await?;
                let next = current.and_then(|(v,)| v.parse::<i64>().ok()).unwrap_or(0) + 1;
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES ('snapshot_version', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(next.to_string())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(next)
            }
            .await
        })?;
        Ok(version as u64)
    }

    pub(crate) async fn published(&self) -> Arc<Published> {
        self.published.read().await.clone()
    }

    /// The archive of a version, counting the download.
    pub(crate) async fn download(&self, id: &str, version: &str) -> Result<Vec<u8>, RegistryError> {
        let parsed = semver::Version::parse(version)
            .map_err(|_| RegistryError::bad_request(format!("'{version}' is not a version")))?;
        let path = self.package_path(id, &parsed);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RegistryError::not_found(format!(
                    "{id} {version} is not published"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        // Two increments in one transaction: the total always equals the sum of the versions,
        // and concurrent downloads never lose a count (each is an atomic `x = x + 1`).
        let counted: Result<(), sqlx::Error> = on_db!(&self.db, write, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let found = sqlx::query("UPDATE versions SET downloads = downloads + 1 WHERE package = $1 AND version = $2")
                    .bind(id)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if found > 0 {
                    sqlx::query("UPDATE packages SET downloads = downloads + 1 WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            }
            .await
        });
        if let Err(e) = counted {
            tracing::warn!(package = id, version, error = %e, "cannot count a download");
        }
        Ok(bytes)
    }

    /// Packages matching a text query, a category and a capability (the newest unyanked version
    /// of each), sorted and paged, with the categories and capabilities of every text match as
    /// facets.
    pub async fn search(&self, params: &SearchParams) -> Result<SearchResults, RegistryError> {
        let entries = self.all_entries().await?;
        let downloads = self.download_totals().await?;
        let ratings = self.ratings().await?;
        let verified = self.verified_publishers().await?;
        let query = params.q.trim().to_lowercase();
        let mut facets = Facets::default();
        let mut hits: Vec<SearchHit> = Vec::new();
        for (id, versions) in entries {
            let Some(latest) = versions
                .iter()
                .filter(|e| !e.yanked)
                .max_by(|a, b| a.version.cmp(&b.version))
                .cloned()
            else {
                continue;
            };
            let text = search_text(&latest);
            if !query.split_whitespace().all(|word| text.contains(word)) {
                continue;
            }
            let capabilities = capability_names(&latest);
            let in_category = params
                .category
                .as_deref()
                .is_none_or(|c| latest.categories.iter().any(|x| x == c));
            let has_capability = params
                .capability
                .as_deref()
                .is_none_or(|c| capabilities.iter().any(|x| x == c));
            // Each facet counts what the other filter leaves, so choosing a category shows
            // which capabilities are among its packages, and the other way round.
            if has_capability {
                for c in &latest.categories {
                    *facets.categories.entry(c.clone()).or_default() += 1;
                }
            }
            if in_category {
                for c in &capabilities {
                    *facets.capabilities.entry(c.clone()).or_default() += 1;
                }
            }
            if !(in_category && has_capability) {
                continue;
            }
            hits.push(SearchHit {
                downloads: downloads.get(&id).copied().unwrap_or(0),
                rating: ratings.get(&id).copied().unwrap_or_default(),
                verified: verified.contains(&latest.publisher),
                updated_at: versions.iter().map(|e| e.published_at).max().unwrap_or(0),
                versions: versions.iter().map(|e| e.version.to_string()).collect(),
                latest,
            });
        }
        match params.sort {
            Sort::Downloads => hits.sort_by_key(|h| std::cmp::Reverse(h.downloads)),
            Sort::Rating => hits.sort_by(|a, b| {
                b.rating
                    .average
                    .total_cmp(&a.rating.average)
                    .then(b.rating.count.cmp(&a.rating.count))
            }),
            Sort::Updated => hits.sort_by_key(|h| std::cmp::Reverse(h.updated_at)),
            Sort::Name => hits.sort_by(|a, b| a.latest.id.cmp(&b.latest.id)),
        }
        let total = hits.len();
        let per_page = params.per_page.clamp(1, 200);
        let page = params.page.max(1);
        let packages = hits
            .into_iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .collect();
        Ok(SearchResults {
            packages,
            total,
            page,
            per_page,
            facets,
        })
    }

    async fn download_totals(&self) -> Result<BTreeMap<String, i64>, RegistryError> {
        let rows: Vec<(String, i64)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT id, downloads FROM packages")
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().collect())
    }
}

/// How search results are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    #[default]
    Downloads,
    Rating,
    Updated,
    Name,
}

/// What to search for.
#[derive(Debug, Clone)]
pub struct SearchParams {
    pub q: String,
    pub category: Option<String>,
    pub capability: Option<String>,
    pub sort: Sort,
    /// From 1.
    pub page: usize,
    pub per_page: usize,
}

impl Default for SearchParams {
    fn default() -> Self {
        Self {
            q: String::new(),
            category: None,
            capability: None,
            sort: Sort::default(),
            page: 1,
            per_page: 20,
        }
    }
}

/// One page of search results.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    pub packages: Vec<SearchHit>,
    /// Matches over all pages.
    pub total: usize,
    pub page: usize,
    pub per_page: usize,
    pub facets: Facets,
}

/// How many text matches have each category and capability.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Facets {
    pub categories: BTreeMap<String, usize>,
    pub capabilities: BTreeMap<String, usize>,
}

/// A search result.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub latest: IndexEntry,
    pub versions: Vec<String>,
    pub downloads: i64,
    pub rating: crate::market::Rating,
    /// Its publisher holds a key this registry endorses.
    pub verified: bool,
    /// Unix seconds of its newest version.
    pub updated_at: i64,
}

/// The capability names (`kv`, `events`, …) a version asks for.
pub(crate) fn capability_names(entry: &IndexEntry) -> Vec<String> {
    entry
        .capabilities
        .iter()
        .filter_map(|c| c.split(':').next())
        .map(|c| c.trim().to_string())
        .collect()
}

/// One of the statements served under `/keys/`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub(crate) enum Statement {
    Endorsement(Endorsement),
    Rotation(Rotation),
    Revocation(Revocation),
}

fn search_text(entry: &IndexEntry) -> String {
    format!(
        "{} {} {} {} {}",
        entry.id,
        entry.publisher,
        entry.description,
        entry.categories.join(" "),
        entry.capabilities.join(" ")
    )
    .to_lowercase()
}

/// Decodes the `X-UCMS-Signature` header: base64 of the signature file's JSON.
pub(crate) fn decode_header_json<T: serde::de::DeserializeOwned>(
    value: &str,
    what: &str,
) -> Result<T, RegistryError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| RegistryError::bad_request(format!("the {what} header is not base64")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::bad_request(format!("the {what} header is not valid: {e}")))
}
