//! The operator's policy: refusals that name their rule, reloading while the site runs, and the
//! limits it sets (CPU time, events per minute).

use http::{Method, StatusCode};
use ucms::config::Config;
use ucms::plugins::PluginState;
use ucms::policy::{PolicyRules, PolicySource};
use ucms_test_components::{HELLO, MISBEHAVE};

use crate::support::{BACKENDS, Backend, TestSite, code, test_config};

async fn site(config: Config) -> TestSite {
    TestSite::open(Backend::Sqlite, config).await.unwrap()
}

fn with_rules(rules: &str) -> Config {
    let mut config = test_config();
    config.policy = toml::from_str(rules).expect("test policy parses");
    config
}

/// Installs `guest` and expects the refusal `code` naming `rule`.
async fn refused(
    t: &TestSite,
    guest: ucms_test_components::Guest,
    code: &str,
    rule: &str,
) -> String {
    let err = t
        .install_with(guest, &guest.manifest())
        .await
        .expect_err("the policy refuses it");
    let message = err.to_string();
    assert_eq!(err.code(), code, "{message}");
    assert!(
        message.contains(rule),
        "the message names the rule {rule}: {message}"
    );
    message
}

#[tokio::test]
async fn an_unknown_publisher_is_refused_naming_the_rule() {
    let t = site(with_rules("[publishers]\nallow = [\"acme\"]\n")).await;
    let message = refused(&t, HELLO, "policy_refused", "[policy.publishers] allow").await;
    assert!(
        message.contains("not among the publishers the policy allows"),
        "{message}"
    );
    assert!(
        message.contains("unverified"),
        "an unsigned plugin's publisher is only a claim: {message}"
    );
    assert!(
        t.site.plugins.get("hello").is_none(),
        "nothing was installed"
    );
    t.close().await;

    let t = site(with_rules("[publishers]\ndeny = [\"ucms-tests\"]\n")).await;
    refused(&t, MISBEHAVE, "policy_refused", "[policy.publishers] deny").await;
    t.close().await;
}

#[tokio::test]
async fn a_forbidden_capability_is_refused_naming_the_rule() {
    let t = site(with_rules("[capabilities]\ndeny = [\"http-client\"]\n")).await;
    let message = refused(
        &t,
        MISBEHAVE,
        "policy_refused",
        "[policy.capabilities] deny",
    )
    .await;
    assert!(message.contains("'http-client' is forbidden"), "{message}");
    // A plugin without it installs.
    t.install(HELLO).await;
    t.close().await;

    let t = site(with_rules(
        "[capabilities]\nallow = [\"kv\", \"log\", \"config\", \"auth\"]\n",
    ))
    .await;
    let message = refused(
        &t,
        MISBEHAVE,
        "policy_refused",
        "[policy.capabilities] allow",
    )
    .await;
    assert!(message.contains("'events' is not among"), "{message}");
    t.close().await;
}

#[tokio::test]
async fn an_outbound_host_outside_the_allow_list_is_refused_naming_the_rule() {
    let t = site(with_rules(
        "[capabilities.http-client]\nhosts = [\"*.example.com\", \"127.0.0.1\"]\n",
    ))
    .await;
    let message = refused(
        &t,
        MISBEHAVE,
        "policy_refused",
        "[policy.capabilities.http-client] hosts",
    )
    .await;
    assert!(
        message.contains("outside the policy's allow-list"),
        "{message}"
    );
    assert!(
        message.contains("localhost"),
        "the first host outside it is named: {message}"
    );
    t.close().await;

    // The plugin's override widens the list for it alone.
    let t = site(with_rules(
        "[capabilities.http-client]\nhosts = [\"127.0.0.1\", \"localhost\"]\n\
         [overrides.misbehave]\nhosts = [\"169.254.169.254\", \"[::1]\", \"*.ucms.test\"]\n",
    ))
    .await;
    t.install(MISBEHAVE).await;
    t.close().await;
}

