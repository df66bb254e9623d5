//! Outbound HTTP: only granted hosts, never internal addresses unless the policy opens them for
//! a plugin — checked after DNS resolution (a scripted DNS server plays the attacker), at every
//! redirect, and on the address actually connected to.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::routing::get;
use http::{Method, StatusCode};
use ucms::config::Config;
use ucms::policy::PluginOverride;
use ucms_test_components::MISBEHAVE;

use crate::dns_server::TestDns;
use crate::support::{Backend, TestSite, code, test_config};

/// A tiny upstream on loopback; counts the requests it gets.
struct Upstream {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

async fn upstream() -> Upstream {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new()
        .route("/hello", get(|| async { "hi from upstream" }))
        .route(
            "/elsewhere",
            get(|| async { axum::response::Redirect::temporary("http://example.org/") }),
        )
        .route(
            "/to-metadata",
            get(|| async {
                axum::response::Redirect::temporary("http://169.254.169.254/latest/meta-data/")
            }),
        )
        .route(
            "/to-private-name",
            get(|| async { axum::response::Redirect::temporary("http://private.ucms.test/admin") }),
        )
        .route("/big", get(|| async { vec![b'x'; 600 * 1024] }))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                counter.fetch_add(1, Ordering::SeqCst);
                next.run(request)
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Upstream { addr, hits }
}

/// A configuration resolving plugins' names with `dns`, and letting misbehave reach `internal`.
fn config_with(dns: Option<&TestDns>, internal: &[&str]) -> Config {
    let mut config = test_config();
    if let Some(dns) = dns {
        config.egress.nameservers = vec![dns.addr];
    }
    if !internal.is_empty() {
        config.policy.overrides.insert(
            "misbehave".into(),
            PluginOverride {
                internal_networks: internal.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
        );
    }
    config
}

async fn site_with(config: Config) -> TestSite {
    let t = TestSite::open(Backend::Sqlite, config).await.unwrap();
    t.install(MISBEHAVE).await;
    t
}

fn message(body: &serde_json::Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
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
    let up = upstream().await.addr;
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
async fn the_policy_can_open_a_local_service_to_one_plugin() {
    let t = site_with(config_with(None, &["127.0.0.1/32"])).await;
    let up = upstream().await.addr;
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

#[tokio::test]
async fn names_that_resolve_to_internal_addresses_are_refused() {
    let up = upstream().await;
    let dns = TestDns::start(&[
        ("loopback.ucms.test", &[Ipv4Addr::LOCALHOST]),
        ("metadata.ucms.test", &[Ipv4Addr::new(169, 254, 169, 254)]),
    ])
    .await;
    let t = site_with(config_with(Some(&dns), &[])).await;
    let (status, body) = egress(
        &t,
        &format!("http://loopback.ucms.test:{}/hello", up.addr.port()),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::INTERNAL_SERVER_ERROR, "egress_denied"),
        "{body}"
    );
    assert!(
        message(&body).contains("loopback.ucms.test resolves to 127.0.0.1"),
        "{body}"
    );
    let (_, body) = egress(&t, "http://metadata.ucms.test/latest/meta-data/").await;
    assert_eq!(code(&body), "egress_denied", "{body}");
    assert!(message(&body).contains("169.254.169.254"), "{body}");
    assert!(
        dns.a_queries("loopback.ucms.test") >= 1,
        "the names were really looked up"
    );
    assert!(dns.a_queries("metadata.ucms.test") >= 1);
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        0,
        "nothing reached the upstream"
    );

    // Each refusal is counted, and audited (once a minute per capability, counting the rest).
    let metrics = t.site.services.metrics.render();
    assert!(
        metrics.contains(
            r#"ucms_plugin_capability_refusals_total{plugin="misbehave",capability="http-client"} 2"#
        ),
        "{metrics}"
    );
    let admin = t.admin_token().await;
    let entries = crate::support::eventually(5, || {
        let t = &t;
        let admin = admin.clone();
        async move {
            let (_, body) = t
                .request(
                    Method::GET,
                    "/api/ucms/audit?action=capability.refused",
                    Some(&admin),
                    None,
                )
                .await;
            let entries = body["entries"].as_array().cloned().unwrap_or_default();
            (!entries.is_empty()).then_some(entries)
        }
    })
    .await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["actor"], "plugin:misbehave");
    assert!(
        entries[0]["detail"]["detail"]
            .as_str()
            .unwrap()
            .contains("loopback.ucms.test"),
        "{entries:?}"
    );
    t.close().await;
}

#[tokio::test]
async fn a_name_that_rebinds_between_check_and_connect_never_reaches_the_internal_address() {
    let up = upstream().await;
    // The first answer passes the check (a public address, unreachable from here); every later
    // answer points at the loopback upstream. A client that resolved again to connect — the
    // rebinding attack — would reach it.
    let dns = TestDns::start(&[(
        "rebind.ucms.test",
        &[Ipv4Addr::new(93, 184, 215, 14), Ipv4Addr::LOCALHOST],
    )])
    .await;
    let t = site_with(config_with(Some(&dns), &[])).await;
    let url = format!("http://rebind.ucms.test:{}/hello", up.addr.port());
    let (status, body) = egress(&t, &url).await;
    assert_ne!(status, StatusCode::OK, "{body}");
    assert!(
        matches!(code(&body), "upstream_unreachable" | "upstream_timeout"),
        "the connection went to the checked public address and failed: {body}"
    );
    assert_eq!(
        dns.a_queries("rebind.ucms.test"),
        1,
        "one lookup per connection: the checked answer is the one connected to"
    );
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        0,
        "the loopback upstream was never reached"
    );

