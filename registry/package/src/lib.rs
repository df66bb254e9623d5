//! UCMS plugin packages and the trust around them.
//!
//! - [`archive`]: the `.ucpkg` format (tar + zstd): reproducible [`archive::pack`], defensive
//!   [`archive::unpack`].
//! - [`keys`]: Ed25519 publisher and registry keys, key files, key ids.
//! - [`signature`]: a publisher's signature of an archive's SHA-256 digest.
//! - [`trust`]: which keys a site trusts (roots, registry endorsements, rotations, revocations)
//!   and [`trust::TrustStore::verify_package`], whose errors say exactly what failed.
//! - [`metadata`]: the registry's signed, versioned, expiring snapshot of its index, which lets a
//!   client notice rollback and freeze attacks.
//!
//! ```
//! use ucms_package::{keys::SecretKey, signature::PackageSignature, trust::TrustStore};
//!
//! let key = SecretKey::generate("acme");
//! let archive = b"...the .ucpkg bytes...";
//! let signature = PackageSignature::sign(&key, archive);
//!
//! let mut trust = TrustStore::new();
//! trust.trust_publisher("acme", key.public());
//! let trusted = trust.verify_package(archive, Some(&signature), "acme", 0).unwrap();
//! assert_eq!(trusted.publisher, "acme");
//!
//! let mut tampered = archive.to_vec();
//! tampered[0] ^= 1;
//! assert!(trust.verify_package(&tampered, Some(&signature), "acme", 0).is_err());
//! ```

pub mod archive;
pub mod component;
pub mod index;
pub mod keys;
pub mod metadata;
pub mod signature;
pub mod trust;

/// Unix seconds rendered as RFC 3339, for messages.
pub fn when(unix_seconds: i64) -> String {
    // humantime renders up to the end of year 9999 and fails past it (a Display error, which
    // `to_string` turns into a panic); a signed statement may carry any time.
    const LAST_RENDERED: i64 = 253_402_300_799;
    if unix_seconds > LAST_RENDERED {
        return format!("{unix_seconds} (Unix seconds, after the year 9999)");
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    /// A registry-signed revocation (or the operator's own) with a `revoked_at` past the year
    /// 9999 made every message about the key panic: `when` relied on humantime, which refuses
    /// such years. Found by reading the registry_meta fuzz target's "every error renders" check;
    /// its corpus now holds such a revocation (`seed-local-revocation-far`).
    #[test]
    fn when_renders_any_time() {
        for t in [
            i64::MIN,
            -1,
            0,
            1_700_000_000,
            253_402_300_799,
            253_402_300_800,
            i64::MAX,
        ] {
            assert!(!super::when(t).is_empty(), "{t}");
        }
    }
}
