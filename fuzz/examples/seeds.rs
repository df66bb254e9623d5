//! Writes the hand-made seeds of the corpus (`fuzz/corpus/<target>/seed-*`) and, once, the fixed
//! keys the registry target trusts. Run from `fuzz/`: `cargo run --example seeds`. The fuzzer
//! grows the corpus from these; `cargo xtask fuzz --minimize` keeps it small.

use std::path::{Path, PathBuf};

use ucms_fuzz::{RawEntry, manifest, write_tar};
use ucms_package::archive::{Contents, pack};
use ucms_package::index::IndexEntry;
use ucms_package::keys::SecretKey;
use ucms_package::metadata::{Signed, Snapshot};
use ucms_package::signature::PackageSignature;
use ucms_package::trust::{Endorsement, Revocation, Rotation};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn seed(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let dir = root().join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn key(name: &str, publisher: &str) {
    let path = root().join("keys").join(name);
    if !path.exists() {
        SecretKey::generate(publisher).save(&path).unwrap();
    }
}

const FULL_MANIFEST: &str = r#"id = "notes"
version = "1.2.3"
publisher = "acme"
description = "Notes"
api = "^0.2"
license = "MIT"
categories = ["content"]

[dependencies]
content = "^1"

[capabilities]
kv = true
blobs = { max-bytes = 1048576 }
cache = true
events = { publish = ["notes.*"] }
http-client = { hosts = ["api.example.com", "*.example.org:8443"] }

[capabilities.documents]
collections = ["notes"]
indexes = [{ collection = "notes", name = "by_title", fields = ["title"], unique = true }]
search = [{ collection = "notes", fields = ["title", "body"] }]

[permissions]
"notes.edit" = "Edit notes"

[[routes]]
method = "GET"
path = "/notes/{id}"
public = true

[[routes]]
method = "POST"
path = "/notes"
permission = "notes.edit"
upload = true

[[routes]]
method = "GET"
path = "/files/{*rest}"
public = true

[[subscriptions]]
topic = "content.*"

[[hooks]]
point = "content.before-save"
priority = 10
on-failure = "skip"

[[schedules]]
name = "cleanup"
cron = "0 3 * * *"

[settings.greeting]
type = "string"
default = "hi"

[secrets]
api-key = "The API key"

[limits]
memory-mib = 32
timeout-ms = 2000
"#;

fn main() {
    key("fuzz-registry.key", "fuzz-registry");
    key("fuzz-publisher.key", "fuzz");
    let registry = ucms_fuzz::registry_key();
    let publisher = ucms_fuzz::publisher_key();

    // manifest
    seed("manifest", "minimal", manifest("hello"));
    seed("manifest", "full", FULL_MANIFEST);
    seed(
        "manifest",
        "bad-route",
        format!(
            "{}[[routes]]\nmethod = \"GET\"\npath = \"/a/{{x}}/{{x}}\"\npublic = true\n",
            manifest("bad")
        ),
    );
    seed(
        "manifest",
        "syntax",
        "id = \"x\nversion = 1..2\n[capabilities\n",
    );

    // routes: the Arbitrary encoding is opaque; bytes that decode to a few routes will do.
    seed("routes", "a", b"\x00\x08/items/{id}\x01\x08/items/{id}\x00\x0a/files/{*r}\x02\x01\x00\x08/items/42\x03\x01x");
    seed(
        "routes",
        "b",
        b"\x03\x05/a/b/\x00\x04/{a}\x01\x05/a.json\x00\x02\x01\x00\x03/a/\x01\x01z",
    );

    // package_raw: real packages, one with assets.
    let contents = |assets: &[(&str, &[u8])]| Contents {
        manifest_text: manifest("packed"),
        manifest: ucms_manifest::Manifest::parse(&manifest("packed")).unwrap(),
        wasm: b"\0asm\x0d\0\x01\0".to_vec(),
        readme: Some("# Packed\n".into()),
        changelog: None,
        assets: assets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect(),
    };
    seed("package_raw", "plain", pack(&contents(&[])));
    seed(
        "package_raw",
        "assets",
        pack(&contents(&[
            ("admin/index.html", b"<h1>hi</h1>"),
            ("a/b/c.css", b"x"),
        ])),
    );
    // Hostile archives, written byte by byte and compressed.
    let hostile =
        |entries: &[RawEntry]| zstd::encode_all(write_tar(entries).as_slice(), 3).unwrap();
    let file = |name: &str, data: &[u8]| RawEntry {
        name: name.as_bytes().to_vec(),
        kind: b'0',
        link: vec![],
        data: data.to_vec(),
        claimed_size: None,
    };
    let m = manifest("hostile");
    let base = || {
        vec![
            file("ucms-plugin.toml", m.as_bytes()),
            file("plugin.wasm", b"\0asm"),
        ]
    };
    let with = |extra: RawEntry| {
        let mut e = base();
        e.push(extra);
        e
    };
    seed(
        "package_raw",
        "dotdot",
        hostile(&with(file("assets/../../etc/passwd", b"x"))),
    );
    seed(
        "package_raw",
        "absolute",
        hostile(&with(file("/assets/x", b"x"))),
    );
    seed(
        "package_raw",
        "symlink",
        hostile(&with(RawEntry {
            kind: b'2',
            link: b"/etc/passwd".to_vec(),
            ..file("assets/link", b"")
        })),
    );
    seed(
        "package_raw",
        "hardlink",
        hostile(&with(RawEntry {
            kind: b'1',
            link: b"plugin.wasm".to_vec(),
            ..file("assets/hard", b"")
        })),
    );
    seed(
        "package_raw",
        "device",
        hostile(&with(RawEntry {
            kind: b'3',
            ..file("assets/tty", b"")
        })),
    );
    seed(
        "package_raw",
        "duplicate",
        hostile(&with(file("./plugin.wasm", b"\0asm-again"))),
    );
    seed(
        "package_raw",
        "long-name",
        hostile(&with(file(
            &format!("assets/{}", "d/".repeat(80) + "f"),
            b"x",
        ))),
    );
    seed(
        "package_raw",
        "lying-size",
        hostile(&with(RawEntry {
            claimed_size: Some(1 << 40),
            ..file("assets/big", b"x")
        })),
    );
    seed(
        "package_raw",
        "bomb",
        hostile(&with(file("assets/zeros", &vec![0u8; 1 << 20]))),
    );
    seed(
        "package_raw",
        "non-utf8-name",
        hostile(&with(RawEntry {
            name: b"assets/\xff\xfe".to_vec(),
            ..file("", b"x")
        })),
    );
    seed("package_raw", "truncated", &hostile(&base())[..40]);

    // package_tar: opaque Arbitrary bytes; a few shapes.
    seed(
        "package_tar",
        "a",
        b"\x00\x05\x00\x10manifest-bytes..\x00\x01\x00\x04\x00asm\x00\x00",
    );
    seed(
        "package_tar",
        "b",
        b"\x03\x06\x02\x00\x05\x00../x\x02\x00\x00\x00\x00\x01\x10\x00\x02\x00",
    );

    // documents_path
    for (n, p) in [
        "author.name",
        "tags.0",
        "_id",
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p",
        "é.日本.x-y_z",
        "a..b",
        "0.a",
        "_id.x",
        "a.999999",
        "a.1000000",
    ]
    .iter()
    .enumerate()
    {
        seed(
            "documents_path",
            &n.to_string(),
            format!(
                "{p}\n{{\"author\":{{\"name\":\"Ada\"}},\"tags\":[\"x\"],\"a\":{{\"b\":[1,2]}}}}"
            ),
        );
    }

    // documents_query: opaque bytes; the generator takes what it gets.
    seed("documents_query", "a", (0u8..=255).collect::<Vec<_>>());
    seed(
        "documents_query",
        "b",
        [
            7u8, 3, 1, 9, 4, 4, 2, 8, 0, 1, 5, 6, 2, 2, 9, 1, 0, 3, 3, 3, 7, 1, 1, 8,
        ]
        .repeat(8),
    );

    // lockfile
    seed(
        "lockfile",
        "two",
        "# Written by ucms\nversion = 1\n\n[[plugin]]\nid = \"hello\"\nversion = \"0.1.0\"\ndigest = \"sha256:00\"\nsource = \"registry+http://127.0.0.1:7070\"\n\n[[plugin]]\nid = \"notes\"\nversion = \"1.0.0-beta.1+build\"\ndigest = \"sha256:11\"\nsource = \"local+/srv/notes\"\n",
    );
    seed("lockfile", "bad-version", "version = 2\n");

    // registry_meta (first byte picks the format)
    let archive = b"fuzz";
    let sig = PackageSignature::sign(publisher, archive);
    let pkg = contents(&[]);
    let entry = IndexEntry::for_package(&pkg, &pack(&pkg), sig.clone(), 1_700_000_000);
    seed(
        "registry_meta",
        "index",
        [
            &[0u8][..],
            format!(
                "{}\n{}\n",
                entry.to_line(),
                IndexEntry {
                    yanked: true,
                    ..entry.clone()
                }
                .to_line()
            )
            .as_bytes(),
        ]
        .concat(),
    );
    seed(
        "registry_meta",
        "signature",
        [&[1u8][..], sig.to_json().as_bytes()].concat(),
    );
    let snapshot = Snapshot {
        version: 7,
        timestamp: 1_700_000_000,
        expires: 1_900_000_000,
        packages: [("hello".to_string(), "sha256:00".to_string())].into(),
    };
    let signed = Signed::sign(registry, snapshot);
    seed(
        "registry_meta",
        "snapshot",
        [
            &[2u8][..],
            serde_json::to_string(&signed).unwrap().as_bytes(),
        ]
        .concat(),
    );
    let other = SecretKey::generate("fuzz");
    let statements = serde_json::json!({
        "endorsements": [Endorsement::issue(registry, "fuzz", &publisher.public(), 1_900_000_000)],
        "rotations": [Rotation::issue(publisher, &other.public(), 1_700_000_000)],
        "revocations": [Revocation::issue(registry, &publisher.public().id(), 1_800_000_000, "lost")],
        "key_id": other.public().id(),
        "now": 1_750_000_000,
        "archive": "fuzz",
        "signature": PackageSignature::sign(&other, archive),
        "publisher": "fuzz",
    });
    seed(
        "registry_meta",
        "statements",
        [&[3u8][..], statements.to_string().as_bytes()].concat(),
    );
    // The operator's own revocation (`[trust] revoked`): unsigned.
    let local = serde_json::json!({
        "revocations": [Revocation::local(&publisher.public().id(), 1_800_000_000, "lost laptop")],
        "key_id": publisher.public().id(),
        "now": 1_750_000_000,
    });
    seed(
        "registry_meta",
        "local-revocation",
        [&[3u8][..], local.to_string().as_bytes()].concat(),
    );
    // ... revoked past the year 9999 (every message about the key once panicked).
    let far = serde_json::json!({
        "revocations": [Revocation::local(&publisher.public().id(), 300_000_000_000, "far")],
        "key_id": publisher.public().id(),
    });
    seed(
        "registry_meta",
        "local-revocation-far",
        [&[3u8][..], far.to_string().as_bytes()].concat(),
    );
    seed(
        "registry_meta",
        "public-key",
        [&[4u8][..], publisher.public().to_base64().as_bytes()].concat(),
    );
    println!("seeds written under {}", root().join("corpus").display());
}
