//! Plugin settings saved from the admin (`PUT /api/ucms/plugins/{id}/settings`) and each
//! plugin's recent log (`GET /api/ucms/plugins/{id}/logs`), through the router on both databases.
//! The `mailer` plugin reads its `from` setting when it handles an order and logs each mail.

use http::{Method, StatusCode};
use serde_json::{Value, json};
use ucms::config::{Config, PluginConfig};
use ucms_test_components::{MAILER, MISBEHAVE, ORDERS};

use crate::support::{BACKENDS, TestSite, code, eventually, test_config};

async fn order(t: &TestSite, token: &str, n: usize) -> Value {
    let (status, body) = t
        .request(
            Method::POST,
            "/api/orders/orders",
            Some(token),
            Some(
                json!({ "item": "book", "quantity": 1, "email": format!("buyer{n}@example.com") }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

/// The sender of the mail to `buyer{n}@example.com`, once mailer has handled the order.
async fn sender(t: &TestSite, token: &str, n: usize) -> String {
    let to = format!("buyer{n}@example.com");
    eventually(10, || async {
        let (_, sent) = t
            .request(Method::GET, "/api/mailer/sent", Some(token), None)
            .await;
        sent.as_array()?
            .iter()
            .find(|m| m["to"] == to.as_str())
            .map(|m| m["from"].as_str().unwrap().to_string())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_saved_from_the_admin_reach_the_plugin_and_are_checked() {
    for backend in BACKENDS {
        let Some(t) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        t.install(ORDERS).await;
        t.install(MAILER).await;
        let admin = t.admin_token().await;
        let viewer = t.token("viewer@example.com", &["viewer"], &["*"]).await;
        let url = "/api/ucms/plugins/mailer/settings";

        let (status, s) = t.request(Method::GET, url, Some(&admin), None).await;
        assert_eq!(status, StatusCode::OK, "{s}");
        assert_eq!(s["values"]["from"], "shop@example.com", "the default");
        assert_eq!(s["schema"][0]["name"], "from");
        assert_eq!(s["schema"][0]["locked"], false);
        assert_eq!(s["editable"], true);
        order(&t, &admin, 1).await;
        assert_eq!(sender(&t, &admin, 1).await, "shop@example.com");

        // A viewer sees them and may not change them.
        let (status, s) = t.request(Method::GET, url, Some(&viewer), None).await;
        assert_eq!(status, StatusCode::OK, "{s}");
        assert_eq!(s["editable"], false);
        let (status, body) = t
            .request(
                Method::PUT,
                url,
                Some(&viewer),
                Some(json!({ "values": { "from": "x@example.com" } })),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

        // Bad values are refused, each named, and nothing is saved.
        for (values, expected) in [
            (json!({ "from": 42 }), "'from' must be a string, but is 42"),
            (
                json!({ "sender": "x@example.com" }),
                "'sender' is not a setting of 'mailer' (it declares: from)",
            ),
        ] {
            let (status, body) = t
                .request(
                    Method::PUT,
                    url,
                    Some(&admin),
                    Some(json!({ "values": values })),
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(code(&body), "invalid_settings");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(expected), "{message}");
        }
        let (_, s) = t.request(Method::GET, url, Some(&admin), None).await;
        assert_eq!(s["saved"], json!({}), "{s}");

        // Saved: the plugin is reloaded and the next event is handled with the new value.
        let (status, saved) = t
            .request(
                Method::PUT,
                url,
                Some(&admin),
                Some(json!({ "values": { "from": "orders@example.org" } })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(saved["values"]["from"], "orders@example.org");
        assert_eq!(saved["plugin"]["state"], "enabled", "{saved}");
        order(&t, &admin, 2).await;
        assert_eq!(sender(&t, &admin, 2).await, "orders@example.org");
        let (_, s) = t.request(Method::GET, url, Some(&admin), None).await;
        assert_eq!(s["saved"], json!({ "from": "orders@example.org" }));
        assert_eq!(s["values"]["from"], "orders@example.org");

        // Audited with the values before and after.
        let (status, audit) = t
            .request(
                Method::GET,
                "/api/ucms/audit?action=plugin.settings",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{audit}");
        let entry = &audit["entries"][0];
        assert_eq!(entry["target"], "plugin:mailer", "{audit}");
        assert_eq!(entry["detail"]["before"], json!({}));
        assert_eq!(entry["detail"]["after"]["from"], "orders@example.org");

        // Left out, a setting goes back to its default.
        let (status, saved) = t
            .request(
                Method::PUT,
                url,
                Some(&admin),
                Some(json!({ "values": {} })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(saved["values"]["from"], "shop@example.com");
        order(&t, &admin, 3).await;
        assert_eq!(sender(&t, &admin, 3).await, "shop@example.com");
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_the_sites_configuration_sets_are_locked() {
    let mut config: Config = test_config();
    config.plugins.insert(
        "mailer".into(),
        PluginConfig {
            settings: [(
                "from".to_string(),
                toml::Value::String("ops@example.com".into()),
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        },
    );
    let Some(t) = TestSite::open(crate::support::Backend::Sqlite, config).await else {
        unreachable!("SQLite always opens");
    };
    t.install(MAILER).await;
    let admin = t.admin_token().await;
    let url = "/api/ucms/plugins/mailer/settings";
    let (status, s) = t.request(Method::GET, url, Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["schema"][0]["locked"], true);
    assert_eq!(s["values"]["from"], "ops@example.com");
    let (status, body) = t
        .request(
            Method::PUT,
            url,
            Some(&admin),
            Some(json!({ "values": { "from": "x@example.com" } })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'from' is set by the site's configuration"),
        "{message}"
    );
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_log_keeps_its_lines_and_the_hosts_about_it() {
    for backend in BACKENDS {
        let Some(t) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        t.install(ORDERS).await;
        t.install(MAILER).await;
        t.install(MISBEHAVE).await;
        let admin = t.admin_token().await;
        let viewer = t.token("viewer@example.com", &["viewer"], &["*"]).await;
        order(&t, &admin, 1).await;
        sender(&t, &admin, 1).await;

        let (status, log) = t
            .request(
                Method::GET,
                "/api/ucms/plugins/mailer/logs",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let line = log["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["message"] == "confirmation sent")
            .unwrap_or_else(|| panic!("no 'confirmation sent' in {log}"));
        assert_eq!(line["source"], "plugin");
        assert_eq!(line["level"], "info");
        assert_eq!(line["fields"]["order"], "1", "{line}");
        assert!(line["request_id"].is_string(), "{line}");
        // Tailing: nothing after the last line yet.
        let after = log["next_after"].as_u64().unwrap();
        let (_, tail) = t
            .request(
                Method::GET,
                &format!("/api/ucms/plugins/mailer/logs?after={after}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(tail["lines"], json!([]), "{tail}");

        // A panic is noted by the host, with its message; `level=error` shows only such lines.
        let (_, body) = t.get("/api/misbehave/panic").await;
        assert_eq!(code(&body), "plugin_panicked", "{body}");
        let (status, errors) = t
            .request(
                Method::GET,
                "/api/ucms/plugins/misbehave/logs?level=error",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{errors}");
        let lines = errors["lines"].as_array().unwrap();
        assert!(!lines.is_empty(), "{errors}");
        assert!(lines.iter().all(|l| l["level"] == "error"), "{errors}");
        let noted = &lines[lines.len() - 1];
        assert_eq!(noted["source"], "host");
        assert!(
            noted["message"]
                .as_str()
                .unwrap()
                .contains("deliberate panic for the test"),
            "{noted}"
        );

        // Reading logs needs plugins.manage; the level must be one of the five.
        let (status, body) = t
            .request(
                Method::GET,
                "/api/ucms/plugins/mailer/logs",
                Some(&viewer),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, body) = t
            .request(
                Method::GET,
                "/api/ucms/plugins/mailer/logs?level=loud",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code(&body), "invalid_level");
        t.close().await;
    }
}
