//! The host side of every WIT call that takes bytes or strings from a guest: the `fuzzer` guest
//! calls each host function it imports (kv, documents with indexes and search, blobs, cache,
//! events, outbound HTTP, hooks, config, log, auth) with random and edge-case arguments drawn
//! from a seed, in the real host, on SQLite and on PostgreSQL, while `hello` keeps being served.
//!
//! What must hold: every run answers 200 (the host never trapped the guest for its own failure:
//! no `plugin_failed`, no panic turned into a 500); no invocation anywhere — requests, event
//! deliveries, hooks — is counted under `plugin_failed` in the metrics; the guest saw no answer
//! that contradicts an earlier one (its `violations`); `hello` answered throughout and after;
//! the documents and blobs quotas held.
//!
//! Bounded: `UCMS_FUZZ_HOST_SEEDS` seeds (default 4) of `UCMS_FUZZ_HOST_CALLS` calls (default
//! 150) from `UCMS_FUZZ_HOST_SEED` (default fixed, so a failure replays); a failing seed is in
//! the panic message.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http::Method;
use serde_json::{Value, json};
use ucms::config::PluginConfig;
use ucms_test_components::{FUZZER, HELLO};

use crate::support::{Backend, TestSite, test_config};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A loopback upstream for the guest's outbound requests: echoes what it got; `/big` answers
/// with 3 MiB; `/slow` takes 3 s.
async fn upstream() -> SocketAddr {
    let app = axum::Router::new()
        .route("/big", axum::routing::any(|| async { vec![b'x'; 3 << 20] }))
        .route(
            "/slow",
            axum::routing::any(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "slow"
            }),
        )
        .fallback(
            |method: Method, body: Bytes| async move { format!("{method} {} bytes", body.len()) },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn run(backend: Backend) {
    // The host's warnings (a store failure's cause, say) show with a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,ucms::plugin=off".into()),
        )
        .with_test_writer()
        .try_init();
    let mut config = test_config();
    config.plugins.insert(
        "fuzzer".into(),
        PluginConfig {
            secrets: [("token".to_string(), "s3cret".to_string())].into(),
            ..Default::default()
        },
    );
    // The fuzzer's outbound requests may reach the loopback echo server, nothing else internal.
    config.policy.overrides.insert(
        "fuzzer".into(),
        ucms::policy::PluginOverride {
            internal_networks: vec!["127.0.0.1/32".into()],
            ..Default::default()
        },
    );
    let Some(t) = TestSite::open(backend, config).await else {
        return;
    };
    t.install(HELLO).await;
    t.install(FUZZER).await;
    let addr = t.serve().await;
    let echo = format!("http://{}", upstream().await);
    let client = reqwest::Client::new();

    // `hello` is greeted all along; every greeting must succeed.
    let stop = Arc::new(AtomicBool::new(false));
    let greeted = Arc::new(AtomicU64::new(0));
    let greeter = tokio::spawn({
        let (stop, greeted, client) = (stop.clone(), greeted.clone(), client.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let response = client
                    .get(format!("http://{addr}/api/hello/greet?name=Ada"))
                    .send()
                    .await
                    .expect("hello is reachable");
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                assert_eq!(
                    (status.as_u16(), &body["greeting"]),
                    (200, &json!("Hello, Ada!")),
                    "hello failed during the fuzzing: {body}"
                );
                greeted.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    let first = env_u64("UCMS_FUZZ_HOST_SEED", 0x5eed_0001);
    let seeds = env_u64("UCMS_FUZZ_HOST_SEEDS", 4);
    let calls = env_u64("UCMS_FUZZ_HOST_CALLS", 150);
    let started = Instant::now();
    let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
    let (mut all_calls, mut all_ok) = (0, 0);
    for seed in first..first + seeds {
        let response = client
            .post(format!("http://{addr}/api/fuzzer/run"))
            .json(&json!({ "seed": seed, "count": calls, "echo": echo }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(
            status, 200,
            "{backend:?}: seed {seed} (replay: UCMS_FUZZ_HOST_SEED={seed} UCMS_FUZZ_HOST_SEEDS=1): {body}"
        );
        let violations = body["violations"].as_array().cloned().unwrap_or_default();
        assert!(
            violations.is_empty(),
            "{backend:?}: seed {seed}: the host contradicted itself: {violations:#?}"
        );
        all_calls += body["calls"].as_u64().unwrap();
        all_ok += body["ok"].as_u64().unwrap();
        for (case, n) in body["errors"].as_object().unwrap() {
            *totals.entry(case.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    // Event deliveries the runs caused run in the background; give them a moment to settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    greeter.await.expect("hello answered every greeting");
    assert!(
        greeted.load(Ordering::Relaxed) > 0,
        "hello was greeted while the fuzzer ran"
    );
    eprintln!(
        "{backend:?}: {seeds} seeds, {all_calls} host calls ({all_ok} ok) in {:.1} s; errors the guest saw: {totals:?}",
        started.elapsed().as_secs_f64()
    );
    // Every kind of error is one the WIT declares, and none is an `unavailable` that the database
    // would only give for a host bug (bad SQL, say).
    for case in totals.keys() {
        assert!(
            !case.ends_with(".Unavailable"),
            "{backend:?}: the guest saw {case}: a store failure from a request's arguments"
        );
    }

    // After: hello still serves, and nothing anywhere ended in the host's internal error.
    let greeting: Value = client
        .get(format!("http://{addr}/api/hello/greet?name=Bo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(greeting["greeting"], "Hello, Bo!");
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failed: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("ucms_plugin_errors_total") && l.contains("plugin_failed"))
        .collect();
    assert!(
        failed.is_empty(),
        "{backend:?}: invocations ended in plugin_failed: {failed:#?}"
    );

    // Quotas held: 200 documents and 1 MiB of documents, 1 MiB of blobs (the manifest's).
    let services = &t.site.services;
    let docs = services.documents.usage("fuzzer").await.unwrap();
    assert!(
        docs.documents <= 200 && docs.bytes <= 1 << 20,
        "{backend:?}: documents quota broken: {docs:?}"
    );
    let blobs = services.blobs.usage("fuzzer").await.unwrap();
    assert!(
        blobs.bytes <= 1 << 20,
        "{backend:?}: blobs quota broken: {blobs:?}"
    );
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_host_calls_never_break_the_host_on_sqlite() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_host_calls_never_break_the_host_on_postgres() {
    run(Backend::Postgres).await;
}

/// Found by this fuzzer on PostgreSQL: a NUL in a kv list prefix or cursor, or in an event's
/// ordering key (published alone or with a documents batch), reached the database, which refused
/// the text, so the plugin got `unavailable`. Now a NUL prefix lists nothing, a NUL cursor is
/// `invalid`, and a NUL key is `invalid` — the same on both databases.
async fn nul_in_kv_listing_and_event_keys(backend: Backend) {
    let Some(t) = TestSite::open(backend, test_config()).await else {
        return;
    };
    t.install(FUZZER).await;
    let (status, kv) = t
        .request(Method::POST, "/api/fuzzer/case/kv-list-nul", None, None)
        .await;
    assert_eq!(status, 200, "{kv}");
    assert_eq!(
        kv["prefix"]["ok"], "KeyPage { keys: [], next-cursor: None }",
        "{backend:?}: {kv}"
    );
    assert!(
        kv["cursor"]["error"]
            .as_str()
            .unwrap()
            .starts_with("KvError::Invalid"),
        "{backend:?}: {kv}"
    );
    let (status, ev) = t
        .request(Method::POST, "/api/fuzzer/case/event-key-nul", None, None)
        .await;
    assert_eq!(status, 200, "{ev}");
    assert!(
        ev["publish"]["error"]
            .as_str()
            .unwrap()
            .starts_with("PublishError::Invalid"),
        "{backend:?}: {ev}"
    );
    assert!(
        ev["batch"]["error"]
            .as_str()
            .unwrap()
            .starts_with("DocumentError::Invalid"),
        "{backend:?}: {ev}"
    );
    t.close().await;
}

#[tokio::test]
async fn nul_in_kv_listing_and_event_keys_is_invalid_on_sqlite_found_by_the_host_fuzzer() {
    nul_in_kv_listing_and_event_keys(Backend::Sqlite).await;
}

#[tokio::test]
async fn nul_in_kv_listing_and_event_keys_is_invalid_on_postgres_found_by_the_host_fuzzer() {
    nul_in_kv_listing_and_event_keys(Backend::Postgres).await;
}
