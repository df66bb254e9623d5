//! What a site reads from a registry: index files (one JSON line per version), package
//! signatures, the signed snapshot, and the key statements (endorsements, rotations,
//! revocations) its trust store is built from. The first byte picks the format; the rest is the
//! text.
//!
//! Checks: no panic parsing, verifying, or rendering any error a person would see; an index entry
//! writes back to a line that parses to the same entry; a snapshot verifies only when the fixed
//! registry key signed exactly what was parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use ucms_fuzz::{publisher_key, registry_key};
use ucms_package::index::IndexEntry;
use ucms_package::keys::{KeyId, PublicKey, PublicKeyFile};
use ucms_package::metadata::{Signed, Snapshot};
use ucms_package::signature::PackageSignature;
use ucms_package::trust::{Endorsement, Revocation, Rotation, TrustStore};

/// Key statements and a question for the trust store.
#[derive(Deserialize)]
struct Statements {
    #[serde(default)]
    endorsements: Vec<Endorsement>,
    #[serde(default)]
    rotations: Vec<Rotation>,
    #[serde(default)]
    revocations: Vec<Revocation>,
    key_id: KeyId,
    #[serde(default)]
    now: i64,
    #[serde(default)]
    archive: String,
    #[serde(default)]
    signature: Option<PackageSignature>,
    #[serde(default)]
    publisher: String,
}

fn trust() -> TrustStore {
    let mut trust = TrustStore::new();
    trust.trust_registry(registry_key().public());
    trust
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 5 {
        0 => {
            if let Ok(entries) = IndexEntry::parse_file(&text) {
                for entry in entries {
                    let line = entry.to_line();
                    let again: IndexEntry =
                        serde_json::from_str(&line).expect("a written line parses");
                    assert_eq!(again, entry);
                    let _ = entry.api_req();
                }
            }
        }
        1 => {
            if let Ok(sig) = PackageSignature::from_json(&text) {
                assert_eq!(
                    PackageSignature::from_json(&sig.to_json()).expect("reparses"),
                    sig
                );
                let mut trust = trust();
                trust.trust_publisher("fuzz", publisher_key().public());
                match trust.verify_package(b"fuzz", Some(&sig), "fuzz", 0) {
                    Ok(key) => assert_eq!(
                        sig.signature,
                        publisher_key().sign(&ucms_package::keys::signing_message(
                            "package",
                            sig.digest.as_bytes()
                        )),
                        "verified {key:?}"
                    ),
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
            }
        }
        2 => {
            if let Ok(signed) = serde_json::from_str::<Signed<Snapshot>>(&text) {
                let seen = signed
                    .signed
                    .version
                    .checked_sub(u64::from(rest.len() as u8 % 3));
                for now in [0, signed.signed.expires, i64::MAX] {
                    match signed.verify(&trust(), seen, now) {
                        Ok(snapshot) => {
                            let resigned = Signed::sign(registry_key(), snapshot.clone());
                            assert_eq!(
                                resigned.signature, signed.signature,
                                "verified a signature the key didn't make"
                            );
                        }
                        Err(e) => assert!(!e.to_string().is_empty()),
                    }
                }
            }
        }
        3 => {
            if let Ok(s) = serde_json::from_str::<Statements>(&text) {
                let mut trust = trust();
                for e in s.endorsements {
                    trust.add_endorsement(e);
                }
                for r in s.rotations {
                    trust.add_rotation(r);
                }
                for r in s.revocations {
                    trust.add_revocation(r);
                }
                match trust.resolve(&s.key_id, s.now) {
                    Ok(key) => assert_eq!(key.key.id(), s.key_id),
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
                if let Err(e) = trust.verify_package(
                    s.archive.as_bytes(),
                    s.signature.as_ref(),
                    &s.publisher,
                    s.now,
                ) {
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        _ => {
            if let Ok(key) = PublicKey::from_base64(text.trim()) {
                assert_eq!(
                    PublicKey::from_base64(&key.to_base64())
                        .expect("reparses")
                        .id(),
                    key.id()
                );
                assert!(!key.verify(b"fuzz", text.trim()));
            }
            if let Ok(file) = serde_json::from_str::<PublicKeyFile>(&text) {
                let _ = file.key().map(|k| k.id());
            }
        }
    }
});
