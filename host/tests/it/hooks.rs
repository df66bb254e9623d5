//! Hooks: several plugins joining one point in priority order, a hook that rewrites the value and
//! one that rejects it (both seen by the HTTP caller), a hook past its deadline handled as its
//! manifest declares, points a plugin doesn't own refused, conditional permissions through
//! `auth.access`, and a plugin built for API 0.2.0 still running on a 0.2.1 host.

use http::{Method, StatusCode};
use serde_json::json;
use ucms::identity::Principal;
use ucms_test_components::{HOOKY, LEGACY_0_2};

use crate::support::{BACKENDS, TestSite, code, eventually, test_config};

/// The hooky manifest under another id, with another hook mode and priority.
fn copy(id: &str, mode: &str, priority: i32) -> String {
    HOOKY
        .manifest()
        .replace("id = \"hooky\"", &format!("id = \"{id}\""))
        .replace("default = \"slug\"", &format!("default = \"{mode}\""))
        .replace("priority = 10", &format!("priority = {priority}"))
}

#[tokio::test]
async fn hooks_rewrite_and_reject_in_priority_order() {
    for backend in BACKENDS {
        let Some(site) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        site.install(HOOKY).await;
        site.install_with(HOOKY, &copy("hooky-check", "check", 5))
            .await
            .unwrap();
        site.install_with(HOOKY, &copy("hooky-upper", "upper", 20))
            .await
            .unwrap();
        assert_eq!(
            site.site.plugins.hooks().joined("hooky.before-save"),
            vec![
                ("hooky-check".to_string(), 5),
                ("hooky".to_string(), 10),
                ("hooky-upper".to_string(), 20)
            ],
            "{backend:?}"
        );

        // Rewritten: a slug added by one hook, the title changed by a later one.
        let (status, body) = site
            .request(
                Method::POST,
                "/api/hooky/items",
                None,
                Some(json!({ "title": "Hello Hook World" })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
        assert_eq!(
            body,
            json!({
                "title": "HELLO HOOK WORLD",
                "slug": "hello-hook-world",
                "trail": ["check", "slug", "upper"],
            }),
            "{backend:?}"
        );

        // Rejected by the first hook: the caller sees its message, later hooks don't run.
        let (status, body) = site
            .request(
                Method::POST,
                "/api/hooky/items",
                None,
                Some(json!({ "title": "a forbidden title" })),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend:?}: {body}"
        );
        assert_eq!(code(&body), "hook_rejected");
        assert_eq!(
            body["error"]["message"],
            "the title 'a forbidden title' contains a forbidden word"
        );

        // Host code runs points through the same runner.
        let out = site
            .site
            .plugins
            .hooks()
            .run(
                "hooky.before-save",
                br#"{"title":"From the host"}"#.to_vec(),
                &Principal::System,
            )
            .await
            .unwrap();
        let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(out["slug"], "from-the-host");
        let rejected = site
            .site
            .plugins
            .hooks()
            .run(
                "hooky.before-save",
                br#"{"title":"forbidden"}"#.to_vec(),
                &Principal::System,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&rejected, ucms::plugins::hooks::HookError::Rejected { plugin, .. } if plugin == "hooky-check"),
            "{rejected:?}"
        );

        // hooky-check's own route runs `hooky.before-save`, a point it doesn't own.
        let (status, body) = site
            .request(
                Method::POST,
                "/api/hooky-check/items",
                None,
                Some(json!({ "title": "x" })),
            )
            .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert_eq!(code(&body), "hook_invalid");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("may run only its own hook points"),
            "{body}"
        );

        // A disabled plugin leaves the chain.
        site.site
            .plugins
            .set_enabled("hooky-upper", false, None)
            .await
            .unwrap();
        let (_, body) = site
            .request(
                Method::POST,
                "/api/hooky/items",
                None,
                Some(json!({ "title": "Quiet" })),
            )
            .await;
        assert_eq!(body["trail"], json!(["check", "slug"]), "{backend:?}");
        site.close().await;
    }
}

