//! Installing, validating, disabling, removing and reloading plugins.

use http::StatusCode;
use ucms::config::DataDir;
use ucms::plugins::PluginError;
use ucms_test_components::{HELLO, MISBEHAVE};

use crate::support::{TestSite, code, test_config};

#[tokio::test]
async fn an_import_the_manifest_does_not_grant_is_refused_by_name() {
    let t = TestSite::sqlite().await;
    let manifest = MISBEHAVE.manifest().replace(
        r#"http-client = { hosts = ["127.0.0.1", "localhost", "169.254.169.254", "[::1]"] }"#,
        "",
    );
    let err = t.install_with(MISBEHAVE, &manifest).await.unwrap_err();
    assert_eq!(err.code(), "undeclared_import", "{err}");
    let message = err.to_string();
    assert!(message.contains("ucms:host/http-client@0.2.1"), "{message}");
    assert!(message.contains("`http-client`"), "{message}");
    assert!(message.contains("hint:"), "{message}");
    assert!(
        t.site.plugins.get("misbehave").is_none(),
        "nothing was installed"
    );
    assert!(
        !t.site.data.root().join("plugins/misbehave").exists(),
        "no files were left behind"
    );
    t.close().await;
}

#[tokio::test]
async fn api_requirements_the_host_cannot_meet_are_refused() {
    let t = TestSite::sqlite().await;
    let manifest = HELLO
        .manifest()
        .replace(r#"api = "^0.2""#, r#"api = "^0.3""#);
    let err = t.install_with(HELLO, &manifest).await.unwrap_err();
    assert_eq!(err.code(), "api_mismatch");
    assert!(
        err.to_string()
            .contains("this host provides 0.1.0, 0.2.0, 0.2.1"),
        "{err}"
    );
    t.close().await;
}

#[tokio::test]
async fn invalid_manifests_point_at_the_key_and_line() {
    let t = TestSite::sqlite().await;
    let manifest = HELLO.manifest().replace(
        r#"permission = "counter.increment""#,
        r#"permission = "counter.inc""#,
    );
    let err = t.install_with(HELLO, &manifest).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("`routes[1].permission`"), "{message}");
    assert!(
        message.contains("'counter.inc' is not declared under [permissions]"),
        "{message}"
    );
    let line = manifest
        .lines()
        .position(|l| l.contains("counter.inc\""))
        .unwrap()
        + 1;
    assert!(message.contains(&format!("line {line}:")), "{message}");
    t.close().await;
}

#[tokio::test]
async fn a_limit_above_the_operator_ceiling_is_refused() {
    let t = TestSite::sqlite().await;
    let manifest = format!("{}\n[limits]\nmemory-mib = 1024\n", HELLO.manifest());
    let err = t.install_with(HELLO, &manifest).await.unwrap_err();
    assert_eq!(err.code(), "limit_above_ceiling");
    let message = err.to_string();
    assert!(message.contains("asks for memory-mib = 1024"), "{message}");
    assert!(
        message.contains("policy rule [policy.ceilings] memory-mib"),
        "{message}"
    );
    t.close().await;
}

#[tokio::test]
async fn installing_twice_is_refused() {
    let t = TestSite::sqlite().await;
    t.install(HELLO).await;
    let err = t.install_with(HELLO, &HELLO.manifest()).await.unwrap_err();
    assert!(matches!(err, PluginError::AlreadyInstalled { .. }), "{err}");
    t.close().await;
}

#[tokio::test]
async fn disable_enable_and_remove() {
    let t = TestSite::sqlite().await;
    t.install(HELLO).await;
    let admin = t.admin_token().await;
    let (status, body) = t
        .request(http::Method::POST, "/api/hello/counter", Some(&admin), None)
        .await;
    assert_eq!((status, body["value"].as_i64()), (StatusCode::OK, Some(1)));

    t.site
        .plugins
        .set_enabled("hello", false, None)
        .await
        .unwrap();
    let (status, body) = t.get("/api/hello/greet").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "plugin_disabled")
    );
    t.site
        .plugins
        .set_enabled("hello", true, None)
        .await
        .unwrap();
    assert_eq!(t.get("/api/hello/greet").await.0, StatusCode::OK);

    // Removing keeps data by default: a reinstall sees the counter where it was.
    t.site.plugins.remove("hello", false, None).await.unwrap();
    assert_eq!(t.get("/api/hello/greet").await.0, StatusCode::NOT_FOUND);
    t.install(HELLO).await;
    let (_, body) = t
        .request(http::Method::POST, "/api/hello/counter", Some(&admin), None)
        .await;
    assert_eq!(body["value"], 2);

    t.site.plugins.remove("hello", true, None).await.unwrap();
    t.install(HELLO).await;
    let (_, body) = t
        .request(http::Method::POST, "/api/hello/counter", Some(&admin), None)
        .await;
    assert_eq!(body["value"], 1, "--purge deleted the data");
    let err = t
        .site
        .plugins
        .remove("nope", false, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "plugin_not_found");
    t.close().await;
}

#[tokio::test]
async fn a_restart_reloads_plugins_from_the_compiled_cache() {
    let t = TestSite::sqlite().await;
    t.install(HELLO).await;
    t.site
        .plugins
        .set_enabled("hello", false, None)
        .await
        .unwrap();
    let cache = t.site.data.compiled_cache();
    let cached: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(
        cached.len(),
        1,
        "one precompiled component in {}",
        cache.display()
    );

    let reopened = ucms::Site::open_with_db(
        test_config(),
        DataDir::new(t.site.data.root()),
        t.site.db.clone(),
    )
    .await
    .unwrap();
    let slot = reopened.plugins.get("hello").unwrap();
    assert_eq!(
        slot.state.label(),
        "disabled",
        "the state survives a restart"
    );
    reopened
        .plugins
        .set_enabled("hello", true, None)
        .await
        .unwrap();
    assert!(reopened.plugins.get("hello").unwrap().runnable().is_some());
    t.close().await;
}

#[tokio::test]
async fn a_component_changed_on_disk_is_not_run() {
    let t = TestSite::sqlite().await;
    t.install(HELLO).await;
    let wasm = t.site.data.plugin_dir("hello", "0.1.0").join("plugin.wasm");
    let mut bytes = std::fs::read(&wasm).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&wasm, bytes).unwrap();

    let reopened = ucms::Site::open_with_db(
        test_config(),
        DataDir::new(t.site.data.root()),
        t.site.db.clone(),
    )
    .await
    .unwrap();
    let slot = reopened.plugins.get("hello").unwrap();
    match &slot.state {
        ucms::plugins::PluginState::Failed(reason) => {
            assert!(reason.contains("SHA-256"), "{reason}")
        }
        other => panic!("expected failed, got {other:?}"),
    }
    let router = reopened.router();
    let response = tower::ServiceExt::oneshot(
        router,
        http::Request::get("/api/hello/greet")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    t.close().await;
}

#[tokio::test]
async fn a_required_setting_must_be_set() {
    let t = TestSite::sqlite().await;
    let manifest = format!(
        "{}\n[settings.api-url]\ntype = \"string\"\nrequired = true\ndescription = \"Where to send things\"\n",
        HELLO.manifest()
    );
    let err = t.install_with(HELLO, &manifest).await.unwrap_err();
    assert_eq!(err.code(), "invalid_settings");
    assert!(
        err.to_string()
            .contains("UCMS_PLUGINS__HELLO__SETTINGS__API_URL"),
        "{err}"
    );
    t.close().await;
}
