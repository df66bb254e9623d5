//! The `webhooks` plugin (plugins/webhooks) end to end: endpoints managed over the API with its
//! permissions, `content.*` events (published by `misbehave`, allowed to publish them here)
//! POSTed to a receiver on loopback, signatures checked with an independent HMAC, a 500 retried
//! by the plugin's schedule, the delivery log, pings, redeliveries, rotation, and the site's
//! egress policy deciding which hosts endpoints may use (`site-hosts` in the manifest,
//! `[policy.overrides.webhooks] hosts` in the policy).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use ucms::config::{Config, PluginConfig};
use ucms::policy::PluginOverride;
use ucms_test_components::{CONTENT, MISBEHAVE, WEBHOOKS};

use crate::support::{BACKENDS, Backend, TestSite, code, eventually, test_config};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A webhook receiver on 127.0.0.1: records every request, answers with the queued statuses
/// first, then 200.
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<Hit>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
}

impl Receiver {
    async fn start() -> (SocketAddr, Self) {
        async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
            r.hits.lock().unwrap().push(Hit {
                headers,
                body: body.to_vec(),
            });
            let status = r.statuses.lock().unwrap().pop_front().unwrap_or(200);
            StatusCode::from_u16(status).unwrap()
        }
        let receiver = Self::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (addr, receiver)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// The requests carrying event `id`.
    fn for_event(&self, id: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| body_json(h)["id"] == id)
            .collect()
    }
}

fn body_json(hit: &Hit) -> Value {
    serde_json::from_slice(&hit.body).expect("a webhook body is JSON")
}

fn header<'a>(hit: &'a Hit, name: &str) -> &'a str {
    hit.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// Verifies `X-UCMS-Signature` the way docs/webhooks.md tells receivers to, with its own HMAC:
/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, `t` equal to `X-UCMS-Timestamp` and
/// within five minutes of now.
fn verify(secret: &str, hit: &Hit) -> bool {
    let signature = header(hit, "x-ucms-signature");
    let mut t = None;
    let mut v1 = None;
    for part in signature.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let fresh = t.parse::<u64>().is_ok_and(|t| now.abs_diff(t) <= 300);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&hit.body);
    let Ok(expected) = hex::decode(v1) else {
        return false;
    };
    fresh && header(hit, "x-ucms-timestamp") == t && mac.verify_slice(&expected).is_ok()
}

/// A site where `webhooks` may reach 127.0.0.1 (the policy grants the host and opens loopback
/// for it alone) with these settings; `misbehave` may publish `content.*` events.
async fn site(backend: Backend, settings: &[(&str, i64)]) -> Option<TestSite> {
    let mut config: Config = test_config();
    config.plugins.insert(
        "webhooks".into(),
        PluginConfig {
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), toml::Value::Integer(*v)))
                .collect(),
            ..Default::default()
        },
    );
    config.policy.overrides.insert(
        "webhooks".into(),
        PluginOverride {
            internal_networks: vec!["127.0.0.1/32".into()],
            hosts: vec!["127.0.0.1".into()],
            ..Default::default()
        },
    );
    let t = TestSite::open(backend, config).await?;
    t.install(WEBHOOKS).await;
    let manifest = MISBEHAVE.manifest().replace(
        r#"events = { publish = ["misbehave.*"] }"#,
        r#"events = { publish = ["misbehave.*", "content.*"] }"#,
    );
    assert!(
        manifest.contains("content.*"),
        "misbehave's manifest changed"
    );
    t.install_with(MISBEHAVE, &manifest).await.unwrap();
    Some(t)
}

