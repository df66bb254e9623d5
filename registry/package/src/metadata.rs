//! Signed, versioned, expiring registry metadata (ideas from TUF).
//!
//! The registry signs a *snapshot* of its index — a version that only grows, an expiry, and the
//! digest of every package's index file — with its key. A client remembers the highest version it
//! has seen per registry and refuses an older one (a rollback attack replaying stale metadata) and
//! an expired one (a freeze attack hiding new releases and yanks); it then checks every index file
//! it reads against the snapshot's digests.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyId, SecretKey, signing_message};
use crate::trust::TrustStore;

/// The registry's signed view of its index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Grows with every change.
    pub version: u64,
    /// Unix seconds when signed.
    pub timestamp: i64,
    /// Unix seconds after which clients must refuse it.
    pub expires: i64,
    /// Package id → `sha256:<hex>` of its index file.
    pub packages: BTreeMap<String, String>,
}

/// A metadata document with its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed<T> {
    pub signed: T,
    pub key_id: KeyId,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    #[error(
        "the registry's metadata is signed by key {0}, which is not a trusted registry key\n  hint: check the registry URL, or trust its key in ucms.toml [trust]"
    )]
    UnknownKey(KeyId),
    #[error("the registry's metadata signature does not verify: it was altered")]
    BadSignature,
    #[error(
        "the registry's metadata is version {got}, older than version {seen} already seen: a rollback to stale metadata is refused"
    )]
    Rollback { seen: u64, got: u64 },
    #[error("the registry's metadata expired on {}: the registry stopped refreshing it, or someone is replaying an old copy", crate::when(*.expired_at))]
    Expired { expired_at: i64 },
}

const PURPOSE: &str = "metadata";

impl<T: Serialize + DeserializeOwned> Signed<T> {
    /// Signs `value` with `key`.
    pub fn sign(key: &SecretKey, value: T) -> Self {
        let payload = serde_json::to_vec(&value).expect("metadata serializes");
        Self {
            signature: key.sign(&signing_message(PURPOSE, &payload)),
            key_id: key.public().id(),
            signed: value,
        }
    }

    fn verify_signature(&self, trust: &TrustStore) -> Result<&T, MetadataError> {
        let key = trust
            .registry_key(&self.key_id)
            .ok_or_else(|| MetadataError::UnknownKey(self.key_id.clone()))?;
        let payload = serde_json::to_vec(&self.signed).expect("metadata serializes");
        if key.verify(&signing_message(PURPOSE, &payload), &self.signature) {
            Ok(&self.signed)
        } else {
            Err(MetadataError::BadSignature)
        }
    }
}

impl Signed<Snapshot> {
    /// Checks the signature, that the version is not older than `seen`, and that it has not
    /// expired at `now` (unix seconds).
    pub fn verify(
        &self,
        trust: &TrustStore,
        seen: Option<u64>,
        now: i64,
    ) -> Result<&Snapshot, MetadataError> {
        let snapshot = self.verify_signature(trust)?;
        if let Some(seen) = seen
            && snapshot.version < seen
        {
            return Err(MetadataError::Rollback {
                seen,
                got: snapshot.version,
            });
        }
        if now > snapshot.expires {
            return Err(MetadataError::Expired {
                expired_at: snapshot.expires,
            });
        }
        Ok(snapshot)
    }
}
