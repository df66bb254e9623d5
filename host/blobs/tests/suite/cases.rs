//! The suite's bodies: each takes one matrix cell and must pass on all of them.

use std::collections::BTreeSet;

use ucms_blobs::{BlobError, BlobInfo, ByteRange, DEFAULT_CONTENT_TYPE};

use crate::support::{Env, StoreKind, TEST_PART_SIZE, bytes, sha256_hex, walk};

const PLUGIN: &str = "media";

async fn put(env: &Env, key: &str, data: &[u8], content_type: &str) -> BlobInfo {
    let mut writer = env
        .blobs
        .writer(PLUGIN, key, content_type, None, None)
        .await
        .unwrap();
    writer.write(data).await.unwrap();
    writer.finish().await.unwrap()
}

async fn read_all(env: &Env, plugin: &str, key: &str, range: Option<ByteRange>) -> Option<Vec<u8>> {
    let (_, mut reader) = env.blobs.reader(plugin, key, range).await.unwrap()?;
    let expected = reader.len();
    let mut out = Vec::new();
    while let Some(chunk) = reader.read(100_000).await.unwrap() {
        assert!(
            !chunk.is_empty() && chunk.len() <= 100_000,
            "chunk of {}",
            chunk.len()
        );
        out.extend_from_slice(&chunk);
    }
    assert_eq!(out.len() as u64, expected, "reader.len() is what it yields");
    Some(out)
}

fn range(start: u64, end: Option<u64>) -> Option<ByteRange> {
    Some(ByteRange { start, end })
}