/// Publishes `topic` through misbehave; returns the event id.
async fn publish(t: &TestSite, topic: &str) -> String {
    let (status, body) = t
        .request(
            Method::POST,
            &format!("/api/misbehave/publish?topic={topic}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["event"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn webhooks_are_signed_retried_logged_and_permission_checked() {
    for backend in BACKENDS {
        let settings = [("retry-base-seconds", 1), ("log-per-endpoint", 3)];
        let Some(t) = site(backend, &settings).await else {
            continue;
        };
        let (addr, receiver) = Receiver::start().await;
        let url = format!("http://{addr}/hook");
        let admin = t.admin_token().await;
        let viewer = t.token("viewer@example.com", &["viewer"], &["*"]).await;

        // Permissions: anonymous callers are refused, a viewer reads, only a manager writes.
        let (status, body) = t.get("/api/webhooks/endpoints").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let new = json!({ "url": url, "events": ["content.entry.*"] });
        let (status, body) = t
            .request(
                Method::POST,
                "/api/webhooks/endpoints",
                Some(&viewer),
                Some(new.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

        // Bad endpoints are refused, each saying what is wrong.
        for (input, status, expected) in [
            (
                json!({ "url": "ftp://127.0.0.1/hook", "events": ["content.*"] }),
                400,
                "invalid_url",
            ),
            (
                json!({ "url": "not a url", "events": ["content.*"] }),
                400,
                "invalid_url",
            ),
            (json!({ "url": url, "events": [] }), 400, "no_events"),
            (
                json!({ "url": url, "events": ["orders.*"] }),
                400,
                "event_not_delivered",
            ),
            (
                json!({ "url": url, "events": ["Content.*"] }),
                400,
                "invalid_event_pattern",
            ),
            (
                json!({ "url": "http://hooks.example.com/in", "events": ["content.*"] }),
                422,
                "destination_not_allowed",
            ),
        ] {
            let (got, body) = t
                .request(
                    Method::POST,
                    "/api/webhooks/endpoints",
                    Some(&admin),
                    Some(input.clone()),
                )
                .await;
            assert_eq!(
                (got.as_u16(), code(&body)),
                (status, expected),
                "{input}: {body}"
            );
        }
        let (_, body) = t
            .request(
                Method::POST,
                "/api/webhooks/endpoints",
                Some(&admin),
                Some(json!({ "url": "http://hooks.example.com/in", "events": ["content.*"] })),
            )
            .await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("[policy.overrides.webhooks] hosts")
                && message.contains("hooks.example.com"),
            "{message}"
        );

        // An endpoint: the secret comes back once.
        let (status, created) = t
            .request(
                Method::POST,
                "/api/webhooks/endpoints",
                Some(&admin),
                Some(new),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        let secret = created["secret"].as_str().unwrap().to_string();
        assert!(
            secret.starts_with("whsec_") && secret.len() == 6 + 64,
            "{secret}"
        );
        assert!(
            receiver.hits().is_empty(),
            "checking the destination sent nothing"
        );
        let (status, listed) = t
            .request(Method::GET, "/api/webhooks/endpoints", Some(&viewer), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        assert_eq!(listed["items"][0]["id"], id.as_str());
        let (_, one) = t
            .request(
                Method::GET,
                &format!("/api/webhooks/endpoints/{id}"),
                Some(&admin),
                None,
            )
            .await;
        for shown in [&listed, &one] {
            assert!(
                !shown.to_string().contains(&secret),
                "the secret leaked: {shown}"
            );
            assert!(
                !shown.to_string().contains("whsec_"),
                "a secret leaked: {shown}"
            );
        }

        // A topic the endpoint doesn't want, then one it does, whose first attempt fails.
        receiver.statuses.lock().unwrap().push_back(500);
        let other = publish(&t, "content.type.changed").await;
        let event = publish(&t, "content.entry.published").await;
        let hits = eventually(30, || async {
            let hits = receiver.for_event(&event);
            (hits.len() >= 2).then_some(hits)
        })
        .await;
        assert_eq!(hits.len(), 2, "one failure, one success");
        for hit in &hits {
            assert!(verify(&secret, hit), "bad signature: {hit:?}");
            assert!(!verify("whsec_other", hit));
            assert_eq!(header(hit, "x-ucms-event"), "content.entry.published");
            assert_eq!(header(hit, "content-type"), "application/json");
            let body = body_json(hit);
            assert_eq!(body["topic"], "content.entry.published");
            assert_eq!(body["data"], json!({ "poked": true }));
            assert!(
                body["occurred-at"].as_str().unwrap().ends_with('Z'),
                "{body}"
            );
        }
        assert_eq!(
            header(&hits[0], "x-ucms-delivery"),
            header(&hits[1], "x-ucms-delivery"),
            "a retry is the same delivery"
        );
        let delivery = header(&hits[0], "x-ucms-delivery").to_string();

        // The log says so, to a viewer too.
        let log = eventually(10, || async {
            let (_, log) = t
                .request(
                    Method::GET,
                    &format!("/api/webhooks/endpoints/{id}/deliveries"),
                    Some(&viewer),
                    None,
                )
                .await;
            (log["items"][0]["state"] == "delivered").then_some(log)
        })
        .await;
        let entry = &log["items"][0];
        assert_eq!(entry["id"], delivery.as_str(), "{log}");
        assert_eq!(entry["event_id"], event.as_str());
        assert_eq!(entry["topic"], "content.entry.published");
        assert_eq!(entry["attempts"], 2);
        assert_eq!(entry["status_code"], 200);
        assert!(entry["duration_ms"].is_u64(), "{entry}");
        assert!(
            entry["error"].is_null() && entry["next_retry_at"].is_null(),
            "{entry}"
        );
        assert!(
            receiver.for_event(&other).is_empty(),
            "content.type.changed isn't wanted"
        );

        // Redelivery: the same body again, as a new delivery.
        let (status, again) = t
            .request(
                Method::POST,
                &format!("/api/webhooks/deliveries/{delivery}/redeliver"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{again}");
        assert_eq!(again["state"], "delivered");
        assert_eq!(again["redelivery_of"], delivery.as_str());
        let hits = receiver.for_event(&event);
        assert_eq!(hits.len(), 3);
        assert_eq!(hits[2].body, hits[1].body);
        assert_ne!(header(&hits[2], "x-ucms-delivery"), delivery);
        let (status, body) = t
            .request(
                Method::POST,
                &format!("/api/webhooks/deliveries/{delivery}/redeliver"),
                Some(&viewer),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

        // Rotation: a new secret, shown once; pings are signed with it.
        let (status, rotated) = t
            .request(
                Method::POST,
                &format!("/api/webhooks/endpoints/{id}/rotate-secret"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        let new_secret = rotated["secret"].as_str().unwrap().to_string();
        assert_ne!(new_secret, secret);
        for _ in 0..3 {
            let (status, ping) = t
                .request(
                    Method::POST,
                    &format!("/api/webhooks/endpoints/{id}/ping"),
                    Some(&admin),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{ping}");
            assert_eq!(
                (ping["state"].as_str(), ping["status_code"].as_u64()),
                (Some("delivered"), Some(200))
            );
        }
        let last = receiver.hits().pop().unwrap();
        assert_eq!(header(&last, "x-ucms-event"), "webhooks.ping");
        assert!(verify(&new_secret, &last) && !verify(&secret, &last));

        // The log keeps the newest `log-per-endpoint` (3) finished deliveries.
        let (_, log) = t
            .request(
                Method::GET,
                &format!("/api/webhooks/endpoints/{id}/deliveries"),
                Some(&admin),
                None,
            )
            .await;
        let items = log["items"].as_array().unwrap();
        assert_eq!(items.len(), 3, "{log}");
        assert!(
            items.iter().all(|d| d["ping"] == true),
            "the oldest went first: {log}"
        );

        // A disabled endpoint gets nothing; a deleted one is gone with its log.
        let (status, body) = t
            .request(
                Method::PUT,
                &format!("/api/webhooks/endpoints/{id}"),
                Some(&admin),
                Some(json!({ "url": url, "events": ["content.*"], "enabled": false })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["enabled"], false);
        let before = receiver.hits().len();
        let quiet = publish(&t, "content.entry.deleted").await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(receiver.for_event(&quiet).is_empty());
        assert_eq!(receiver.hits().len(), before);
        let (status, _) = t
            .request(
                Method::DELETE,
                &format!("/api/webhooks/endpoints/{id}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, body) = t
            .request(
                Method::GET,
                &format!("/api/webhooks/endpoints/{id}/deliveries"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "endpoint_not_found")
        );

        t.close().await;
    }
}

/// A receiver that keeps failing: the delivery waits for its retry with a `next_retry_at`, and
/// after `max-attempts` it is `dead`; a 4xx is not retried.
#[tokio::test]
async fn failing_receivers_are_retried_until_dead_and_client_errors_are_not() {
    let settings = [("retry-base-seconds", 1), ("max-attempts", 2)];
    let t = site(Backend::Sqlite, &settings)
        .await
        .expect("SQLite always works");
    let (addr, receiver) = Receiver::start().await;
    let admin = t.admin_token().await;
    let (_, created) = t
        .request(
            Method::POST,
            "/api/webhooks/endpoints",
            Some(&admin),
            Some(json!({ "url": format!("http://{addr}/hook"), "events": ["*"] })),
        )
        .await;
    let uri = format!(
        "/api/webhooks/endpoints/{}/deliveries",
        created["id"].as_str().unwrap()
    );
    let find = |event: String, pred: fn(&Value) -> bool| {
        let (t, uri, admin) = (&t, uri.clone(), admin.clone());
        async move {
            let (_, log) = t.request(Method::GET, &uri, Some(&admin), None).await;
            log["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["event_id"] == event.as_str() && pred(d))
                .cloned()
        }
    };

    receiver.statuses.lock().unwrap().push_back(404);
    let rejected = publish(&t, "content.entry.created").await;
    let finished = |d: &Value| d["state"] != "pending" && d["state"] != "sending";
    let entry = eventually(10, || find(rejected.clone(), finished)).await;
    assert_eq!(entry["state"], "failed", "{entry}");
    assert_eq!(
        (entry["attempts"].as_u64(), entry["status_code"].as_u64()),
        (Some(1), Some(404))
    );
    assert!(entry["error"].as_str().unwrap().contains("404"), "{entry}");

    receiver.statuses.lock().unwrap().extend([503, 503]);
    let failing = publish(&t, "content.entry.updated").await;
    let waiting = eventually(10, || find(failing.clone(), |d| d["attempts"] == 1)).await;
    assert_eq!(waiting["state"], "pending", "{waiting}");
    assert!(
        waiting["next_retry_at"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z')),
        "{waiting}"
    );
    assert!(
        waiting["error"].as_str().unwrap().contains("503"),
        "{waiting}"
    );
    let dead = eventually(30, || find(failing.clone(), |d| d["state"] == "dead")).await;
    assert_eq!(dead["attempts"], 2, "{dead}");
    assert!(dead["next_retry_at"].is_null(), "{dead}");
    assert_eq!(receiver.for_event(&failing).len(), 2);
    assert_eq!(receiver.for_event(&rejected).len(), 1);
    t.close().await;
}

/// The content plugin's own events reach an endpoint: an entry created and published through the
/// content API arrives signed, with the entry in the payload, on both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_changes_are_delivered_as_signed_webhooks() {
    for backend in BACKENDS {
        let Some(t) = site(backend, &[("retry-base-seconds", 1)]).await else {
            continue;
        };
        t.install(CONTENT).await;
        let (addr, receiver) = Receiver::start().await;
        let admin = t.admin_token().await;
        let (status, created) = t
            .request(
                Method::POST,
                "/api/webhooks/endpoints",
                Some(&admin),
                Some(json!({
                    "url": format!("http://{addr}/hook"),
                    "events": ["content.entry.*"],
                    "description": "rebuild the static site"
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let secret = created["secret"].as_str().unwrap().to_string();

        let note = json!({"name": "note", "fields": [
            {"name": "title", "type": "short-text", "required": true}
        ]});
        let (status, body) = t
            .request(Method::POST, "/api/content/types", Some(&admin), Some(note))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = t
            .request(
                Method::POST,
                "/api/content/note",
                Some(&admin),
                Some(json!({"fields": {"title": "Hello, webhooks"}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["data"]["id"].as_str().unwrap().to_string();
        let (status, body) = t
            .request(
                Method::POST,
                &format!("/api/content/note/{id}/publish"),
                Some(&admin),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");

        let hits = eventually(30, || async {
            let hits = receiver.hits();
            let topics: Vec<String> = hits
                .iter()
                .map(|h| {
                    body_json(h)["topic"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            (topics.iter().any(|t| t == "content.entry.created")
                && topics.iter().any(|t| t == "content.entry.published"))
            .then_some(hits)
        })
        .await;
        for hit in &hits {
            assert!(verify(&secret, hit), "bad signature: {hit:?}");
            let body = body_json(hit);
            assert!(
                body["topic"]
                    .as_str()
                    .unwrap()
                    .starts_with("content.entry."),
                "the type change was not asked for: {body}"
            );
            assert_eq!(body["data"]["type"], "note", "{body}");
            assert_eq!(body["data"]["id"], id.as_str(), "{body}");
        }
        t.close().await;
    }
}
