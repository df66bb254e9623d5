//! Quarantine: a plugin that keeps trapping is stopped automatically, while the rest of the site
//! serves; an administrator inspects it, then releases it; its event deliveries wait meanwhile.

use http::{Method, StatusCode};
use serde_json::Value;
use ucms::capabilities::events::outbox::NewEvent;
use ucms::config::Config;
use ucms::policy::QuarantineRules;
use ucms_test_components::{HELLO, MISBEHAVE, TALLY};

use crate::support::{BACKENDS, TestSite, code, eventually, test_config};

fn config() -> Config {
    let mut config = test_config();
    config.policy.quarantine = QuarantineRules {
        enabled: true,
        failures: 5,
        window_secs: 60,
        min_failure_ratio: 0.5,
    };
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_keeps_trapping_is_quarantined_and_the_site_is_unaffected() {
    for backend in BACKENDS {
        let Some(t) = TestSite::open(backend, config()).await else {
            continue;
        };
        t.install(HELLO).await;
        t.install(MISBEHAVE).await;
        let admin = t.admin_token().await;

        // Panic after panic, each answered cleanly, while hello keeps greeting.
        let mut panics = 0;
        let quarantined = loop {
            let (status, body) = t.get("/api/misbehave/panic").await;
            match code(&body) {
                "plugin_panicked" => panics += 1,
                "plugin_quarantined" => break body,
                other => panic!("unexpected answer {status} {other}: {body}"),
            }
            let (status, greeting) = t.get("/api/hello/greet?name=Ada").await;
            assert_eq!(status, StatusCode::OK, "{greeting}");
            assert!(panics <= 30, "never quarantined after {panics} panics");
        };
        assert!(
            panics >= 5,
            "quarantined only after the policy's count: {panics}"
        );
        assert!(
            quarantined["error"]["message"]
                .as_str()
                .unwrap()
                .contains("plugin_panicked"),
            "{quarantined}"
        );

        // Every route of it answers 503 with the code; others serve.
        let (status, body) = t.get("/api/misbehave/ok").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::SERVICE_UNAVAILABLE, "plugin_quarantined")
        );
        let (status, _) = t.get("/api/hello/greet?name=Ada").await;
        assert_eq!(status, StatusCode::OK);

        // An administrator sees why.
        let (_, info) = t
            .request(
                Method::GET,
                "/api/ucms/plugins/misbehave",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(info["state"], "quarantined", "{info}");
        assert!(
            info["quarantine"]["trip"]["failures"].as_u64().unwrap() >= 5,
            "{info}"
        );
        let recent = info["recent_failures"].as_array().unwrap();
        assert!(
            recent.iter().all(|f| f["code"] == "plugin_panicked"),
            "{info}"
        );
        let (_, audit) = t
            .request(
                Method::GET,
                "/api/ucms/audit?action=plugin.quarantine",
                Some(&admin),
                None,
            )
            .await;
        let entries = audit["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{audit}");
        assert_eq!(entries[0]["target"], "plugin:misbehave");
        let metrics = t.site.services.metrics.render();
        assert!(
            metrics.contains(r#"ucms_plugin_quarantined{plugin="misbehave"} 1"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(
                r#"ucms_plugin_info{plugin="misbehave",version="0.1.0",state="quarantined"} 1"#
            ),
            "{metrics}"
        );

        // It is recorded in the database, so every node (and a restart) sees it.
        let stored = t.site.plugins.stored_quarantine("misbehave").await.unwrap();
        assert!(stored.is_some());

        // Released: it serves again, with a clean record.
        let (status, body) = t
            .request(
                Method::POST,
                "/api/ucms/plugins/misbehave/enable",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "enabled", "{body}");
        let (status, _) = t.get("/api/misbehave/ok").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            t.site
                .plugins
                .stored_quarantine("misbehave")
                .await
                .unwrap()
                .is_none()
        );
        let (_, audit) = t
            .request(
                Method::GET,
                "/api/ucms/audit?action=plugin.release",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(audit["entries"].as_array().unwrap().len(), 1, "{audit}");
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_subscriber_s_deliveries_wait_for_its_release() {
    for backend in BACKENDS {
        let Some(t) = TestSite::open(backend, config()).await else {
            continue;
        };
        t.install(TALLY).await;
        let admin = t.admin_token().await;
        let trip = ucms::runtime::health::Trip {
            failures: 5,
            invocations: 5,
            window_secs: 60,
            recent: Vec::new(),
        };
        assert!(t.site.plugins.quarantine("tally", trip).await.unwrap());

        // Three events for it arrive while it is quarantined: parked, not attempted.
        for n in 0..3 {
            let event = NewEvent {
                id: uuid::Uuid::now_v7().to_string(),
                topic: "tally.counted".into(),
                key: None,
                payload: serde_json::to_vec(
                    &serde_json::json!({ "n": n, "slow_ms": 0, "fail": 0 }),
                )
                .unwrap(),
                source: "test".into(),
                published_at: ucms::db::now_ms(),
            };
            t.site
                .services
                .events
                .outbox
                .publish(&event, &["tally".to_string()], ucms::db::now_ms())
                .await
                .unwrap();
        }
        t.site.services.events.published();
        eventually(10, || {
            let t = &t;
            async move {
                let metrics = t.site.services.metrics.render();
                metrics
                    .lines()
                    .any(|l| {
                        l.starts_with(
                            r#"ucms_event_deliveries_total{plugin="tally",outcome="parked"}"#,
                        ) && !l.ends_with(" 0")
                    })
                    .then_some(())
            }
        })
        .await;
        let (status, _) = t
            .request(Method::POST, "/api/tally/publish?n=1", None, None)
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

        // Released: the parked deliveries are handled at once (not after the hour they wait).
        let (status, _) = t
            .request(
                Method::POST,
                "/api/ucms/plugins/tally/enable",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let seen: Value = eventually(10, || {
            let t = &t;
            async move {
                let (_, seen) = t.get("/api/tally/seen").await;
                (seen["deliveries"].as_object().map_or(0, |d| d.len()) == 3).then_some(seen)
            }
        })
        .await;
        assert!(
            seen["deliveries"]
                .as_object()
                .unwrap()
                .values()
                .all(|n| n == 1),
            "each once: {seen}"
        );
        t.close().await;
    }
}