pub async fn streamed_put_get_and_ranges(env: &Env) {
    // Larger than two S3 parts, and not a multiple of any chunk size.
    let data = bytes(2 * TEST_PART_SIZE + 1_234_567, 1);
    let size = data.len() as u64;
    let mut writer = env
        .blobs
        .writer(
            PLUGIN,
            "videos/big.bin",
            "video/mp4",
            Some(1 << 40),
            Some(1 << 30),
        )
        .await
        .unwrap();
    let steps = [65_536, 100_003, 1 << 20, 7];
    let (mut at, mut i) = (0, 0);
    while at < data.len() {
        let n = steps[i % steps.len()].min(data.len() - at);
        writer.write(&data[at..at + n]).await.unwrap();
        at += n;
        i += 1;
    }
    assert_eq!(writer.written(), size);
    if let Some(uploads) = env.uploads_in_progress().await {
        assert_eq!(
            uploads, 1,
            "a blob over one part streams as a multipart upload"
        );
    }
    let info = writer.finish().await.unwrap();
    assert_eq!(info.key, "videos/big.bin");
    assert_eq!(info.size, size);
    assert_eq!(info.sha256, sha256_hex(&data));
    assert_eq!(info.content_type, "video/mp4");
    assert_eq!(info.created_at_ms, info.updated_at_ms);
    assert_eq!(
        env.blobs.head(PLUGIN, "videos/big.bin").await.unwrap(),
        Some(info.clone())
    );

    let all = read_all(env, PLUGIN, "videos/big.bin", None).await.unwrap();
    assert!(all == data, "the full read returns the stored bytes");

    let boundary = TEST_PART_SIZE as u64;
    for (start, end) in [
        (0, Some(1)),
        (boundary - 7, Some(boundary + 9)), // across a multipart boundary
        (size - 10, None),
        (size - 1, Some(size + 100)), // end clamped to the size
        (12_345, Some(12_345 + 300_001)),
        (size, None), // empty, at the end
        (3, Some(3)), // empty
    ] {
        let got = read_all(env, PLUGIN, "videos/big.bin", range(start, end))
            .await
            .unwrap();
        let end = end.unwrap_or(size).min(size) as usize;
        assert!(got == data[start as usize..end], "range {start}..{end}");
    }
    let (info_in_range, reader) = env
        .blobs
        .reader(PLUGIN, "videos/big.bin", range(10, Some(20)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        info_in_range.size, size,
        "a range read still reports the whole blob"
    );
    assert_eq!(reader.len(), 10);

    for (start, end, says) in [
        (size + 1, None, "starts at byte"),
        (10, Some(9), "before it starts"),
    ] {
        let err = match env
            .blobs
            .reader(PLUGIN, "videos/big.bin", range(start, end))
            .await
        {
            Err(e) => e,
            Ok(_) => panic!("range {start}..{end:?} must be refused"),
        };
        assert!(matches!(err, BlobError::Range(_)), "{err:?}");
        assert!(err.to_string().contains(says), "{err}");
    }

    let usage = env.blobs.usage(PLUGIN).await.unwrap();
    assert_eq!((usage.blobs, usage.bytes), (1, size));
    assert_eq!(env.objects(PLUGIN).await.len(), 1);
    assert_eq!(env.temp_files(), 0);
}

pub async fn head_delete_and_missing(env: &Env) {
    assert_eq!(env.blobs.head(PLUGIN, "nope").await.unwrap(), None);
    assert!(
        env.blobs
            .reader(PLUGIN, "nope", None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        env.blobs
            .reader(PLUGIN, "nope", range(5, None))
            .await
            .unwrap()
            .is_none()
    );
    assert!(!env.blobs.delete(PLUGIN, "nope").await.unwrap());

    let info = put(env, "docs/a.txt", b"hello", "text/plain; charset=utf-8").await;
    assert_eq!(info.sha256, sha256_hex(b"hello"));
    assert_eq!(
        env.blobs.head(PLUGIN, "docs/a.txt").await.unwrap(),
        Some(info)
    );
    assert_eq!(
        read_all(env, PLUGIN, "docs/a.txt", None).await.unwrap(),
        b"hello"
    );
    assert_eq!(env.objects(PLUGIN).await.len(), 1);

    assert!(env.blobs.delete(PLUGIN, "docs/a.txt").await.unwrap());
    assert_eq!(env.blobs.head(PLUGIN, "docs/a.txt").await.unwrap(), None);
    assert!(
        env.blobs
            .reader(PLUGIN, "docs/a.txt", None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!env.blobs.delete(PLUGIN, "docs/a.txt").await.unwrap());
    assert_eq!(env.blobs.usage(PLUGIN).await.unwrap(), Default::default());
    assert!(
        env.objects(PLUGIN).await.is_empty(),
        "the object goes with the row"
    );
}

pub async fn empty_blob(env: &Env) {
    let writer = env
        .blobs
        .writer(PLUGIN, "empty", "", None, None)
        .await
        .unwrap();
    let info = writer.finish().await.unwrap();
    assert_eq!(info.size, 0);
    assert_eq!(info.content_type, DEFAULT_CONTENT_TYPE);
    assert_eq!(info.sha256, sha256_hex(b""));
    let (_, mut reader) = env
        .blobs
        .reader(PLUGIN, "empty", None)
        .await
        .unwrap()
        .unwrap();
    assert!(reader.is_empty());
    assert_eq!(reader.read(10).await.unwrap(), None);
    assert_eq!(
        read_all(env, PLUGIN, "empty", range(0, Some(10)))
            .await
            .unwrap(),
        b""
    );
    assert_eq!(env.blobs.usage(PLUGIN).await.unwrap().blobs, 1);
}

pub async fn list_by_prefix_with_pagination(env: &Env) {
    let mut keys: Vec<String> = (1..=25).map(|i| format!("a/{i:02}")).collect();
    keys.extend(["a", "a0", "a/ü", "a/Z", "b/x", "ä/1", "a/🦀"].map(String::from));
    for key in &keys {
        put(env, key, key.as_bytes(), "text/plain").await;
    }
    let mut sorted = keys.clone();
    sorted.sort(); // bytewise, as the store promises

    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = env
            .blobs
            .list(PLUGIN, "a/", cursor.as_deref(), 10)
            .await
            .unwrap();
        assert!(page.len() <= 10);
        pages.push(page.iter().map(|b| b.key.clone()).collect::<Vec<_>>());
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 8]);
    let listed: Vec<String> = pages.concat();
    let expected: Vec<String> = sorted
        .iter()
        .filter(|k| k.starts_with("a/"))
        .cloned()
        .collect();
    assert_eq!(listed, expected);

    let (everything, next) = env.blobs.list(PLUGIN, "", None, 1000).await.unwrap();
    assert_eq!(
        everything.iter().map(|b| b.key.clone()).collect::<Vec<_>>(),
        sorted
    );
    assert_eq!(next, None);
    let first = &everything[0];
    assert_eq!(first.size, first.key.len() as u64);
    assert_eq!(first.sha256, sha256_hex(first.key.as_bytes()));

    let (one, next) = env.blobs.list(PLUGIN, "a", None, 0).await.unwrap();
    assert_eq!(one.len(), 1, "limit 0 is raised to 1");
    assert!(next.is_some());

    let (none, next) = env.blobs.list(PLUGIN, "zzz", None, 10).await.unwrap();
    assert!(none.is_empty() && next.is_none());
    let (b, _) = env.blobs.list(PLUGIN, "b/", None, 10).await.unwrap();
    assert_eq!(b.len(), 1);

    let err = env
        .blobs
        .list(PLUGIN, "a/", Some("not a cursor!"), 10)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BlobError::Invalid(_)) && err.to_string().contains("cursor"),
        "{err}"
    );

    // Plugins are separate namespaces.
    let (other, _) = env.blobs.list("other", "", None, 100).await.unwrap();
    assert!(other.is_empty());
    assert_eq!(env.blobs.head("other", "a").await.unwrap(), None);
}

