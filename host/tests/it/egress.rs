//! Outbound HTTP: only granted hosts, never internal addresses unless the operator allows them.

use std::net::SocketAddr;

use axum::routing::get;
use http::{Method, StatusCode};
use ucms::config::PluginConfig;
use ucms_test_components::MISBEHAVE;

use crate::support::{TestSite, code, test_config};

/// A tiny upstream on loopback.
async fn upstream() -> SocketAddr {
    let app = axum::Router::new()
        .route("/hello", get(|| async { "hi from upstream" }))
        .route(
            "/elsewhere",
            get(|| async { axum::response::Redirect::temporary("http://example.org/") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn egress(t: &TestSite, url: &str) -> (StatusCode, serde_json::Value) {
    egress_times(t, url, 1).await
}

async fn egress_times(t: &TestSite, url: &str, count: usize) -> (StatusCode, serde_json::Value) {
    let uri = format!(
        "/api/misbehave/egress?url={}&count={count}",
        percent_encode(url)
    );
    t.request(Method::GET, &uri, None, None).await
}

fn percent_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn internal_addresses_are_refused() {
    let t = TestSite::sqlite().await;
    t.install(MISBEHAVE).await;
    let up = upstream().await;
    for (url, why) in [
        (
            format!("http://127.0.0.1:{}/hello", up.port()),
            "internal address",
        ),
        (
            format!("http://localhost:{}/hello", up.port()),
            "resolves to",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "internal address",
        ),
        (
            format!("http://[::1]:{}/hello", up.port()),
            "internal address",
        ),
    ] {
        let (status, body) = egress(&t, &url).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::INTERNAL_SERVER_ERROR, "egress_denied"),
            "{url}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{url}: {body}"
        );
    }
    let (_, body) = egress(&t, "http://example.com/").await;
    assert_eq!(code(&body), "egress_denied");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not among the hosts the manifest grants"),
        "{body}"
    );
    let (_, body) = egress(&t, "file:///etc/passwd").await;
    assert_eq!(code(&body), "egress_denied");
    let metrics = t.site.services.metrics.render();
    assert!(
        metrics.contains(
            r#"ucms_plugin_outbound_requests_total{plugin="misbehave",outcome="denied"} 6"#
        ),
        "{metrics}"
    );
    t.close().await;
}

#[tokio::test]
async fn the_operator_can_allow_a_plugin_to_reach_local_services() {
    let mut config = test_config();
    config.plugins.insert(
        "misbehave".into(),
        PluginConfig {
            allow_private_egress: true,
            ..Default::default()
        },
    );
    let t = TestSite::open(crate::support::Backend::Sqlite, config)
        .await
        .unwrap();
    t.install(MISBEHAVE).await;
    let up = upstream().await;
    let (status, body) = egress(&t, &format!("http://127.0.0.1:{}/hello", up.port())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["body"], "hi from upstream");

    // A redirect is checked again at every hop.
    let (_, body) = egress(&t, &format!("http://127.0.0.1:{}/elsewhere", up.port())).await;
    assert_eq!(code(&body), "egress_denied", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("example.org"),
        "{body}"
    );

    // At most 16 outbound requests per invocation by default.
    let (_, body) = egress_times(&t, &format!("http://127.0.0.1:{}/hello", up.port()), 17).await;
    assert_eq!(code(&body), "egress_limit_exceeded", "{body}");
    t.close().await;
}
