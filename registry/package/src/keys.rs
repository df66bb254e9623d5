//! Ed25519 keys: publisher keys that sign packages, registry keys that sign metadata and endorse
//! publisher keys.
//!
//! Key files are JSON. A secret key file is written with mode 0600 and never printed; a public
//! key file can be shared. A key's id is `ed25519:` and the first 16 hex digits of the SHA-256 of
//! its public key.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A key's short, stable identifier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("cannot read the key file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("cannot write the key file {path}: {error}")]
    Write { path: String, error: std::io::Error },
    #[error("{path} is not a UCMS {expected} file: {reason}")]
    Format {
        path: String,
        expected: &'static str,
        reason: String,
    },
    #[error("{0} already exists; refusing to overwrite a key")]
    Exists(String),
    #[error("'{0}' is not a base64 Ed25519 public key")]
    BadPublicKey(String),
}

/// A public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

impl PublicKey {
    pub fn id(&self) -> KeyId {
        let digest = Sha256::digest(self.0.as_bytes());
        KeyId(format!("ed25519:{}", &hex::encode(digest)[..16]))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_bytes())
    }

    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| KeyError::BadPublicKey(text.to_string()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::BadPublicKey(text.to_string()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| KeyError::BadPublicKey(text.to_string()))
    }

    /// Whether `signature` (base64) is this key's signature of `message` (strict verification:
    /// no malleable or small-order signatures).
    pub fn verify(&self, message: &[u8], signature: &str) -> bool {
        let Ok(bytes) = B64.decode(signature) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        self.0
            .verify_strict(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

/// A secret signing key and the publisher it belongs to.
#[derive(Clone)]
pub struct SecretKey {
    signing: SigningKey,
    publisher: String,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        write!(
            f,
            "SecretKey({} for {})",
            self.public().id(),
            self.publisher
        )
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretKeyFile {
    kind: String,
    publisher: String,
    key_id: KeyId,
    secret_key: String,
}

/// The shareable half of a key pair, as stored in a `.pub` file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyFile {
    pub kind: String,
    pub publisher: String,
    pub key_id: KeyId,
    pub public_key: String,
}

const SECRET_KIND: &str = "ucms-secret-key";
const PUBLIC_KIND: &str = "ucms-public-key";

impl SecretKey {
    /// A new random key for `publisher`.
    pub fn generate(publisher: &str) -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the operating system's random source works");
        Self {
            signing: SigningKey::from_bytes(&seed),
            publisher: publisher.to_string(),
        }
    }

    pub fn publisher(&self) -> &str {
        &self.publisher
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key())
    }

    /// The base64 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        B64.encode(self.signing.sign(message).to_bytes())
    }

    /// Writes the secret key to `path` (mode 0600, never overwriting) and the public key beside it
    /// as `path.pub`.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        if path.exists() {
            return Err(KeyError::Exists(path.display().to_string()));
        }
        let file = SecretKeyFile {
            kind: SECRET_KIND.into(),
            publisher: self.publisher.clone(),
            key_id: self.public().id(),
            secret_key: B64.encode(self.signing.to_bytes()),
        };
        let json = serde_json::to_vec_pretty(&file).expect("a key file serializes");
        write_private(path, &json).map_err(|error| KeyError::Write {
            path: path.display().to_string(),
            error,
        })?;
        let public = self.public_file();
        let public_path = public_path(path);
        std::fs::write(
            &public_path,
            serde_json::to_vec_pretty(&public).expect("serializes"),
        )
        .map_err(|error| KeyError::Write {
            path: public_path.display().to_string(),
            error,
        })
    }

    pub fn public_file(&self) -> PublicKeyFile {
        PublicKeyFile {
            kind: PUBLIC_KIND.into(),
            publisher: self.publisher.clone(),
            key_id: self.public().id(),
            public_key: self.public().to_base64(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|error| KeyError::Read {
            path: path.display().to_string(),
            error,
        })?;
        let format = |reason: String| KeyError::Format {
            path: path.display().to_string(),
            expected: "secret key",
            reason,
        };
        let file: SecretKeyFile = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
        if file.kind != SECRET_KIND {
            return Err(format(format!("its kind is '{}'", file.kind)));
        }
        let bytes = B64
            .decode(&file.secret_key)
            .map_err(|e| format(e.to_string()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format("the key is not 32 bytes".into()))?;
        let key = Self {
            signing: SigningKey::from_bytes(&bytes),
            publisher: file.publisher,
        };
        if key.public().id() != file.key_id {
            return Err(format("its key_id does not match its key".into()));
        }
        Ok(key)
    }
}

impl PublicKeyFile {
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|error| KeyError::Read {
            path: path.display().to_string(),
            error,
        })?;
        let format = |reason: String| KeyError::Format {
            path: path.display().to_string(),
            expected: "public key",
            reason,
        };
        let file: PublicKeyFile = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
        if file.kind != PUBLIC_KIND {
            return Err(format(format!("its kind is '{}'", file.kind)));
        }
        if file.key()?.id() != file.key_id {
            return Err(format("its key_id does not match its key".into()));
        }
        Ok(file)
    }

    pub fn key(&self) -> Result<PublicKey, KeyError> {
        PublicKey::from_base64(&self.public_key)
    }
}

/// `key.json` → `key.json.pub`
pub fn public_path(secret: &Path) -> std::path::PathBuf {
    let mut name = secret
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".pub");
    secret.with_file_name(name)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// The bytes actually signed: a fixed prefix, the statement's purpose, and its payload, so a
/// signature made for one purpose can never be replayed as another.
pub fn signing_message(purpose: &str, payload: &[u8]) -> Vec<u8> {
    let mut message = b"ucms-signature-v1\0".to_vec();
    message.extend_from_slice(purpose.as_bytes());
    message.push(0);
    message.extend_from_slice(payload);
    message
}