    // The next lookup gets the internal answer, and the check refuses it.
    let (_, body) = egress(&t, &url).await;
    assert_eq!(code(&body), "egress_denied", "{body}");
    assert!(message(&body).contains("resolves to 127.0.0.1"), "{body}");
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);
    t.close().await;
}

#[tokio::test]
async fn redirects_to_internal_addresses_are_refused_at_every_hop() {
    let up = upstream().await;
    let dns = TestDns::start(&[("private.ucms.test", &[Ipv4Addr::new(10, 1, 2, 3)])]).await;
    // The policy opens the loopback upstream to misbehave, and nothing else.
    let t = site_with(config_with(Some(&dns), &["127.0.0.1/32"])).await;
    let port = up.addr.port();
    let (status, body) = egress(&t, &format!("http://127.0.0.1:{port}/hello")).await;
    assert_eq!(status, StatusCode::OK, "the first hop is allowed: {body}");

    let (_, body) = egress(&t, &format!("http://127.0.0.1:{port}/to-metadata")).await;
    assert_eq!(code(&body), "egress_denied", "{body}");
    assert!(
        message(&body).contains("169.254.169.254 is an internal address"),
        "{body}"
    );

    let (_, body) = egress(&t, &format!("http://127.0.0.1:{port}/to-private-name")).await;
    assert_eq!(code(&body), "egress_denied", "{body}");
    assert!(
        message(&body).contains("private.ucms.test resolves to 10.1.2.3"),
        "{body}"
    );
    assert_eq!(dns.a_queries("private.ucms.test"), 1);
    t.close().await;
}

#[tokio::test]
async fn outbound_bytes_per_invocation_are_bounded() {
    let up = upstream().await;
    let mut config = config_with(None, &["127.0.0.1/32"]);
    config.policy.defaults.max_outbound_kib = Some(512);
    let t = site_with(config).await;
    let (_, body) = egress(&t, &format!("http://127.0.0.1:{}/big", up.addr.port())).await;
    assert_eq!(code(&body), "egress_limit_exceeded", "{body}");
    assert!(message(&body).contains("limits.max-outbound-kib"), "{body}");
    let metrics = t.site.services.metrics.render();
    assert!(
        metrics.contains(
            r#"ucms_plugin_limit_breaches_total{plugin="misbehave",limit="max-outbound-kib"} 1"#
        ),
        "{metrics}"
    );
    t.close().await;
}
