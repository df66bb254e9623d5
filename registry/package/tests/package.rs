//! Packing, unpacking hostile archives, signing, trust decisions and signed metadata. Error
//! messages are snapshots: they are what an operator reads when an install is refused.

use std::collections::BTreeMap;

use ucms_package::archive::{self, Contents, Limits, UnpackError};
use ucms_package::keys::{PublicKeyFile, SecretKey};
use ucms_package::metadata::{MetadataError, Signed, Snapshot};
use ucms_package::signature::PackageSignature;
use ucms_package::trust::{Endorsement, Revocation, Rotation, TrustError, TrustPath, TrustStore};

const MANIFEST: &str = r#"id = "hello"
version = "0.1.0"
publisher = "acme"
description = "Says hello"
api = "^0.1"
"#;

fn contents() -> Contents {
    Contents {
        manifest_text: MANIFEST.into(),
        manifest: ucms_manifest::Manifest::parse(MANIFEST).unwrap(),
        wasm: b"\0asm fake component".to_vec(),
        readme: Some("# hello\n".into()),
        changelog: None,
        assets: BTreeMap::from([("admin/index.html".to_string(), b"<h1>hi</h1>".to_vec())]),
    }
}

/// A zstd-compressed tar built entry by entry, with headers written by hand so tests can say
/// things `tar::Builder` would refuse to.
fn hostile(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut header = tar::Header::new_gnu();
        let name = &mut header.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_entry_type(*kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            header.set_link_name("/etc/passwd").unwrap();
        }
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    zstd::encode_all(tar.as_slice(), 3).unwrap()
}

fn manifest_entry() -> (&'static str, tar::EntryType, &'static [u8]) {
    (
        "ucms-plugin.toml",
        tar::EntryType::Regular,
        MANIFEST.as_bytes(),
    )
}

#[test]
fn packing_is_reproducible_and_round_trips() {
    let a = archive::pack(&contents());
    let b = archive::pack(&contents());
    assert_eq!(a, b, "the same contents give the same bytes");
    let back = archive::unpack(&a, &Limits::default()).unwrap();
    assert_eq!(back, contents());
    assert_eq!(
        archive::file_name("hello", &semver::Version::new(0, 1, 0)),
        "hello-0.1.0.ucpkg"
    );
}

#[test]
fn a_folder_packs_like_its_contents() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ucms-plugin.toml"), MANIFEST).unwrap();
    std::fs::write(dir.path().join("plugin.wasm"), b"\0asm fake component").unwrap();
    std::fs::write(dir.path().join("README.md"), "# hello\n").unwrap();
    std::fs::create_dir_all(dir.path().join("assets/admin")).unwrap();
    std::fs::write(dir.path().join("assets/admin/index.html"), "<h1>hi</h1>").unwrap();
    let read = archive::read_folder(dir.path()).unwrap();
    assert_eq!(archive::pack(&read), archive::pack(&contents()));
}