pub async fn quota_refusal_leaves_nothing_behind(env: &Env) {
    let quota = Some(1000);
    let mut one = env
        .blobs
        .writer(PLUGIN, "one", "", quota, None)
        .await
        .unwrap();
    one.write(&[1; 600]).await.unwrap();
    one.finish().await.unwrap();

    // Refused while streaming: the early check stops at the first chunk that cannot fit.
    let mut two = env
        .blobs
        .writer(PLUGIN, "two", "", quota, None)
        .await
        .unwrap();
    let mut refused = None;
    for _ in 0..6 {
        if let Err(e) = two.write(&[2; 100]).await {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("the write that goes over the quota is refused");
    assert!(matches!(err, BlobError::QuotaExceeded(_)), "{err:?}");
    assert!(err.to_string().contains("quota of 1000 bytes"), "{err}");
    assert_eq!(
        two.write(b"x").await.unwrap_err(),
        err,
        "a failed writer stays failed"
    );
    assert_eq!(two.finish().await.unwrap_err(), err);

    // Refused at commit: two writers that each fit alone, racing; the transaction decides.
    let mut a = env
        .blobs
        .writer(PLUGIN, "a", "", Some(1500), None)
        .await
        .unwrap();
    let mut b = env
        .blobs
        .writer(PLUGIN, "b", "", Some(1500), None)
        .await
        .unwrap();
    a.write(&[3; 500]).await.unwrap();
    b.write(&[4; 500]).await.unwrap();
    a.finish().await.unwrap();
    let err = b.finish().await.unwrap_err();
    assert!(matches!(err, BlobError::QuotaExceeded(_)), "{err:?}");

    assert_eq!(env.blobs.head(PLUGIN, "two").await.unwrap(), None);
    assert_eq!(env.blobs.head(PLUGIN, "b").await.unwrap(), None);
    let usage = env.blobs.usage(PLUGIN).await.unwrap();
    assert_eq!((usage.blobs, usage.bytes), (2, 1100));
    assert_eq!(
        env.objects(PLUGIN).await.len(),
        2,
        "no object left by a refused blob"
    );
    assert_eq!(env.temp_files(), 0);

    // Replacing frees the old size first: 1100 - 600 + 900 = 1400 fits 1500.
    let mut bigger = env
        .blobs
        .writer(PLUGIN, "one", "", Some(1500), None)
        .await
        .unwrap();
    bigger.write(&[5; 900]).await.unwrap();
    assert_eq!(bigger.finish().await.unwrap().size, 900);
    assert_eq!(env.blobs.usage(PLUGIN).await.unwrap().bytes, 1400);
    // Over quota (lowered by the operator), a shrinking replacement is still allowed.
    let mut smaller = env
        .blobs
        .writer(PLUGIN, "one", "", Some(100), None)
        .await
        .unwrap();
    smaller.write(&[6; 10]).await.unwrap();
    smaller.finish().await.unwrap();
    assert_eq!(env.blobs.usage(PLUGIN).await.unwrap().bytes, 510);
    assert_eq!(env.objects(PLUGIN).await.len(), 2);
}

pub async fn size_limit_leaves_nothing_behind(env: &Env) {
    let mut w = env
        .blobs
        .writer(PLUGIN, "big", "", None, Some(100))
        .await
        .unwrap();
    w.write(&[0; 60]).await.unwrap();
    let err = w.write(&[0; 60]).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge(_)), "{err:?}");
    assert!(err.to_string().contains("100 bytes per blob"), "{err}");
    assert_eq!(w.finish().await.unwrap_err(), err);

    // A large blob refused after its multipart upload started on S3.
    let mut w = env
        .blobs
        .writer(PLUGIN, "big", "", None, Some(TEST_PART_SIZE as u64 + 10))
        .await
        .unwrap();
    let chunk = bytes(1 << 20, 2);
    let mut refused = false;
    for _ in 0..8 {
        if let Err(e) = w.write(&chunk).await {
            assert!(matches!(e, BlobError::TooLarge(_)), "{e:?}");
            refused = true;
            break;
        }
    }
    assert!(refused);
    drop(w);

    assert_eq!(env.blobs.head(PLUGIN, "big").await.unwrap(), None);
    assert_eq!(env.blobs.usage(PLUGIN).await.unwrap(), Default::default());
    assert!(env.objects(PLUGIN).await.is_empty());
    assert_eq!(env.temp_files(), 0);
    assert_eq!(
        env.pending_uploads().await,
        0,
        "the refused multipart upload is aborted"
    );
}