#[tokio::test]
async fn a_hook_past_its_deadline_rejects_or_is_skipped_as_declared() {
    for backend in BACKENDS {
        let Some(site) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        site.install(HOOKY).await;
        let looping = copy("hooky-loop", "loop", 1).replace("timeout-ms = 500", "timeout-ms = 100");
        site.install_with(HOOKY, &looping).await.unwrap();

        // on-failure = "reject": the caller is refused, with the plugin and the failure named.
        let started = std::time::Instant::now();
        let (status, body) = site
            .request(
                Method::POST,
                "/api/hooky/items",
                None,
                Some(json!({ "title": "Slow" })),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend:?}: {body}"
        );
        assert_eq!(code(&body), "hook_failed");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("hooky-loop") && message.contains("plugin_timeout"),
            "{message}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(3));

        // on-failure = "skip" (an upgrade of the same plugin): the value passes on unchanged.
        let skipping = looping
            .replace("on-failure = \"reject\"", "on-failure = \"skip\"")
            .replace("version = \"0.1.0\"", "version = \"0.1.1\"");
        site.install_with(HOOKY, &skipping).await.unwrap();
        let (status, body) = site
            .request(
                Method::POST,
                "/api/hooky/items",
                None,
                Some(json!({ "title": "Slow Again" })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
        assert_eq!(body["slug"], "slow-again");
        assert_eq!(body["trail"], json!(["slug"]));

        let metrics = site.site.services.metrics.render();
        for outcome in ["failed_rejected", "failed_skipped"] {
            assert!(
                metrics
                    .lines()
                    .any(|l| l.starts_with("ucms_hook_calls_total")
                        && l.contains("plugin=\"hooky-loop\"")
                        && l.contains(outcome)),
                "no {outcome} in the hook metrics"
            );
        }
        assert!(metrics.contains("ucms_hook_duration_seconds_bucket"));
        site.close().await;
    }
}

#[tokio::test]
async fn auth_access_returns_the_conditions_of_a_grant() {
    for backend in BACKENDS {
        let Some(site) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        site.install(HOOKY).await;
        ucms::db::on_db!(&site.site.db, write, |pool| {
            sqlx::query("INSERT INTO roles (name, permissions) VALUES ($1, $2)")
                .bind("item-owner")
                .bind(r#"["hooky.items.edit:own"]"#)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .unwrap();
        let owner = site
            .token("owner@example.com", &["item-owner"], &["*"])
            .await;
        let (status, body) = site
            .request(Method::GET, "/api/hooky/access", Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
        assert_eq!(body["access"], json!({ "only": ["own"] }), "{backend:?}");

        let admin = site.admin_token().await;
        let (_, body) = site
            .request(Method::GET, "/api/hooky/access", Some(&admin), None)
            .await;
        assert_eq!(body["access"], "granted");

        let (_, body) = site.get("/api/hooky/access").await;
        assert_eq!(body["access"], "denied");
        site.close().await;
    }
}

/// wasmtime links a component's `ucms:host/…@0.2.0` imports to the host's 0.2.1 definitions
/// (semver-compatible), and its 0.2.0 exports are called through the 0.2.0 bindings.
#[tokio::test]
async fn a_plugin_built_for_api_0_2_0_keeps_running() {
    for backend in BACKENDS {
        let Some(site) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        site.install(LEGACY_0_2).await;
        for expected in [1, 2] {
            let (status, body) = site
                .request(Method::POST, "/api/legacy-two/count", None, None)
                .await;
            assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
            assert_eq!(body["value"], expected);
            assert_eq!(body["principal"], "anonymous");
        }
        let (status, body) = site
            .request(Method::POST, "/api/legacy-two/publish", None, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
        let event = body["event"].as_str().unwrap().to_string();
        eventually(10, || {
            let site = &site;
            let event = event.clone();
            async move {
                let (_, body) = site.get("/api/legacy-two/state").await;
                body["delivered"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|e| e == event.as_str()))
                    .then_some(())
            }
        })
        .await;

        // Hooks need the 0.2.1 exports: a 0.2.0 component joining a point is refused, clearly.
        let joining = LEGACY_0_2
            .manifest()
            .replace("id = \"legacy-two\"", "id = \"legacy-hooked\"")
            + "\n[[hooks]]\npoint = \"hooky.before-save\"\n";
        let error = site
            .install_with(LEGACY_0_2, &joining)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("no ucms:plugin/hooks export") && error.contains("0.2.1"),
            "{error}"
        );
        site.close().await;
    }
}
