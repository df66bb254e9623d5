//! Which keys a site trusts, and the verification of packages against them.
//!
//! A site trusts *roots*: registry keys and, optionally, publisher keys directly. A publisher key
//! is trusted when it is a root, when a trusted registry key endorsed it (until the endorsement
//! expires), or when a trusted key of the same publisher signed a rotation to it. A revocation —
//! made locally, or signed by a trusted registry key — overrides all of that. Every refusal says
//! which of these failed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::keys::{KeyId, PublicKey, SecretKey, signing_message};
use crate::signature::{self, PackageSignature, digest};

/// A registry key's statement that `key_id` belongs to `publisher`, until `not_after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endorsement {
    pub publisher: String,
    pub key_id: KeyId,
    pub public_key: String,
    /// Unix seconds after which the endorsement no longer counts.
    pub not_after: i64,
    pub signed_by: KeyId,
    pub signature: String,
}

/// A publisher's statement, signed by its old key, that `new_key_id` replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    pub publisher: String,
    pub old_key_id: KeyId,
    pub new_key_id: KeyId,
    pub new_public_key: String,
    /// Unix seconds.
    pub issued_at: i64,
    pub signature: String,
}

/// A statement that a key must no longer be trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    pub key_id: KeyId,
    /// Unix seconds.
    pub revoked_at: i64,
    pub reason: String,
    /// The registry key that signed it; `None` for a revocation the operator made locally.
    pub signed_by: Option<KeyId>,
    pub signature: Option<String>,
}

impl Endorsement {
    fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(&(
            &self.publisher,
            &self.key_id,
            &self.public_key,
            self.not_after,
            &self.signed_by,
        ))
        .expect("serializes")
    }

    /// A registry key endorses `key` for `publisher` until `not_after`.
    pub fn issue(registry: &SecretKey, publisher: &str, key: &PublicKey, not_after: i64) -> Self {
        let mut e = Self {
            publisher: publisher.to_string(),
            key_id: key.id(),
            public_key: key.to_base64(),
            not_after,
            signed_by: registry.public().id(),
            signature: String::new(),
        };
        e.signature = registry.sign(&signing_message("endorsement", &e.payload()));
        e
    }
}

impl Rotation {
    fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(&(
            &self.publisher,
            &self.old_key_id,
            &self.new_key_id,
            &self.new_public_key,
            self.issued_at,
        ))
        .expect("serializes")
    }

    /// `old` hands over to `new`.
    pub fn issue(old: &SecretKey, new: &PublicKey, issued_at: i64) -> Self {
        let mut r = Self {
            publisher: old.publisher().to_string(),
            old_key_id: old.public().id(),
            new_key_id: new.id(),
            new_public_key: new.to_base64(),
            issued_at,
            signature: String::new(),
        };
        r.signature = old.sign(&signing_message("rotation", &r.payload()));
        r
    }
}

impl Revocation {
    fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(&(&self.key_id, self.revoked_at, &self.reason, &self.signed_by))
            .expect("serializes")
    }

    /// A registry-signed revocation.
    pub fn issue(registry: &SecretKey, key_id: &KeyId, revoked_at: i64, reason: &str) -> Self {
        let mut r = Self {
            key_id: key_id.clone(),
            revoked_at,
            reason: reason.to_string(),
            signed_by: Some(registry.public().id()),
            signature: None,
        };
        r.signature = Some(registry.sign(&signing_message("revocation", &r.payload())));
        r
    }

    /// A revocation the site's operator makes for itself.
    pub fn local(key_id: &KeyId, revoked_at: i64, reason: &str) -> Self {
        Self {
            key_id: key_id.clone(),
            revoked_at,
            reason: reason.to_string(),
            signed_by: None,
            signature: None,
        }
    }
}

/// When a revocation took effect, as words: a site's own revocations carry no time.
fn revoked_when(revoked_at: i64) -> String {
    if revoked_at <= 0 {
        "by this site ([trust] revoked)".to_string()
    } else {
        format!("on {}", crate::when(revoked_at))
    }
}