/// Found by the `package_tar` fuzz target: an entry whose name was not UTF-8 was unpacked under
/// a lossily converted name (`\u{FFFD}` for each bad byte) instead of being refused.
#[test]
fn entries_whose_names_are_not_utf8_are_refused() {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in [
        (&b"ucms-plugin.toml"[..], MANIFEST.as_bytes()),
        (&b"plugin.wasm"[..], &b"\0asm"[..]),
        (&b"./assets/\xff\xfe1"[..], &b"x"[..]),
    ] {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    let archive = zstd::encode_all(builder.into_inner().unwrap().as_slice(), 3).unwrap();
    let err = archive::unpack(&archive, &Limits::default()).unwrap_err();
    assert_eq!(
        err,
        UnpackError::UnsafePath {
            entry: "./assets/\u{FFFD}\u{FFFD}1".into(),
            reason: "it is not UTF-8"
        }
    );
}

#[test]
fn hostile_archives_are_refused_naming_the_entry() {
    let limits = Limits::default();
    let refuse = |entries: &[(&str, tar::EntryType, &[u8])]| {
        archive::unpack(&hostile(entries), &limits).unwrap_err()
    };

    let err = refuse(&[
        manifest_entry(),
        ("../../etc/passwd", tar::EntryType::Regular, b"root::0:0"),
    ]);
    assert_eq!(
        err,
        UnpackError::UnsafePath {
            entry: "../../etc/passwd".into(),
            reason: "it climbs out with '..'"
        }
    );
    insta::assert_snapshot!("parent_dir", err.to_string());

    let err = refuse(&[
        manifest_entry(),
        ("/etc/passwd", tar::EntryType::Regular, b"x"),
    ]);
    assert!(
        matches!(err, UnpackError::UnsafePath { ref entry, .. } if entry == "/etc/passwd"),
        "{err}"
    );

    let err = refuse(&[
        manifest_entry(),
        ("assets/link", tar::EntryType::Symlink, b""),
    ]);
    assert_eq!(
        err,
        UnpackError::NotAFile {
            entry: "assets/link".into(),
            kind: "symbolic link".into()
        }
    );
    insta::assert_snapshot!("symlink", err.to_string());

    let err = refuse(&[manifest_entry(), ("assets/hard", tar::EntryType::Link, b"")]);
    assert!(
        matches!(err, UnpackError::NotAFile { ref kind, .. } if kind == "hard link"),
        "{err}"
    );

    let err = refuse(&[manifest_entry(), ("assets/dev", tar::EntryType::Char, b"")]);
    assert!(
        matches!(err, UnpackError::NotAFile { ref kind, .. } if kind == "character device"),
        "{err}"
    );

    let err = refuse(&[manifest_entry(), manifest_entry()]);
    assert_eq!(
        err,
        UnpackError::Duplicate {
            entry: "ucms-plugin.toml".into()
        }
    );

    let err = refuse(&[
        manifest_entry(),
        ("secrets.txt", tar::EntryType::Regular, b"x"),
    ]);
    assert_eq!(
        err,
        UnpackError::Unexpected {
            entry: "secrets.txt".into()
        }
    );

    let err = refuse(&[manifest_entry()]);
    assert_eq!(err, UnpackError::Missing("plugin.wasm"));

    let many: Vec<(String, tar::EntryType, &[u8])> = (0..30)
        .map(|i| (format!("assets/{i}"), tar::EntryType::Regular, &b"x"[..]))
        .collect();
    let many: Vec<(&str, tar::EntryType, &[u8])> =
        many.iter().map(|(p, k, d)| (p.as_str(), *k, *d)).collect();
    let err = archive::unpack(
        &hostile(&many),
        &Limits {
            max_entries: 10,
            ..limits
        },
    )
    .unwrap_err();
    assert_eq!(err, UnpackError::TooManyEntries { limit: 10 });

    assert!(matches!(
        archive::unpack(b"not zstd at all", &limits).unwrap_err(),
        UnpackError::Corrupt(_)
    ));
}

#[test]
fn a_decompression_bomb_stops_at_the_cap() {
    let zeros = vec![0u8; 16 << 20];
    let bomb = hostile(&[
        manifest_entry(),
        ("plugin.wasm", tar::EntryType::Regular, &zeros),
    ]);
    assert!(
        bomb.len() < 8 * 1024,
        "16 MiB of zeros compress to {} bytes",
        bomb.len()
    );
    let limits = Limits {
        max_uncompressed: 1 << 20,
        ..Limits::default()
    };
    let err = archive::unpack(&bomb, &limits).unwrap_err();
    assert_eq!(err, UnpackError::Inflates { limit: 1 << 20 });
    insta::assert_snapshot!("bomb", err.to_string());
    let err = archive::unpack(
        &bomb,
        &Limits {
            max_file: 1 << 20,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, UnpackError::FileTooLarge { ref entry, .. } if entry == "plugin.wasm"),
        "{err}"
    );
}

#[test]
fn key_files_are_private_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.key");
    let key = SecretKey::generate("acme");
    key.save(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let loaded = SecretKey::load(&path).unwrap();
    assert_eq!(loaded.public(), key.public());
    assert_eq!(loaded.publisher(), "acme");
    let public = PublicKeyFile::load(&ucms_package::keys::public_path(&path)).unwrap();
    assert_eq!(public.key().unwrap(), key.public());
    assert!(key.save(&path).is_err(), "never overwrites a key");
    let secret_file = std::fs::read_to_string(&path).unwrap();
    let secret: serde_json::Value = serde_json::from_str(&secret_file).unwrap();
    let secret = secret["secret_key"].as_str().unwrap();
    assert!(
        !format!("{key:?}").contains(secret),
        "Debug never shows the secret"
    );
}

struct World {
    registry: SecretKey,
    publisher: SecretKey,
    archive: Vec<u8>,
    signature: PackageSignature,
}

fn world() -> World {
    let registry = SecretKey::generate("registry");
    let publisher = SecretKey::generate("acme");
    let archive = archive::pack(&contents());
    let signature = PackageSignature::sign(&publisher, &archive);
    World {
        registry,
        publisher,
        archive,
        signature,
    }
}

const NOW: i64 = 1_800_000_000;

#[test]
fn a_directly_trusted_or_endorsed_key_verifies() {
    let w = world();
    let mut trust = TrustStore::new();
    trust.trust_publisher("acme", w.publisher.public());
    let key = trust
        .verify_package(&w.archive, Some(&w.signature), "acme", NOW)
        .unwrap();
    assert_eq!(key.path, TrustPath::Root);

    let mut trust = TrustStore::new();
    trust.trust_registry(w.registry.public());
    trust.add_endorsement(Endorsement::issue(
        &w.registry,
        "acme",
        &w.publisher.public(),
        NOW + 3600,
    ));
    let key = trust
        .verify_package(&w.archive, Some(&w.signature), "acme", NOW)
        .unwrap();
    assert_eq!(
        key.path,
        TrustPath::Endorsed {
            by: w.registry.public().id()
        }
    );
}

#[test]
fn verification_refusals_say_what_failed() {
    let w = world();
    let mut trust = TrustStore::new();
    trust.trust_registry(w.registry.public());
    trust.add_endorsement(Endorsement::issue(
        &w.registry,
        "acme",
        &w.publisher.public(),
        NOW + 3600,
    ));

    // A tampered byte.
    let mut tampered = w.archive.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    let err = trust
        .verify_package(&tampered, Some(&w.signature), "acme", NOW)
        .unwrap_err();
    assert!(matches!(err, TrustError::DigestMismatch { .. }));
    insta::assert_snapshot!("tampered", redact(&err.to_string()));

    // Unsigned.
    let err = trust
        .verify_package(&w.archive, None, "acme", NOW)
        .unwrap_err();
    insta::assert_snapshot!("unsigned", err.to_string());

    // A key nobody vouches for.
    let stranger = SecretKey::generate("acme");
    let forged = PackageSignature::sign(&stranger, &w.archive);
    let err = trust
        .verify_package(&w.archive, Some(&forged), "acme", NOW)
        .unwrap_err();
    assert_eq!(
        err,
        TrustError::UnknownKey {
            key_id: stranger.public().id()
        }
    );
    insta::assert_snapshot!("unknown_key", redact(&err.to_string()));

    // A signature field altered.
    let mut altered = w.signature.clone();
    altered.signature = stranger.sign(b"something else");
    let err = trust
        .verify_package(&w.archive, Some(&altered), "acme", NOW)
        .unwrap_err();
    assert!(matches!(err, TrustError::BadSignature { .. }), "{err}");

    // The key's owner isn't the package's publisher.
    let err = trust
        .verify_package(&w.archive, Some(&w.signature), "someone-else", NOW)
        .unwrap_err();
    assert!(matches!(err, TrustError::PublisherMismatch { .. }), "{err}");

    // The endorsement has run out.
    let err = trust
        .verify_package(&w.archive, Some(&w.signature), "acme", NOW + 7200)
        .unwrap_err();
    assert!(matches!(err, TrustError::EndorsementExpired { .. }));
    insta::assert_snapshot!("expired_endorsement", redact(&err.to_string()));

    // Revoked by the registry.
    assert!(trust.add_revocation(Revocation::issue(
        &w.registry,
        &w.publisher.public().id(),
        NOW - 60,
        "key leaked"
    )));
    let err = trust
        .verify_package(&w.archive, Some(&w.signature), "acme", NOW)
        .unwrap_err();
    assert!(matches!(err, TrustError::Revoked { .. }));
    insta::assert_snapshot!("revoked", redact(&err.to_string()));
}

#[test]
fn revocations_must_be_local_or_signed_by_a_trusted_registry() {
    let w = world();
    let mut trust = TrustStore::new();
    trust.trust_publisher("acme", w.publisher.public());
    let rogue = SecretKey::generate("rogue-registry");
    assert!(!trust.add_revocation(Revocation::issue(
        &rogue,
        &w.publisher.public().id(),
        NOW,
        "spite"
    )));
    assert!(
        trust
            .verify_package(&w.archive, Some(&w.signature), "acme", NOW)
            .is_ok()
    );
    assert!(trust.add_revocation(Revocation::local(
        &w.publisher.public().id(),
        NOW,
        "operator decision"
    )));
    assert!(matches!(
        trust.verify_package(&w.archive, Some(&w.signature), "acme", NOW),
        Err(TrustError::Revoked { .. })
    ));
}

#[test]
fn a_rotated_key_inherits_trust_from_the_old_one() {
    let w = world();
    let new = SecretKey::generate("acme");
    let signed_by_new = PackageSignature::sign(&new, &w.archive);
    let mut trust = TrustStore::new();
    trust.trust_publisher("acme", w.publisher.public());
    assert!(matches!(
        trust.verify_package(&w.archive, Some(&signed_by_new), "acme", NOW),
        Err(TrustError::UnknownKey { .. })
    ));
    trust.add_rotation(Rotation::issue(&w.publisher, &new.public(), NOW));
    let key = trust
        .verify_package(&w.archive, Some(&signed_by_new), "acme", NOW)
        .unwrap();
    assert_eq!(
        key.path,
        TrustPath::Rotated {
            from: w.publisher.public().id()
        }
    );

    // A rotation signed by a stranger's key grants nothing.
    let stranger = SecretKey::generate("acme");
    let other = SecretKey::generate("acme");
    trust.add_rotation(Rotation::issue(&stranger, &other.public(), NOW));
    let signed_by_other = PackageSignature::sign(&other, &w.archive);
    assert!(matches!(
        trust.verify_package(&w.archive, Some(&signed_by_other), "acme", NOW),
        Err(TrustError::UnknownKey { .. })
    ));

    // Revoking the old key cuts off its successors.
    trust.add_revocation(Revocation::local(
        &w.publisher.public().id(),
        NOW,
        "retired",
    ));
    assert!(matches!(
        trust.verify_package(&w.archive, Some(&signed_by_new), "acme", NOW),
        Err(TrustError::Revoked { .. })
    ));
}

#[test]
fn signed_snapshots_refuse_rollback_expiry_and_forgery() {
    let w = world();
    let mut trust = TrustStore::new();
    trust.trust_registry(w.registry.public());
    let snapshot = |version| Snapshot {
        version,
        timestamp: NOW,
        expires: NOW + 86_400,
        packages: BTreeMap::from([("hello".to_string(), "sha256:00".to_string())]),
    };
    let v5 = Signed::sign(&w.registry, snapshot(5));
    let v4 = Signed::sign(&w.registry, snapshot(4));
    assert_eq!(v5.verify(&trust, Some(4), NOW).unwrap().version, 5);
    assert_eq!(
        v5.verify(&trust, Some(5), NOW).unwrap().version,
        5,
        "the same version again is fine"
    );

    let err = v4.verify(&trust, Some(5), NOW).unwrap_err();
    assert_eq!(err, MetadataError::Rollback { seen: 5, got: 4 });
    insta::assert_snapshot!("rollback", err.to_string());

    let err = v5.verify(&trust, None, NOW + 86_401).unwrap_err();
    assert!(matches!(err, MetadataError::Expired { .. }));
    insta::assert_snapshot!("frozen", err.to_string());

    let mut forged = v5.clone();
    forged
        .signed
        .packages
        .insert("evil".into(), "sha256:ff".into());
    assert_eq!(
        forged.verify(&trust, None, NOW).unwrap_err(),
        MetadataError::BadSignature
    );

    let rogue = Signed::sign(&w.publisher, snapshot(9));
    assert!(matches!(
        rogue.verify(&trust, None, NOW),
        Err(MetadataError::UnknownKey(_))
    ));
    let json = serde_json::to_string(&v5).unwrap();
    let parsed: Signed<Snapshot> = serde_json::from_str(&json).unwrap();
    assert!(
        parsed.verify(&trust, None, NOW).is_ok(),
        "survives a JSON round trip"
    );
}

/// Key ids and digests are random per run; snapshots show their shape.
fn redact(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(i) = rest.find("ed25519:").or_else(|| rest.find("sha256:")) {
        out.push_str(&rest[..i]);
        let prefix = if rest[i..].starts_with("ed25519:") {
            "ed25519:"
        } else {
            "sha256:"
        };
        out.push_str(prefix);
        out.push_str("[..]");
        rest = &rest[i + prefix.len()..];
        rest = rest.trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}
