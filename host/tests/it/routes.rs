//! Routing, authentication and the host API.

use http::{Method, StatusCode};
use serde_json::json;
use ucms_test_components::HELLO;

use crate::support::{TestSite, code};

#[tokio::test]
async fn hello_greets_anyone() {
    let t = TestSite::sqlite().await;
    t.install(HELLO).await;
    let (status, body) = t.get("/api/hello/greet?name=Ada").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "greeting": "Hello, Ada!" }));
    let (_, body) = t.get("/api/hello/greet?name=Ada%20Lovelace").await;
    assert_eq!(body["greeting"], "Hello, Ada Lovelace!");
    t.close().await;
}

#[tokio::test]
async fn the_counter_needs_a_token_with_its_permission() {
    let t = TestSite::sqlite().await;
    t.install(HELLO).await;

    let (status, body) = t
        .request(Method::POST, "/api/hello/counter", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "unauthenticated");

    let unrelated = t.token("ed@example.com", &["admin"], &["orders.*"]).await;
    let (status, body) = t
        .request(Method::POST, "/api/hello/counter", Some(&unrelated), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "forbidden");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("hello.counter.increment")
    );

    // A token within scope, but whose owner has no role granting the permission.
    let powerless = t.token("viewer@example.com", &[], &["hello.*"]).await;
    let (status, _) = t
        .request(Method::POST, "/api/hello/counter", Some(&powerless), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let token = t
        .token("ada@example.com", &["admin"], &["hello.counter.increment"])
        .await;
    for expected in 1..=3 {
        let (status, body) = t
            .request(Method::POST, "/api/hello/counter", Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["value"], expected);
    }

    let (status, body) = t
        .request(
            Method::POST,
            "/api/hello/counter",
            Some("ucms_0000000000000000_nope"),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    t.close().await;
}

#[tokio::test]
async fn expired_and_revoked_tokens_are_refused() {
    let t = TestSite::sqlite().await;
    t.install(HELLO).await;
    let identity = &t.site.services.identity;
    let user = identity
        .create_user(
            "ada@example.com",
            "a long enough password",
            &["admin".into()],
        )
        .await
        .unwrap();
    let short = identity
        .issue_token(
            &user,
            ucms::identity::TokenKind::Api,
            "short",
            &["*".into()],
            Some(std::time::Duration::from_millis(1)),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (status, body) = t
        .request(Method::POST, "/api/hello/counter", Some(&short.token), None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token_expired")
    );

    let revoked = identity
        .issue_token(
            &user,
            ucms::identity::TokenKind::Api,
            "r",
            &["*".into()],
            None,
        )
        .await
        .unwrap();
    assert!(identity.revoke_token(&revoked.id, None).await.unwrap());
    let (status, body) = t
        .request(
            Method::POST,
            "/api/hello/counter",
            Some(&revoked.token),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token_revoked")
    );

    // A forged secret for a real token id.
    let forged = format!("ucms_{}_{}", short.id, "A".repeat(43));
    let (status, body) = t
        .request(Method::POST, "/api/hello/counter", Some(&forged), None)
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
    t.close().await;
}

#[tokio::test]
async fn unknown_plugins_routes_and_methods_say_so() {
    let t = TestSite::sqlite().await;
    t.install(HELLO).await;
    let (status, body) = t.get("/api/nobody/here").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "plugin_not_found")
    );
    let (status, body) = t.get("/api/hello/nothing").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "route_not_found")
    );
    let (status, headers, _) = t.raw(Method::DELETE, "/api/hello/greet", None, None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET");
    let (status, body) = t.get("/nowhere").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = t.get("/api/ucms/nothing").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    t.close().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let t = TestSite::sqlite().await;
    t.install(HELLO).await;
    let (status, body) = t.get("/healthz").await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "status": "ok" })));
    let (status, body) = t.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["plugins"]["installed"], 1);

    t.get("/api/hello/greet").await;
    let (status, headers, metrics) = t.raw(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains(r#"ucms_plugin_info{plugin="hello",version="0.1.0",state="enabled"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ucms_plugin_invocations_total{plugin="hello",kind="http"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"ucms_plugin_invocation_duration_seconds_count{plugin="hello",kind="http"} 1"#
    ));
    assert!(metrics.contains(r#"ucms_plugin_instances_in_flight{plugin="hello"} 0"#));
    t.close().await;
}

#[tokio::test]
async fn oversized_request_bodies_are_refused_before_the_plugin_runs() {
    let t = TestSite::sqlite().await;
    t.install(ucms_test_components::MISBEHAVE).await;
    let small = vec![b'a'; 1024];
    let (status, _, echoed) = t
        .raw(
            Method::POST,
            "/api/misbehave/echo",
            None,
            Some(small.clone()),
        )
        .await;
    assert_eq!((status, echoed), (StatusCode::OK, small));
    let big = vec![b'a'; 2 << 20];
    let (status, _, body) = t
        .raw(Method::POST, "/api/misbehave/echo", None, Some(big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code(&body), "request_body_too_large");
    t.close().await;
}

#[tokio::test]
async fn the_host_api_needs_permissions_and_audits() {
    let t = TestSite::sqlite().await;
    t.install(HELLO).await;
    let (status, _) = t.get("/api/ucms/plugins").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let admin = t.admin_token().await;
    let (status, body) = t
        .request(Method::GET, "/api/ucms/plugins", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let hello = &body["plugins"][0];
    assert_eq!(hello["id"], "hello");
    assert_eq!(hello["version"], "0.1.0");
    assert_eq!(hello["state"], "enabled");
    assert_eq!(hello["routes"][1]["path"], "/api/hello/counter");
    assert_eq!(hello["routes"][1]["access"], "hello.counter.increment");
    assert!(hello["capabilities"][0].as_str().unwrap().starts_with("kv"));

    let (status, body) = t
        .request(Method::GET, "/api/ucms/audit", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"plugin.install"), "{actions:?}");
    assert!(actions.contains(&"token.create"), "{actions:?}");
    t.close().await;
}

#[tokio::test]
async fn sign_in_issues_a_session_and_throttles_guessing() {
    let t = TestSite::sqlite().await;
    t.install(HELLO).await;
    t.site
        .services
        .identity
        .create_user(
            "Ada@Example.com",
            "correct horse battery",
            &["admin".into()],
        )
        .await
        .unwrap();
    let login = |password: &str| json!({ "email": "ada@example.com", "password": password });

    let (status, body) = t
        .request(
            Method::POST,
            "/api/ucms/auth/login",
            None,
            Some(login("correct horse battery")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = body["token"].as_str().unwrap().to_string();
    let (status, me) = t
        .request(Method::GET, "/api/ucms/auth/me", Some(&session), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["email"], "ada@example.com");
    let (status, _) = t
        .request(Method::POST, "/api/hello/counter", Some(&session), None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an admin's session holds every permission"
    );

    let (status, body) = t
        .request(
            Method::POST,
            "/api/ucms/auth/login",
            None,
            Some(json!({ "email": "ada@example.com" })),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_json")
    );

    for _ in 0..10 {
        let (status, body) = t
            .request(
                Method::POST,
                "/api/ucms/auth/login",
                None,
                Some(login("wrong")),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_credentials")
        );
    }
    let (status, headers, _) = t
        .raw(
            Method::POST,
            "/api/ucms/auth/login",
            None,
            Some(login("correct horse battery").to_string().into_bytes()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "locked after repeated failures, even with the right password"
    );
    assert!(headers.contains_key("retry-after"));

    let admin = t.admin_token().await;
    let (_, body) = t
        .request(Method::GET, "/api/ucms/audit?limit=50", Some(&admin), None)
        .await;
    let actions: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"auth.sign-in"));
    assert!(actions.contains(&"auth.sign-in.failed"));
    assert!(actions.contains(&"auth.sign-in.throttled"));
    t.close().await;
}

#[tokio::test]
async fn serves_over_a_real_socket() {
    let t = TestSite::sqlite().await;
    t.install(HELLO).await;
    let addr = t.serve().await;
    let response = reqwest::get(format!("http://{addr}/api/hello/greet?name=Ada"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"greeting":"Hello, Ada!"}"#
    );
    t.close().await;
}