pub async fn replace_swaps_atomically(env: &Env) {
    let first = put(env, "page.md", b"first", "text/plain").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = put(env, "page.md", b"second version", "text/markdown").await;
    assert_eq!(
        second.created_at_ms, first.created_at_ms,
        "created_at is kept"
    );
    assert!(second.updated_at_ms > first.updated_at_ms);
    assert_eq!(second.size, 14);
    assert_eq!(
        env.blobs.head(PLUGIN, "page.md").await.unwrap(),
        Some(second)
    );
    assert_eq!(
        read_all(env, PLUGIN, "page.md", None).await.unwrap(),
        b"second version"
    );
    let usage = env.blobs.usage(PLUGIN).await.unwrap();
    assert_eq!((usage.blobs, usage.bytes), (1, 14));
    assert_eq!(
        env.objects(PLUGIN).await.len(),
        1,
        "the replaced object is deleted"
    );

    // A reader opened before a replace keeps reading what it opened (files) or fails cleanly (S3
    // may not serve a deleted object); it never mixes the two versions.
    let (_, mut reader) = env
        .blobs
        .reader(PLUGIN, "page.md", None)
        .await
        .unwrap()
        .unwrap();
    put(env, "page.md", b"third", "text/plain").await;
    let mut got = Vec::new();
    loop {
        match reader.read(3).await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => {
                got.clear();
                break;
            }
        }
    }
    assert!(got.is_empty() || got == b"second version", "{got:?}");
}

pub async fn abort_and_drop_leave_nothing(env: &Env) {
    let mut w = env
        .blobs
        .writer(PLUGIN, "aborted", "", None, None)
        .await
        .unwrap();
    w.write(&[1; 1024]).await.unwrap();
    w.abort().await;

    // Dropped after a multipart upload started (S3): aborted in the background.
    let mut w = env
        .blobs
        .writer(PLUGIN, "dropped", "", None, None)
        .await
        .unwrap();
    let chunk = bytes(1 << 20, 3);
    for _ in 0..(TEST_PART_SIZE / chunk.len() + 2) {
        w.write(&chunk).await.unwrap();
    }
    drop(w);

    // An aborted replacement leaves the existing blob as it was.
    put(env, "kept", b"original", "text/plain").await;
    let mut w = env
        .blobs
        .writer(PLUGIN, "kept", "", None, None)
        .await
        .unwrap();
    w.write(b"replacement that never lands").await.unwrap();
    w.abort().await;

    assert_eq!(env.blobs.head(PLUGIN, "aborted").await.unwrap(), None);
    assert_eq!(env.blobs.head(PLUGIN, "dropped").await.unwrap(), None);
    assert_eq!(
        read_all(env, PLUGIN, "kept", None).await.unwrap(),
        b"original"
    );
    let usage = env.blobs.usage(PLUGIN).await.unwrap();
    assert_eq!((usage.blobs, usage.bytes), (1, 8));
    assert_eq!(env.objects(PLUGIN).await.len(), 1);
    assert_eq!(
        env.temp_files(),
        0,
        "temp files are removed on abort and drop"
    );
    assert_eq!(
        env.pending_uploads().await,
        0,
        "multipart uploads are aborted"
    );
}

