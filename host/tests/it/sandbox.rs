//! The adversarial plugin: each misbehaviour is stopped with its own error while `hello` keeps
//! answering, and nothing leaks into the next invocation.

use std::net::SocketAddr;

use http::StatusCode;
use serde_json::Value;
use ucms_test_components::{HELLO, MISBEHAVE};

use crate::support::{TestSite, code};

async fn site() -> (TestSite, SocketAddr) {
    let t = TestSite::sqlite().await;
    t.install(HELLO).await;
    t.install(MISBEHAVE).await;
    let addr = t.serve().await;
    (t, addr)
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, Value) {
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Sends the misbehaving request and, while it runs, greets through `hello`. Returns the
/// misbehaving request's outcome and whether a greeting completed while it was still running.
async fn misbehave_while_greeting(addr: SocketAddr, path: &str) -> (StatusCode, Value, bool) {
    let bad = tokio::spawn({
        let path = path.to_string();
        async move { get(addr, &path).await }
    });
    let mut overlapped = false;
    loop {
        let (status, body) = get(addr, "/api/hello/greet?name=Ada").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "hello failed while {path} ran: {body}"
        );
        assert_eq!(body["greeting"], "Hello, Ada!");
        if bad.is_finished() {
            break;
        }
        overlapped = true;
    }
    let (status, body) = bad.await.unwrap();
    (status, body, overlapped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_times_out_while_others_are_served() {
    let (t, addr) = site().await;
    let (status, body, overlapped) = misbehave_while_greeting(addr, "/api/misbehave/spin").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::GATEWAY_TIMEOUT, "plugin_timeout"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 ms")
    );
    assert!(overlapped, "hello answered while the loop was running");
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_limit() {
    let (t, addr) = site().await;
    let (status, body, _) = misbehave_while_greeting(addr, "/api/misbehave/alloc").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::INTERNAL_SERVER_ERROR, "plugin_memory_limit"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("32 MiB")
    );
    let metrics = t.site.services.metrics.render();
    assert!(
        metrics.contains(r#"ucms_plugin_traps_total{plugin="misbehave",cause="memory"} 1"#),
        "{metrics}"
    );
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_recursion_overflows_the_stack_cleanly() {
    let (t, addr) = site().await;
    let (status, body, _) = misbehave_while_greeting(addr, "/api/misbehave/recurse").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::INTERNAL_SERVER_ERROR, "plugin_stack_overflow"),
        "{body}"
    );
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_reported_without_leaking_its_message() {
    let (t, addr) = site().await;
    let (status, body, _) = misbehave_while_greeting(addr, "/api/misbehave/panic").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::INTERNAL_SERVER_ERROR, "plugin_panicked"),
        "{body}"
    );
    assert!(
        !body.to_string().contains("deliberate"),
        "the panic message stays in the log: {body}"
    );
    // The next invocation is a fresh instance.
    let (status, body) = get(addr, "/api/misbehave/ok").await;
    assert_eq!((status, body["ok"].as_bool()), (StatusCode::OK, Some(true)));
    let metrics = t.site.services.metrics.render();
    assert!(metrics.contains(r#"ucms_plugin_traps_total{plugin="misbehave",cause="panic"} 1"#));
    assert!(metrics.contains(
        r#"ucms_plugin_errors_total{plugin="misbehave",kind="http",code="plugin_panicked"} 1"#
    ));
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_response_is_refused() {
    let (t, addr) = site().await;
    let (status, body, _) = misbehave_while_greeting(addr, "/api/misbehave/huge?mib=8").await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "plugin_response_too_large"
        ),
        "{body}"
    );
    let (status, _) = get(addr, "/api/misbehave/huge?mib=1").await;
    assert_eq!(status, StatusCode::OK, "a response under the limit passes");
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_and_log_floods_are_bounded() {
    let (t, addr) = site().await;
    let (status, body) = get(addr, "/api/misbehave/print-flood").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "printing beyond the capture doesn't fail the guest: {body}"
    );
    let (status, body) = get(addr, "/api/misbehave/log-flood?lines=5000").await;
    assert_eq!(
        (status, body["written"].as_u64()),
        (StatusCode::OK, Some(5000))
    );
    let metrics = t.site.services.metrics.render();
    let dropped: u64 = metrics
        .lines()
        .find(|l| l.starts_with(r#"ucms_plugin_log_lines_dropped_total{plugin="misbehave"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the dropped-lines counter is exported");
    assert!(dropped >= 4000, "most of the flood was dropped: {dropped}");
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_instances_at_once_are_refused_as_busy() {
    let t = TestSite::sqlite().await;
    let manifest = MISBEHAVE.manifest().replace(
        "timeout-ms = 1000",
        "timeout-ms = 3000\ncpu-ms = 10000\nmax-concurrency = 1",
    );
    t.install_with(MISBEHAVE, &manifest).await.unwrap();
    let addr = t.serve().await;
    let first = tokio::spawn(async move { get(addr, "/api/misbehave/spin").await });
    // Wait until the first call holds the only slot.
    crate::support::eventually(10, || async {
        let metrics = t.site.services.metrics.render();
        metrics
            .contains(r#"ucms_plugin_instances_in_flight{plugin="misbehave"} 1"#)
            .then_some(())
    })
    .await;
    let response = reqwest::get(format!("http://{addr}/api/misbehave/ok"))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "plugin_busy");
    let (status, body) = first.await.unwrap();
    assert_eq!(
        (status, code(&body)),
        (StatusCode::GATEWAY_TIMEOUT, "plugin_timeout")
    );
    let metrics = t.site.services.metrics.render();
    assert!(
        metrics.contains(r#"ucms_plugin_instances_in_flight{plugin="misbehave"} 0"#),
        "{metrics}"
    );
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_wide_instance_cap_holds_across_plugins() {
    let mut config = crate::support::test_config();
    config.runtime.max_instances = 1;
    let t = TestSite::open(crate::support::Backend::Sqlite, config)
        .await
        .unwrap();
    t.install(HELLO).await;
    let manifest = MISBEHAVE
        .manifest()
        .replace("timeout-ms = 1000", "timeout-ms = 3000");
    t.install_with(MISBEHAVE, &manifest).await.unwrap();
    let addr = t.serve().await;
    let spinning = tokio::spawn(async move { get(addr, "/api/misbehave/spin").await });
    crate::support::eventually(10, || async {
        let metrics = t.site.services.metrics.render();
        metrics
            .contains(r#"ucms_plugin_instances_in_flight{plugin="misbehave"} 1"#)
            .then_some(())
    })
    .await;
    let (status, body) = get(addr, "/api/hello/greet").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "site_busy"),
        "{body}"
    );
    let (status, _) = spinning.await.unwrap();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let (status, _) = get(addr, "/api/hello/greet").await;
    assert_eq!(status, StatusCode::OK, "the slot is free again");
    t.close().await;
}