#[tokio::test]
async fn a_limit_above_the_ceiling_is_refused_naming_the_rule() {
    let t = site(with_rules("[ceilings]\ntimeout-ms = 500\n")).await;
    let message = refused(
        &t,
        MISBEHAVE,
        "limit_above_ceiling",
        "[policy.ceilings] timeout-ms",
    )
    .await;
    assert!(
        message.contains("timeout-ms = 1000, over the ceiling of 500"),
        "{message}"
    );
    t.close().await;

    // Quotas of capabilities too: misbehave asks for 5 documents.
    let t = site(with_rules("[ceilings]\nmax-documents = 3\n")).await;
    refused(
        &t,
        MISBEHAVE,
        "limit_above_ceiling",
        "[policy.ceilings] max-documents",
    )
    .await;
    t.close().await;

    // An override raises it for one plugin.
    let t = site(with_rules(
        "[ceilings]\ntimeout-ms = 500\n[overrides.misbehave.ceilings]\ntimeout-ms = 2000\n",
    ))
    .await;
    let info = t.install(MISBEHAVE).await;
    assert_eq!(info.limits.unwrap().timeout_ms, 1000);
    t.close().await;
}

#[tokio::test]
async fn unsigned_plugins_are_refused_when_the_policy_says_so() {
    let t = site(with_rules("[packages]\nallow-unsigned = false\n")).await;
    let message = refused(
        &t,
        HELLO,
        "policy_refused",
        "[policy.packages] allow-unsigned",
    )
    .await;
    assert!(message.contains("runs only signed plugins"), "{message}");
    t.close().await;
}

#[tokio::test]
async fn an_invalid_policy_is_refused_with_the_key() {
    let mut config = test_config();
    config.policy = toml::from_str("[capabilities]\ndeny = [\"telepathy\"]\n").unwrap();
    let err = ucms::Site::open(
        config,
        ucms::config::DataDir::new(tempfile::tempdir().unwrap().path()),
    )
    .await
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("capabilities.deny"), "{message}");
    assert!(
        message.contains("'telepathy' is not a capability"),
        "{message}"
    );
}

/// Writes a policy file the way an operator should: whole, then renamed into place.
fn write_policy(file: &std::path::Path, rules: &str) {
    let temp = file.with_extension("toml.new");
    std::fs::write(&temp, rules).unwrap();
    std::fs::rename(&temp, file).unwrap();
}

