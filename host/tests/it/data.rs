//! The data capabilities (documents, blobs, cache) through real guests, on SQLite and
//! PostgreSQL, and the promise that a component built for API 0.1.0 keeps working.
//!
//! The stores themselves have their own suites (`ucms-documents`, `ucms-blobs`, `ucms-cache`,
//! each on every backend); these tests cover the WIT boundary, the manifest declarations, the
//! upload route and the transaction that joins document writes and events.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use ucms_test_components::{LEGACY, NOTES};

use crate::support::{BACKENDS, TestSite, code, eventually, test_config};

async fn create(t: &TestSite, token: &str, note: Value) -> (StatusCode, Value) {
    t.request(Method::POST, "/api/notes/notes", Some(token), Some(note))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_are_documents_with_a_unique_slug_search_and_cursor_pages() {
    for backend in BACKENDS {
        let Some(t) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        t.install(NOTES).await;
        let admin = t.admin_token().await;

        let (status, first) = create(
            &t,
            &admin,
            json!({"title": "Running databases", "body": "PostgreSQL runs the indexes", "tags": ["db"]}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {first}");
        assert_eq!(first["slug"], "running-databases");
        assert_eq!(first["revision"], 1);

        // The manifest's unique index is a real one: the same slug is refused.
        let (status, dup) = create(
            &t,
            &admin,
            json!({"title": "Another", "slug": "running-databases"}),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{dup}");
        assert_eq!(code(&dup), "slug_taken");

        for i in 0..7 {
            let (status, body) = create(
                &t,
                &admin,
                json!({"title": format!("Note {i}"), "body": "gardening and cooking", "tags": ["misc"]}),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }

        // Full-text search with stemming: "run" finds "Running".
        let (status, found) = t.get("/api/notes/notes?q=run").await;
        assert_eq!(status, StatusCode::OK, "{found}");
        let items = found["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{backend:?}: {found}");
        assert_eq!(items[0]["slug"], "running-databases");

        // Keyset pages: 3 + 3 + 2, no repeats, totals on every page.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let uri = match &cursor {
                Some(c) => format!("/api/notes/notes?tag=misc&sort=title&limit=3&cursor={c}"),
                None => "/api/notes/notes?tag=misc&sort=title&limit=3".to_string(),
            };
            let (status, page) = t.get(&uri).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            assert_eq!(page["total"], 7, "{backend:?}: {page}");
            for item in page["items"].as_array().unwrap() {
                seen.push(item["title"].as_str().unwrap().to_string());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let expected: Vec<String> = (0..7).map(|i| format!("Note {i}")).collect();
        assert_eq!(seen, expected, "{backend:?}");

        // Optimistic concurrency through If-Match.
        let request = Request::builder()
            .method(Method::PATCH)
            .uri("/api/notes/notes/running-databases")
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .header("if-match", "\"7\"")
            .body(Body::from(json!({"body": "stale"}).to_string()))
            .unwrap();
        let (status, _, body) = t.send(request).await;
        assert_eq!(
            status,
            StatusCode::CONFLICT,
            "{}",
            String::from_utf8_lossy(&body)
        );

        let (_, stats) = t.get("/api/notes/stats").await;
        assert_eq!(stats["notes"], 8, "{stats}");

        // Every query is timed, labelled with how it was planned.
        let metrics = t.site.services.metrics.render();
        for plan in ["scan", "search", "count"] {
            assert!(
                metrics.contains(&format!(
                    r#"ucms_document_query_duration_seconds_count{{plugin="notes",plan="{plan}"}}"#
                )),
                "{backend:?}: no {plan} series in\n{metrics}"
            );
        }
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_commits_the_document_and_its_event_together() {
    for backend in BACKENDS {
        let Some(t) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        t.install(NOTES).await;
        t.install(LEGACY).await;
        let admin = t.admin_token().await;
        let (status, _) = create(&t, &admin, json!({"title": "First"})).await;
        assert_eq!(status, StatusCode::CREATED);
        // Refused by the unique index: the event in the same batch must not exist either.
        let (status, _) = create(&t, &admin, json!({"title": "Again", "slug": "first"})).await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, _) = create(&t, &admin, json!({"title": "Second"})).await;
        assert_eq!(status, StatusCode::CREATED);

        // The legacy (0.1.0) plugin subscribes to notes.created and records each delivery.
        let delivered = eventually(10, || async {
            let (_, state) = t.get("/api/legacy/state").await;
            let n = state["delivered"].as_array().map_or(0, Vec::len);
            (n >= 2).then_some(state)
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let (_, state) = t.get("/api/legacy/state").await;
        assert_eq!(
            state["delivered"].as_array().unwrap().len(),
            2,
            "{backend:?}: exactly the committed notes were announced: {delivered}"
        );
        t.close().await;
    }
}

fn multipart(boundary: &str, filename: &str, content: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nA picture\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stream_into_blobs_and_the_plugin_gets_a_reference() {
    for backend in BACKENDS {
        let Some(t) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        t.install(NOTES).await;
        let admin = t.admin_token().await;
        let (status, _) = create(&t, &admin, json!({"title": "With file"})).await;
        assert_eq!(status, StatusCode::CREATED);

        // 3 MiB of varied bytes, as a multipart form.
        let content: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let boundary = "ucms-test-boundary";
        let request = Request::builder()
            .method(Method::PUT)
            .uri("/api/notes/notes/with-file/attachment")
            .header("authorization", format!("Bearer {admin}"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(multipart(boundary, "photo.png", &content)))
            .unwrap();
        let (status, _, body) = t.send(request).await;
        let note: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, StatusCode::OK, "{backend:?}: {note}");
        let attachment = &note["attachment"];
        assert_eq!(attachment["size"], content.len());
        assert_eq!(attachment["filename"], "photo.png");
        assert_eq!(attachment["content_type"], "image/png");
        assert_eq!(
            attachment["sha256"],
            ucms::digest::sha256_hex(&content),
            "the host hashed the stream"
        );
        assert!(attachment["key"].as_str().unwrap().starts_with("uploads/"));

        // The plugin streams it back, whole and by range.
        let (status, headers, bytes) = t
            .raw(
                Method::GET,
                "/api/notes/notes/with-file/attachment",
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "image/png");
        assert_eq!(bytes, content);
        let request = Request::builder()
            .uri("/api/notes/notes/with-file/attachment")
            .header("range", "bytes=1000-1999")
            .body(Body::empty())
            .unwrap();
        let (status, _, bytes) = t.send(request).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(bytes, &content[1000..2000]);

        // A refused upload (no such note) leaves no blob behind.
        let usage_before = t.site.services.blobs.usage("notes").await.unwrap();
        let request = Request::builder()
            .method(Method::PUT)
            .uri("/api/notes/notes/missing/attachment")
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "text/plain")
            .body(Body::from("raw body"))
            .unwrap();
        let (status, _, _) = t.send(request).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let usage_after = t.site.services.blobs.usage("notes").await.unwrap();
        assert_eq!(usage_before, usage_after, "{backend:?}");

        // Over the plugin's 16 MiB per-blob limit: 413, and nothing stored.
        let big = vec![7u8; 17 * 1024 * 1024];
        let request = Request::builder()
            .method(Method::PUT)
            .uri("/api/notes/notes/with-file/attachment")
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/octet-stream")
            .body(Body::from(big))
            .unwrap();
        let (status, _, body) = t.send(request).await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            t.site.services.blobs.usage("notes").await.unwrap(),
            usage_after
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_for_api_0_1_0_installs_and_runs() {
    for backend in BACKENDS {
        let Some(t) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        let info = t.install(LEGACY).await;
        assert_eq!(info.id, "legacy");
        let admin = t.admin_token().await;

        let (status, hello) = t.get("/api/legacy/hello").await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {hello}");
        let (_, state) = t.get("/api/legacy/state").await;
        assert_eq!(state["installed"], "0.1.0", "the install hook ran: {state}");

        for expected in 1..=2 {
            let (status, counted) = t
                .request(Method::POST, "/api/legacy/count", Some(&admin), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{counted}");
            assert_eq!(counted["value"], expected, "{counted}");
        }
        let (status, published) = t
            .request(Method::POST, "/api/legacy/publish", Some(&admin), None)
            .await;
        assert!(status.is_success(), "{published}");
        eventually(10, || async {
            let (_, state) = t.get("/api/legacy/state").await;
            (state["delivered"].as_array().map_or(0, Vec::len) == 1).then_some(())
        })
        .await;
        t.close().await;
    }
}

#[tokio::test]
async fn a_0_1_0_component_cannot_import_what_0_1_0_did_not_have() {
    // The host would link documents@0.2.0 only; a 0.1.0 route with `upload` is refused too.
    let t = TestSite::sqlite().await;
    let manifest = LEGACY.manifest().replace(
        "[[routes]]\nmethod = \"POST\"\npath = \"/count\"",
        "[[routes]]\nmethod = \"POST\"\npath = \"/count\"\nupload = true",
    );
    let manifest = manifest.replace("kv = true", "kv = true\nblobs = true");
    let err = t.install_with(LEGACY, &manifest).await.unwrap_err();
    assert!(err.to_string().contains("needs ucms:plugin 0.2.0"), "{err}");
    t.close().await;
}

fn redis_url() -> String {
    std::env::var("UCMS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_shared_through_redis_when_configured() {
    // Two sites on one Redis and one namespace: what one caches, the other reads (as two nodes
    // of one site would); a write on either invalidates the tag for both.
    let namespace = format!("t{}", uuid::Uuid::new_v4().simple());
    let mut config = test_config();
    config.cache.url = Some(redis_url());
    config.cache.namespace = namespace.clone();
    let Some(a) = TestSite::open(crate::support::Backend::Sqlite, config.clone()).await else {
        return;
    };
    if let Err(e) = ucms_cache::RedisCache::connect(&redis_url(), &namespace).await {
        assert!(
            std::env::var("CI").is_err(),
            "Redis is unreachable at {} ({e}); under CI=true the Redis runs are required",
            redis_url()
        );
        eprintln!("SKIPPED (Redis unreachable: {e})");
        return;
    }
    assert_eq!(a.site.services.cache.name(), "redis");
    a.install(NOTES).await;
    let admin = a.admin_token().await;
    let (_, first) = a.get("/api/notes/stats").await;
    let (_, again) = a.get("/api/notes/stats").await;
    assert_eq!(
        first["computed_at_ms"], again["computed_at_ms"],
        "served from the cache"
    );
    let (status, _) = create(&a, &admin, json!({"title": "Cached"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, after) = a.get("/api/notes/stats").await;
    assert_eq!(after["notes"], 1, "the write invalidated the tag: {after}");
    let redis = ucms_cache::RedisCache::connect(&redis_url(), &namespace)
        .await
        .unwrap();
    assert!(
        ucms_cache::CacheBackend::get(&redis, "notes", "stats")
            .await
            .unwrap()
            .is_some(),
        "the entry lives in Redis"
    );
    redis.clear_namespace().await.unwrap();
    a.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_of_the_data_capabilities_gets_clear_errors_and_nothing_else() {
    use ucms_test_components::MISBEHAVE;
    for backend in BACKENDS {
        let Some(t) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        t.install(MISBEHAVE).await;
        let case = |name: &'static str| {
            let t = &t;
            async move {
                let (status, body) = t
                    .request(
                        Method::POST,
                        &format!("/api/misbehave/data/{name}"),
                        None,
                        None,
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{name}: {body}");
                body
            }
        };
        let expect = |body: &Value, prefix: &str, fragment: &str| {
            let error = body["error"].as_str().unwrap_or_default();
            assert!(
                error.starts_with(prefix) && error.contains(fragment),
                "{backend:?}: expected {prefix} mentioning '{fragment}', got {body}"
            );
        };
        expect(&case("shared-node").await, "invalid:", "used twice");
        expect(
            &case("forward-child").await,
            "invalid:",
            "children must come before",
        );
        expect(&case("too-many-nodes").await, "invalid:", "at most 200");
        expect(&case("bad-path").await, "invalid:", "a..b");
        expect(&case("bad-json").await, "invalid:", "not valid JSON");
        let quota = case("quota").await;
        expect(&quota, "quota-exceeded:", "");
        expect(
            &case("big-chunk").await,
            "invalid:",
            "at most 4194304 bytes",
        );
        expect(&case("many-writers").await, "invalid:", "16 open writers");
        let blob_quota = case("blob-quota").await;
        assert!(
            blob_quota["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("quota-exceeded:") || e.starts_with("too-large:")),
            "{backend:?}: {blob_quota}"
        );
        // Nothing over quota was kept, and the plugin still serves.
        let docs = t.site.services.documents.usage("misbehave").await.unwrap();
        assert_eq!(docs.documents, 5, "{backend:?}");
        let blobs = t.site.services.blobs.usage("misbehave").await.unwrap();
        assert_eq!(
            blobs.bytes, 0,
            "{backend:?}: no partial or refused blob is stored"
        );
        let (status, _) = t.get("/api/misbehave/ok").await;
        assert_eq!(status, StatusCode::OK);
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_land_in_s3_when_the_site_is_configured_for_it() {
    // PostgreSQL for the metadata when it is there, S3 for the bytes: the scale-out setup.
    let Some(server) = crate::s3_server::s3_server().as_ref() else {
        return;
    };
    let mut config = test_config();
    config.blobs.backend = ucms::config::BlobBackendKind::S3;
    config.blobs.s3 = ucms::config::S3Settings {
        bucket: Some(server.bucket.clone()),
        region: Some(server.region.clone()),
        endpoint: Some(server.endpoint.clone()),
        access_key_id: Some(server.access_key_id.clone()),
        secret_access_key: Some(server.secret_access_key.clone()),
        allow_http: true,
        prefix: Some(format!("site-{}", uuid::Uuid::new_v4().simple())),
    };
    for backend in BACKENDS {
        let Some(t) = TestSite::open(backend, config.clone()).await else {
            continue;
        };
        assert_eq!(t.site.services.blobs.backend_name(), "s3");
        t.install(NOTES).await;
        let admin = t.admin_token().await;
        let (status, _) = create(&t, &admin, json!({"title": "In the bucket"})).await;
        assert_eq!(status, StatusCode::CREATED);
        // 7 MiB: more than one multipart part.
        let content: Vec<u8> = (0..7 * 1024 * 1024u32).map(|i| (i % 241) as u8).collect();
        let request = Request::builder()
            .method(Method::PUT)
            .uri("/api/notes/notes/in-the-bucket/attachment")
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/pdf")
            .header("content-disposition", "attachment; filename=\"report.pdf\"")
            .body(Body::from(content.clone()))
            .unwrap();
        let (status, _, body) = t.send(request).await;
        let note: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, StatusCode::OK, "{backend:?}: {note}");
        assert_eq!(note["attachment"]["filename"], "report.pdf");
        assert_eq!(
            note["attachment"]["sha256"],
            ucms::digest::sha256_hex(&content)
        );
        let (status, headers, bytes) = t
            .raw(
                Method::GET,
                "/api/notes/notes/in-the-bucket/attachment",
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "application/pdf");
        assert!(
            bytes == content,
            "{backend:?}: the bytes came back from S3 intact"
        );
        t.close().await;
    }
}