pub async fn hostile_keys(env: &Env) {
    // Refused, with an error that says why.
    for (key, says) in [
        (String::new(), "empty"),
        ("a\0b".to_string(), "control character (\\u{0})"),
        ("../x\0/etc/passwd".to_string(), "control character"),
        ("line\nbreak".to_string(), "control character"),
        ("\u{1b}[31mred".to_string(), "control character"),
        ("next\u{85}line".to_string(), "control character"),
        ("k".repeat(1025), "1025 bytes"),
        ("é".repeat(513), "1026 bytes"),
    ] {
        let err = match env.blobs.writer(PLUGIN, &key, "", None, None).await {
            Err(e) => e,
            Ok(_) => panic!("{key:?} must be refused"),
        };
        assert!(matches!(err, BlobError::Invalid(_)), "{key:?}: {err:?}");
        assert!(err.to_string().contains(says), "{key:?}: {err}");
        assert!(matches!(
            env.blobs.head(PLUGIN, &key).await,
            Err(BlobError::Invalid(_))
        ));
        assert!(matches!(
            env.blobs.delete(PLUGIN, &key).await,
            Err(BlobError::Invalid(_))
        ));
    }

    // Accepted: they are only keys. Stored inside the store, read back intact.
    let keys: Vec<String> = [
        "../../etc/passwd",
        "/etc/passwd",
        "..",
        ".",
        "a/../../../b",
        "./.tmp/x",
        ".tmp",
        "C:\\Windows\\System32\\config",
        "\\\\server\\share\\x",
        "%2e%2e%2f%2e%2e%2fetc",
        "ünïcødé/😀/名前.bin",
        " spaced / out ",
        "trailing/",
        "//double//slashes",
    ]
    .into_iter()
    .map(String::from)
    .chain(["k".repeat(1024), "é".repeat(512)])
    .collect();
    for key in &keys {
        let info = put(env, key, key.as_bytes(), "application/x-evil").await;
        assert_eq!(&info.key, key);
    }
    for key in &keys {
        assert_eq!(
            read_all(env, PLUGIN, key, None).await.unwrap(),
            key.as_bytes(),
            "{key}"
        );
    }
    let (listed, _) = env.blobs.list(PLUGIN, "", None, 1000).await.unwrap();
    let listed: BTreeSet<String> = listed.into_iter().map(|b| b.key).collect();
    assert_eq!(listed, keys.iter().cloned().collect::<BTreeSet<_>>());

    // Object names are generated, never taken from keys.
    let objects = env.objects(PLUGIN).await;
    assert_eq!(objects.len(), keys.len());
    for object in &objects {
        let (ns, name) = object.split_once('/').unwrap();
        assert_eq!(ns, PLUGIN);
        assert!(
            name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "{object}"
        );
    }

    if env.store == StoreKind::Files {
        // Every file the test created is the database or an object inside the blob root.
        let root = env.root();
        for file in walk(env.dir.path()) {
            let in_root = file.starts_with("data/blobs/media") && file.components().count() == 4;
            let database = file.to_string_lossy().starts_with("ucms.db");
            assert!(in_root || database, "unexpected file {}", file.display());
        }
        assert!(!root.join("etc").exists() && !env.dir.path().join("etc").exists());

        // Even a bad object name (say, a corrupted row) cannot reach outside the root: the backend
        // refuses it, and cap-std refuses what gets past (here a symlink pointing out).
        for object in [
            "../../etc/passwd",
            "/etc/passwd",
            "media/../../x",
            "media/..",
        ] {
            assert!(env.backend.read(object, 0..1).await.is_err(), "{object}");
            assert!(env.backend.delete(object).await.is_err(), "{object}");
            assert!(env.backend.begin_write(object).await.is_err(), "{object}");
        }
        let outside = env.dir.path().join("secret");
        std::fs::write(&outside, b"outside the root").unwrap();
        std::os::unix::fs::symlink(
            &outside,
            root.join("media/0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        let escaped = env
            .backend
            .read("media/0123456789abcdef0123456789abcdef", 0..5)
            .await;
        assert!(
            escaped.is_err(),
            "cap-std follows no symlink out of the root"
        );
    }
}

pub async fn concurrent_writers_same_key(env: &Env) {
    let payloads: Vec<Vec<u8>> = (0..8)
        .map(|i| bytes(50_000 + i * 7_919, i as u64 + 10))
        .collect();
    let hashes: BTreeSet<String> = payloads.iter().map(|p| sha256_hex(p)).collect();
    let tasks: Vec<_> = payloads
        .iter()
        .cloned()
        .map(|payload| {
            let blobs = env.blobs.clone();
            tokio::spawn(async move {
                let mut w = blobs
                    .writer(PLUGIN, "shared", "", Some(1 << 30), None)
                    .await?;
                for chunk in payload.chunks(8_192) {
                    w.write(chunk).await?;
                    tokio::task::yield_now().await;
                }
                w.finish().await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let head = env.blobs.head(PLUGIN, "shared").await.unwrap().unwrap();
    assert!(
        hashes.contains(&head.sha256),
        "the blob is one of the writers' payloads"
    );
    let content = read_all(env, PLUGIN, "shared", None).await.unwrap();
    assert_eq!(
        sha256_hex(&content),
        head.sha256,
        "bytes and metadata agree"
    );
    assert_eq!(content.len() as u64, head.size);
    let usage = env.blobs.usage(PLUGIN).await.unwrap();
    assert_eq!((usage.blobs, usage.bytes), (1, head.size));
    assert_eq!(
        env.objects(PLUGIN).await.len(),
        1,
        "every replaced object was deleted"
    );
    assert_eq!(env.temp_files(), 0);
    assert_eq!(env.pending_uploads().await, 0);
}

pub async fn drop_plugin_removes_everything(env: &Env) {
    for key in ["x", "y/z", "w"] {
        put(env, key, key.as_bytes(), "").await;
    }
    let mut other = env
        .blobs
        .writer("other", "x", "", None, None)
        .await
        .unwrap();
    other.write(b"other's").await.unwrap();
    other.finish().await.unwrap();

    env.blobs.drop_plugin(PLUGIN).await.unwrap();
    assert!(
        env.blobs
            .list(PLUGIN, "", None, 100)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    assert_eq!(env.blobs.usage(PLUGIN).await.unwrap(), Default::default());
    assert!(env.objects(PLUGIN).await.is_empty());
    env.blobs.drop_plugin(PLUGIN).await.unwrap();

    assert_eq!(read_all(env, "other", "x", None).await.unwrap(), b"other's");
    assert_eq!(env.blobs.usage("other").await.unwrap().blobs, 1);
    assert_eq!(env.objects("other").await.len(), 1);
}

pub async fn invalid_inputs(env: &Env) {
    for content_type in ["png", "image/", "text/plain\r\nX-Injected: 1", "a/b c"] {
        let err = match env
            .blobs
            .writer(PLUGIN, "k", content_type, None, None)
            .await
        {
            Err(e) => e,
            Ok(_) => panic!("{content_type:?} must be refused"),
        };
        assert!(matches!(err, BlobError::Invalid(_)), "{err:?}");
        assert!(err.to_string().contains("content type"), "{err}");
    }
    for plugin in ["", "../other", "a/b", "a b"] {
        assert!(
            matches!(env.blobs.usage(plugin).await, Err(BlobError::Invalid(_))),
            "{plugin:?}"
        );
        assert!(
            matches!(
                env.blobs.head(plugin, "k").await,
                Err(BlobError::Invalid(_))
            ),
            "{plugin:?}"
        );
    }
    assert_eq!(env.temp_files(), 0);
    assert!(env.objects(PLUGIN).await.is_empty());
}

/// Found by the host fuzzer (`host/tests/it/fuzz_host.rs`): a list prefix, or a cursor that
/// decodes to a key, holding NUL reached PostgreSQL, which refused the text, and the plugin got
/// `unavailable`. No key has a control character, so such a prefix lists nothing and such a cursor
/// is not one the store returned.
pub async fn control_characters_in_list_prefix_and_cursor_found_by_the_host_fuzzer(env: &Env) {
    put(env, "a", b"x", "text/plain").await;
    for prefix in ["\0", "a\0", "a\n", "\u{7f}"] {
        let (page, next) = env.blobs.list(PLUGIN, prefix, None, 10).await.unwrap();
        assert!(page.is_empty() && next.is_none(), "{prefix:?}");
    }
    use base64::Engine as _;
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("a\0b");
    let err = env
        .blobs
        .list(PLUGIN, "", Some(&cursor), 10)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Invalid(_)), "{err}");
    let (all, _) = env.blobs.list(PLUGIN, "", None, 10).await.unwrap();
    assert_eq!(all.len(), 1);
}