/// Why a package or a key is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error("the package is not signed; only signed packages can be installed from a registry")]
    Unsigned,
    #[error(
        "the package's digest is {actual}, but its signature is for {expected}: the archive was changed after it was signed"
    )]
    DigestMismatch { expected: String, actual: String },
    #[error(
        "the package is signed by key {key_id}, which this site does not trust (not a trusted key, not endorsed by a trusted registry, not rotated from one)\n  hint: trust the publisher's key or the registry's key in ucms.toml [trust]"
    )]
    UnknownKey { key_id: KeyId },
    #[error("the package is signed by key {key_id}, which was revoked {}: {reason}", revoked_when(*.revoked_at))]
    Revoked {
        key_id: KeyId,
        revoked_at: i64,
        reason: String,
    },
    #[error("the package is signed by key {key_id}, whose endorsement by the registry expired on {}\n  hint: the publisher must have the key endorsed again, or the registry must renew it", crate::when(*.expired_at))]
    EndorsementExpired { key_id: KeyId, expired_at: i64 },
    #[error(
        "the signature by key {key_id} does not verify: the package or its signature was altered"
    )]
    BadSignature { key_id: KeyId },
    #[error(
        "key {key_id} belongs to publisher '{key_publisher}', but the package says it is published by '{manifest_publisher}'"
    )]
    PublisherMismatch {
        key_id: KeyId,
        key_publisher: String,
        manifest_publisher: String,
    },
}

/// How a key came to be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustPath {
    /// Listed as a root.
    Root,
    /// Endorsed by this registry key.
    Endorsed { by: KeyId },
    /// Rotated to from this older key.
    Rotated { from: KeyId },
}

/// A key the site trusts, and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    pub key_id: KeyId,
    pub publisher: String,
    pub key: PublicKey,
    pub path: TrustPath,
}

#[derive(Debug, Clone)]
enum Role {
    Registry,
    Publisher(String),
}

/// The keys a site trusts and the statements it knows about.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    roots: BTreeMap<KeyId, (Role, PublicKey)>,
    endorsements: BTreeMap<KeyId, Endorsement>,
    rotations: BTreeMap<KeyId, Rotation>,
    revocations: BTreeMap<KeyId, Revocation>,
}

/// How far a chain of rotations is followed.
const MAX_ROTATIONS: usize = 16;

