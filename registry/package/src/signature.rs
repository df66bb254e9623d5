//! Package signatures: a publisher key's signature of the archive's SHA-256 digest. It travels in
//! the registry index and beside the file as `NAME-VERSION.ucpkg.sig`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::{KeyId, SecretKey, signing_message};

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A signature of a package archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSignature {
    /// The key that signed.
    pub key_id: KeyId,
    /// The digest of the archive that was signed, `sha256:<hex>`.
    pub digest: String,
    /// Base64 Ed25519 signature.
    pub signature: String,
}

pub(crate) const PURPOSE: &str = "package";

impl PackageSignature {
    /// Signs `archive` with `key`.
    pub fn sign(key: &SecretKey, archive: &[u8]) -> Self {
        let digest = digest(archive);
        Self {
            key_id: key.public().id(),
            signature: key.sign(&signing_message(PURPOSE, digest.as_bytes())),
            digest,
        }
    }

    /// The file name beside a package: `hello-0.1.0.ucpkg.sig`.
    pub fn file_name(package_file: &str) -> String {
        format!("{package_file}.sig")
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a signature serializes")
    }

    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}