/// A policy in its own file, edited while the site runs: on every backend, plugins the new rules
/// refuse stop at once (503 naming the rule), and start again when the rules allow them.
#[tokio::test]
async fn a_reloaded_policy_stops_and_restarts_running_plugins() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.toml");
        write_policy(&file, "[capabilities]\ndeny = []\n");
        let mut config = test_config();
        config.policy = PolicyRules {
            file: Some(file.clone()),
            ..Default::default()
        };
        let Some(t) = TestSite::open(backend, config).await else {
            continue;
        };
        assert_eq!(
            t.site.plugins.policy().source(),
            &PolicySource::File(file.clone())
        );
        t.install(HELLO).await;
        t.install(MISBEHAVE).await;
        let (status, _) = t.get("/api/misbehave/ok").await;
        assert_eq!(status, StatusCode::OK);
        let admin = t.admin_token().await;
        let (_, before) = t
            .request(Method::GET, "/api/ucms/policy", Some(&admin), None)
            .await;

        // The operator forbids outbound HTTP; the background watcher notices the file.
        write_policy(&file, "[capabilities]\ndeny = [\"http-client\"]\n");
        let body = crate::support::eventually(10, || {
            let t = &t;
            async move {
                let (status, body) = t.get("/api/misbehave/ok").await;
                (status == StatusCode::SERVICE_UNAVAILABLE).then_some(body)
            }
        })
        .await;
        assert_eq!(code(&body), "plugin_refused_by_policy", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("[policy.capabilities] deny"),
            "{body}"
        );
        let (status, _) = t.get("/api/hello/greet?name=Ada").await;
        assert_eq!(status, StatusCode::OK, "other plugins keep serving");
        assert!(matches!(
            t.site.plugins.get("misbehave").unwrap().state,
            PluginState::Refused(_)
        ));
        let (_, after) = t
            .request(Method::GET, "/api/ucms/policy", Some(&admin), None)
            .await;
        assert_ne!(before["digest"], after["digest"]);
        assert_eq!(after["rules"]["capabilities"]["deny"][0], "http-client");

        // Invalid rules are refused, and the policy in force stays.
        write_policy(&file, "[capabilities]\ndeny = [\"telepathy\"]\n");
        let (status, body) = t
            .request(Method::POST, "/api/ucms/policy/reload", Some(&admin), None)
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy"),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("telepathy"),
            "{body}"
        );
        let (_, still) = t
            .request(Method::GET, "/api/ucms/policy", Some(&admin), None)
            .await;
        assert_eq!(still["digest"], after["digest"]);

        // Allowed again: it runs again.
        write_policy(&file, "[capabilities]\ndeny = []\n");
        let (status, body) = t
            .request(Method::POST, "/api/ucms/policy/reload", Some(&admin), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = t.get("/api/misbehave/ok").await;
        assert_eq!(status, StatusCode::OK);

        // Reloading needs its permission, and both reloads were audited.
        let viewer = t.token("viewer@example.com", &["viewer"], &["*"]).await;
        let (status, _) = t
            .request(Method::POST, "/api/ucms/policy/reload", Some(&viewer), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (_, audit) = t
            .request(
                Method::GET,
                "/api/ucms/audit?action=policy.reload",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(audit["entries"].as_array().unwrap().len(), 2, "{audit}");
        t.close().await;
    }
}

#[tokio::test]
async fn a_guest_that_burns_cpu_is_stopped_by_its_cpu_budget() {
    // A wall-clock deadline of 3 s, but 150 ms of CPU.
    let t = site(with_rules("[defaults]\ncpu-ms = 150\n")).await;
    let manifest = MISBEHAVE
        .manifest()
        .replace("timeout-ms = 1000", "timeout-ms = 3000");
    t.install_with(MISBEHAVE, &manifest).await.unwrap();
    let started = std::time::Instant::now();
    let (status, body) = t.get("/api/misbehave/spin").await;
    let took = started.elapsed();
    assert_eq!(
        (status, code(&body)),
        (StatusCode::GATEWAY_TIMEOUT, "plugin_cpu_limit"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.cpu-ms"),
        "{body}"
    );
    assert!(
        took < std::time::Duration::from_secs(2),
        "stopped by CPU, not the deadline: {took:?}"
    );
    let metrics = t.site.services.metrics.render();
    assert!(
        metrics.contains(r#"ucms_plugin_traps_total{plugin="misbehave",cause="cpu"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ucms_plugin_cpu_seconds_total{plugin="misbehave"}"#),
        "{metrics}"
    );
    t.close().await;
}

#[tokio::test]
async fn events_per_minute_are_bounded() {
    let t = site(with_rules("[defaults]\nevents-per-minute = 5\n")).await;
    t.install(MISBEHAVE).await;
    let (status, body) = t
        .request(Method::POST, "/api/misbehave/publish?count=5", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "five fit: {body}");
    let (status, body) = t
        .request(Method::POST, "/api/misbehave/publish?count=1", None, None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.events-per-minute"),
        "{body}"
    );
    let metrics = t.site.services.metrics.render();
    assert!(
        metrics.contains(
            r#"ucms_plugin_limit_breaches_total{plugin="misbehave",limit="events-per-minute"} 1"#
        ),
        "{metrics}"
    );
    t.close().await;
}