impl TrustStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts a registry's key: it may endorse publisher keys, revoke keys and sign metadata.
    pub fn trust_registry(&mut self, key: PublicKey) {
        self.roots.insert(key.id(), (Role::Registry, key));
    }

    /// Trusts a publisher's key directly.
    pub fn trust_publisher(&mut self, publisher: &str, key: PublicKey) {
        self.roots
            .insert(key.id(), (Role::Publisher(publisher.to_string()), key));
    }

    pub fn is_registry_key(&self, key_id: &KeyId) -> bool {
        matches!(self.roots.get(key_id), Some((Role::Registry, _)))
            && !self.revocations.contains_key(key_id)
    }

    /// The registry root with this id, if trusted and not revoked.
    pub fn registry_key(&self, key_id: &KeyId) -> Option<&PublicKey> {
        match self.roots.get(key_id) {
            Some((Role::Registry, key)) if !self.revocations.contains_key(key_id) => Some(key),
            _ => None,
        }
    }

    /// Records an endorsement (checked when used).
    pub fn add_endorsement(&mut self, endorsement: Endorsement) {
        self.endorsements
            .insert(endorsement.key_id.clone(), endorsement);
    }

    /// Records a rotation (checked when used).
    pub fn add_rotation(&mut self, rotation: Rotation) {
        self.rotations.insert(rotation.new_key_id.clone(), rotation);
    }

    /// Records a revocation if it is local or validly signed by a trusted registry key; returns
    /// whether it was accepted.
    pub fn add_revocation(&mut self, revocation: Revocation) -> bool {
        let valid = match (&revocation.signed_by, &revocation.signature) {
            (None, None) => true,
            (Some(by), Some(sig)) => self.registry_key(by).is_some_and(|key| {
                key.verify(&signing_message("revocation", &revocation.payload()), sig)
            }),
            _ => false,
        };
        if valid {
            self.revocations
                .insert(revocation.key_id.clone(), revocation);
        }
        valid
    }

    /// Decides whether `key_id` is trusted at `now` (unix seconds), and how.
    pub fn resolve(&self, key_id: &KeyId, now: i64) -> Result<TrustedKey, TrustError> {
        self.resolve_depth(key_id, now, 0)
    }

    fn resolve_depth(
        &self,
        key_id: &KeyId,
        now: i64,
        depth: usize,
    ) -> Result<TrustedKey, TrustError> {
        if let Some(r) = self.revocations.get(key_id) {
            return Err(TrustError::Revoked {
                key_id: key_id.clone(),
                revoked_at: r.revoked_at,
                reason: r.reason.clone(),
            });
        }
        if let Some((Role::Publisher(publisher), key)) = self.roots.get(key_id) {
            return Ok(TrustedKey {
                key_id: key_id.clone(),
                publisher: publisher.clone(),
                key: key.clone(),
                path: TrustPath::Root,
            });
        }
        if let Some(e) = self.endorsements.get(key_id)
            && let Some(registry) = self.registry_key(&e.signed_by)
            && registry.verify(&signing_message("endorsement", &e.payload()), &e.signature)
            && let Ok(key) = PublicKey::from_base64(&e.public_key)
            && key.id() == *key_id
        {
            if now > e.not_after {
                return Err(TrustError::EndorsementExpired {
                    key_id: key_id.clone(),
                    expired_at: e.not_after,
                });
            }
            return Ok(TrustedKey {
                key_id: key_id.clone(),
                publisher: e.publisher.clone(),
                key,
                path: TrustPath::Endorsed {
                    by: e.signed_by.clone(),
                },
            });
        }
        if depth < MAX_ROTATIONS
            && let Some(r) = self.rotations.get(key_id)
            && let Ok(key) = PublicKey::from_base64(&r.new_public_key)
            && key.id() == *key_id
        {
            let old = self.resolve_depth(&r.old_key_id, now, depth + 1)?;
            if old.publisher == r.publisher
                && old
                    .key
                    .verify(&signing_message("rotation", &r.payload()), &r.signature)
            {
                return Ok(TrustedKey {
                    key_id: key_id.clone(),
                    publisher: r.publisher.clone(),
                    key,
                    path: TrustPath::Rotated {
                        from: r.old_key_id.clone(),
                    },
                });
            }
        }
        Err(TrustError::UnknownKey {
            key_id: key_id.clone(),
        })
    }

    /// Verifies that `archive` is signed by `signature`, by a key trusted at `now` that belongs to
    /// `publisher`.
    pub fn verify_package(
        &self,
        archive: &[u8],
        signature: Option<&PackageSignature>,
        publisher: &str,
        now: i64,
    ) -> Result<TrustedKey, TrustError> {
        let signature = signature.ok_or(TrustError::Unsigned)?;
        let actual = digest(archive);
        if actual != signature.digest {
            return Err(TrustError::DigestMismatch {
                expected: signature.digest.clone(),
                actual,
            });
        }
        let trusted = self.resolve(&signature.key_id, now)?;
        if !trusted.key.verify(
            &signing_message(signature::PURPOSE, signature.digest.as_bytes()),
            &signature.signature,
        ) {
            return Err(TrustError::BadSignature {
                key_id: signature.key_id.clone(),
            });
        }
        if trusted.publisher != publisher {
            return Err(TrustError::PublisherMismatch {
                key_id: signature.key_id.clone(),
                key_publisher: trusted.publisher,
                manifest_publisher: publisher.to_string(),
            });
        }
        Ok(trusted)
    }
}
