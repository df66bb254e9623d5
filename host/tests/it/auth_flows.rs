//! Sign-in flows through the real router: JWT access tokens with rotating refresh tokens, TOTP
//! enrolment and MFA sign-in, and OpenID Connect against the loopback provider of
//! `oidc_provider.rs`. Storage on SQLite and PostgreSQL.

use std::sync::atomic::Ordering;

use axum::body::Body;
use base64::Engine as _;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use ucms::config::{Config, OidcProviderConfig};
use ucms::identity::User;
use ucms::identity::totp::code_at;

use crate::oidc_provider::{CLIENT_ID, CLIENT_SECRET, Provider, TestUser};
use crate::support::{BACKENDS, Backend, TestSite, code, test_config};

const PASSWORD: &str = "a long enough password";

async fn user(site: &TestSite, email: &str) -> User {
    site.site
        .services
        .identity
        .create_user(email, PASSWORD, &["admin".to_string()])
        .await
        .unwrap()
}

async fn audit_actions(site: &TestSite) -> Vec<(String, Value)> {
    site.site
        .services
        .identity
        .audit_log(1000, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.detail.unwrap_or(Value::Null)))
        .collect()
}

async fn has_audit(site: &TestSite, action: &str) -> bool {
    audit_actions(site).await.iter().any(|(a, _)| a == action)
}

/// POSTs an `application/x-www-form-urlencoded` body.
async fn post_form(site: &TestSite, uri: &str, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        form.append_pair(k, v);
    }
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.finish()))
        .unwrap();
    let (status, _, bytes) = site.send(request).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn password_grant(
    site: &TestSite,
    email: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut pairs = vec![
        ("grant_type", "password"),
        ("username", email),
        ("password", PASSWORD),
    ];
    pairs.extend_from_slice(extra);
    post_form(site, "/api/ucms/auth/token", &pairs).await
}

async fn refresh(site: &TestSite, token: &str) -> (StatusCode, Value) {
    site.request(
        Method::POST,
        "/api/ucms/auth/token",
        None,
        Some(json!({ "grant_type": "refresh_token", "refresh_token": token })),
    )
    .await
}

fn jwt_header(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn jwt_refresh_rotation_reuse_and_revocation() {
    for backend in BACKENDS {
        let Some(site) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        user(&site, "api@example.com").await;

        let (status, body) = password_grant(&site, "api@example.com", &[]).await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        assert_eq!(body["scope"], "*");
        let access = body["access_token"].as_str().unwrap().to_string();
        let first_refresh = body["refresh_token"].as_str().unwrap().to_string();
        assert_eq!(jwt_header(&access)["alg"], "EdDSA");

        // The access token works, and its key is published.
        let (status, me) = site
            .request(Method::GET, "/api/ucms/auth/me", Some(&access), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{me}");
        assert_eq!(me["user"]["email"], "api@example.com");
        let (status, jwks) = site.get("/api/ucms/auth/jwks.json").await;
        assert_eq!(status, StatusCode::OK);
        let kid = jwt_header(&access)["kid"].as_str().unwrap().to_string();
        let key = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .expect("the signing key is in the JWKS");
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["crv"], "Ed25519");

        // Rotation: a new refresh token each time.
        let (status, second) = refresh(&site, &first_refresh).await;
        assert_eq!(status, StatusCode::OK, "{second}");
        let second_refresh = second["refresh_token"].as_str().unwrap().to_string();
        let second_access = second["access_token"].as_str().unwrap().to_string();
        assert_ne!(second_refresh, first_refresh);
        let (status, _) = site
            .request(Method::GET, "/api/ucms/auth/me", Some(&second_access), None)
            .await;
        assert_eq!(status, StatusCode::OK);

        // Reuse of the first refresh token: theft detected, the whole family revoked.
        let (status, body) = refresh(&site, &first_refresh).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code(&body), "invalid_grant");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("already used")
        );
        let (status, body) = refresh(&site, &second_refresh).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(code(&body), "invalid_grant");
        let (status, body) = site
            .request(Method::GET, "/api/ucms/auth/me", Some(&second_access), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(code(&body), "token_revoked");
        assert!(has_audit(&site, "auth.refresh.reuse").await);
        assert!(
            audit_actions(&site)
                .await
                .iter()
                .any(|(a, d)| a == "auth.token.rejected" && d["reason"] == "revoked")
        );

        // Revocation (RFC 7009): the family's tokens stop working; unknown tokens are fine.
        let (_, body) =
            password_grant(&site, "api@example.com", &[("scope", "ucms.plugins.read")]).await;
        assert_eq!(body["scope"], "ucms.plugins.read");
        let access = body["access_token"].as_str().unwrap().to_string();
        let refresh_token = body["refresh_token"].as_str().unwrap().to_string();
        let (status, plugins) = site
            .request(Method::GET, "/api/ucms/plugins", Some(&access), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{plugins}");
        let (status, body) = site
            .request(Method::GET, "/api/ucms/audit", Some(&access), None)
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "outside the token's scope: {body}"
        );
        let (status, _) =
            post_form(&site, "/api/ucms/auth/revoke", &[("token", &refresh_token)]).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = refresh(&site, &refresh_token).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
        let (status, body) = site
            .request(Method::GET, "/api/ucms/auth/me", Some(&access), None)
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "token_revoked")
        );
        assert!(has_audit(&site, "auth.refresh.revoke").await);
        let (status, _) = site
            .request(
                Method::POST,
                "/api/ucms/auth/revoke",
                None,
                Some(json!({ "token": "ucmsr_not-a-token" })),
            )
            .await;
        assert_eq!(status, StatusCode::OK);

        // Forged tokens: `alg: none`, and HS256 "signed" with the public key (alg confusion).
        let claims = access.split('.').nth(1).unwrap();
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let none = format!("{}.{claims}.", b64(json!({ "alg": "none", "kid": kid })));
        let hs = format!(
            "{}.{claims}.AAAA",
            b64(json!({ "alg": "HS256", "kid": kid, "typ": "JWT" }))
        );
        for forged in [none, hs] {
            let (status, body) = site
                .request(Method::GET, "/api/ucms/auth/me", Some(&forged), None)
                .await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::UNAUTHORIZED, "invalid_token"),
                "{forged}"
            );
        }

        // Sign out everywhere revokes every family.
        let (_, body) = password_grant(&site, "api@example.com", &[]).await;
        let access = body["access_token"].as_str().unwrap().to_string();
        let user = site
            .site
            .services
            .identity
            .find_user("api@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            site.site
                .services
                .identity
                .revoke_all_families(&user.id)
                .await
                .unwrap(),
            1
        );
        let (status, _) = site
            .request(Method::GET, "/api/ucms/auth/me", Some(&access), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // A wrong password is refused and audited.
        let (status, body) = post_form(
            &site,
            "/api/ucms/auth/token",
            &[
                ("grant_type", "password"),
                ("username", "api@example.com"),
                ("password", "wrong password!"),
            ],
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_credentials")
        );
        let (status, body) = post_form(
            &site,
            "/api/ucms/auth/token",
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "unsupported_grant_type")
        );
        site.close().await;
    }
}

#[tokio::test]
async fn expired_access_and_refresh_tokens_are_refused() {
    for backend in BACKENDS {
        let mut config = test_config();
        config.auth.jwt.access_ttl_secs = 1;
        config.auth.jwt.leeway_secs = 0;
        config.auth.jwt.refresh_idle_secs = 1;
        let Some(site) = TestSite::open(backend, config).await else {
            continue;
        };
        user(&site, "short@example.com").await;
        let (status, body) = password_grant(&site, "short@example.com", &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["expires_in"], 1);
        let access = body["access_token"].as_str().unwrap().to_string();
        let refresh_token = body["refresh_token"].as_str().unwrap().to_string();
        tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
        let (status, body) = site
            .request(Method::GET, "/api/ucms/auth/me", Some(&access), None)
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "token_expired"),
            "{body}"
        );
        let (status, body) = refresh(&site, &refresh_token).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("expired")
        );
        assert!(
            audit_actions(&site)
                .await
                .iter()
                .any(|(a, d)| a == "auth.token.rejected" && d["reason"] == "expired")
        );
        site.close().await;
    }
}

#[tokio::test]
async fn signing_keys_rotate_and_are_shared_by_nodes() {
    for backend in BACKENDS {
        let Some(site) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        let alice = user(&site, "keys@example.com").await;
        let (_, body) = password_grant(&site, "keys@example.com", &[]).await;
        let old_token = body["access_token"].as_str().unwrap().to_string();
        let old_kid = jwt_header(&old_token)["kid"].as_str().unwrap().to_string();

        // The key is older than rotate-days (30): the next node to sign makes a new one.
        let month_ago = ucms::db::now_ms() - 31 * 86_400_000;
        ucms::db::on_db!(&site.site.db, write, |pool| {
            sqlx::query("UPDATE jwt_keys SET created_at = $1")
                .bind(month_ago)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .unwrap();
        let node2 = ucms::identity::Identity::new(site.site.db.clone())
            .with_auth_config(site.site.config.auth.clone());
        let tokens = node2
            .open_refresh_family(&alice, &["*".to_string()])
            .await
            .unwrap();
        let new_kid = jwt_header(&tokens.access_token)["kid"]
            .as_str()
            .unwrap()
            .to_string();
        assert_ne!(new_kid, old_kid, "{backend:?}: rotated");

        // The retired key still verifies its tokens, on both nodes; both keys are published.
        node2
            .authenticate(&old_token)
            .await
            .expect("old token on node 2");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let (status, body) = site
            .request(
                Method::GET,
                "/api/ucms/auth/me",
                Some(&tokens.access_token),
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "node 1 learns node 2's new key: {body}"
        );
        let (_, jwks) = site.get("/api/ucms/auth/jwks.json").await;
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert!(
            kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
            "{kids:?}"
        );
        assert!(has_audit(&site, "auth.jwt.key-created").await);
        site.close().await;
    }
}

fn now_step() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// The right password alone doesn't clear an MFA account's failure count: otherwise someone who
/// knows the password could keep guessing codes, a fresh challenge after every fifth wrong one.
#[tokio::test]
async fn a_correct_password_without_the_second_factor_keeps_the_failure_count() {
    for backend in BACKENDS {
        let Some(site) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        let identity = &site.site.services.identity;
        let carol = user(&site, "mfa-carol@example.com").await;
        let secret = identity.totp_enrol(&carol).await.unwrap().secret;
        identity
            .totp_confirm(&carol, &code_at(&secret, now_step()).unwrap())
            .await
            .unwrap();
        let login = |password: &'static str| {
            site.request(
                Method::POST,
                "/api/ucms/auth/login",
                None,
                Some(json!({ "email": "mfa-carol@example.com", "password": password })),
            )
        };
        for _ in 0..9 {
            let (status, body) = login("not the password").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        }
        let (status, body) = login(PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["mfa_required"], true, "{body}");
        let (status, body) = login("not the password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        // Ten failures in the window: locked, even for the right password.
        let (status, body) = login(PASSWORD).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::TOO_MANY_REQUESTS, "account_locked"),
            "{body}"
        );
        site.close().await;
    }
}

#[tokio::test]
async fn totp_enrolment_sign_in_reuse_and_recovery_codes() {
    for backend in BACKENDS {
        let Some(site) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        let identity = &site.site.services.identity;
        let alice = user(&site, "mfa@example.com").await;
        let session = identity
            .open_session(&alice, "password")
            .await
            .unwrap()
            .token;

        // Enrol and confirm with a code computed from the secret.
        let (status, enrol) = site
            .request(
                Method::POST,
                "/api/ucms/auth/mfa/totp/enrol",
                Some(&session),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{enrol}");
        let secret = enrol["secret"].as_str().unwrap().to_string();
        assert!(
            enrol["otpauth_uri"]
                .as_str()
                .unwrap()
                .starts_with("otpauth://totp/")
        );
        let (status, body) = site
            .request(
                Method::POST,
                "/api/ucms/auth/mfa/totp/confirm",
                Some(&session),
                Some(json!({ "code": "000000" })),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_mfa_code")
        );
        let step = now_step();
        let first = code_at(&secret, step).unwrap();
        let (status, confirmed) = site
            .request(
                Method::POST,
                "/api/ucms/auth/mfa/totp/confirm",
                Some(&session),
                Some(json!({ "code": first })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{confirmed}");
        let recovery: Vec<String> = confirmed["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(recovery.len(), 10);
        assert!(has_audit(&site, "mfa.enrol").await);

        // The password grant now needs the code; a used code is refused, the next step's works.
        let (status, body) = password_grant(&site, "mfa@example.com", &[]).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "mfa_required")
        );
        let (status, body) = password_grant(&site, "mfa@example.com", &[("totp", &first)]).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_mfa_code"),
            "reused code"
        );
        let next = code_at(&secret, step + 1).unwrap();
        let (status, body) = password_grant(&site, "mfa@example.com", &[("totp", &next)]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(has_audit(&site, "auth.mfa.failed").await);

        // The password login answers with a challenge instead of a session.
        let (status, login) = site
            .request(
                Method::POST,
                "/api/ucms/auth/login",
                None,
                Some(json!({ "email": "mfa@example.com", "password": PASSWORD })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{login}");
        assert_eq!(login["mfa_required"], true, "{login}");
        assert!(
            login.get("token").is_none(),
            "no session before the second factor"
        );
        let challenge = login["mfa_token"].as_str().unwrap().to_string();

        // A wrong code counts; a recovery code signs in once.
        let (status, body) = site
            .request(
                Method::POST,
                "/api/ucms/auth/mfa/verify",
                None,
                Some(json!({ "mfa_token": challenge, "code": "123456" })),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_mfa_code")
        );
        let (status, signed_in) = site
            .request(
                Method::POST,
                "/api/ucms/auth/mfa/verify",
                None,
                Some(json!({ "mfa_token": challenge, "recovery_code": recovery[0] })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{signed_in}");
        assert_eq!(signed_in["method"], "recovery-code");
        let token = signed_in["token"].as_str().unwrap();
        let (status, _) = site
            .request(Method::GET, "/api/ucms/auth/me", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(has_audit(&site, "auth.recovery-code.used").await);
        // The challenge is spent, and so is the recovery code.
        let (status, body) = site
            .request(
                Method::POST,
                "/api/ucms/auth/mfa/verify",
                None,
                Some(json!({ "mfa_token": challenge, "recovery_code": recovery[1] })),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_mfa_token")
        );
        let challenge = identity.open_mfa_challenge(&alice).await.unwrap();
        let (status, body) = site
            .request(
                Method::POST,
                "/api/ucms/auth/mfa/verify",
                None,
                Some(json!({ "mfa_token": challenge, "recovery_code": recovery[0] })),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_mfa_code"),
            "used recovery code"
        );
        // A TOTP code answers a challenge (method totp), once. A second account, so its steps are
        // its own.
        let bob = user(&site, "mfa-bob@example.com").await;
        let bob_secret = identity.totp_enrol(&bob).await.unwrap().secret;
        let bob_step = now_step();
        identity
            .totp_confirm(&bob, &code_at(&bob_secret, bob_step).unwrap())
            .await
            .unwrap();
        let bob_code = code_at(&bob_secret, bob_step + 1).unwrap();
        for expected in [StatusCode::OK, StatusCode::UNAUTHORIZED] {
            let challenge = identity.open_mfa_challenge(&bob).await.unwrap();
            let (status, body) = site
                .request(
                    Method::POST,
                    "/api/ucms/auth/mfa/verify",
                    None,
                    Some(json!({ "mfa_token": challenge, "code": bob_code })),
                )
                .await;
            assert_eq!(status, expected, "{body}");
            if status == StatusCode::OK {
                assert_eq!(body["method"], "totp");
                assert_eq!(body["user"]["email"], "mfa-bob@example.com");
            } else {
                assert_eq!(code(&body), "invalid_mfa_code", "the code was used");
            }
        }
        let signed_in_with_totp = audit_actions(&site)
            .await
            .iter()
            .any(|(a, d)| a == "auth.sign-in" && d["method"] == "totp");
        assert!(
            signed_in_with_totp,
            "TOTP sign-ins are audited with method totp"
        );

        // Five wrong answers use up a challenge.
        let challenge = identity.open_mfa_challenge(&alice).await.unwrap();
        for _ in 0..5 {
            let (status, _) = site
                .request(
                    Method::POST,
                    "/api/ucms/auth/mfa/verify",
                    None,
                    Some(json!({ "mfa_token": challenge, "code": "999999" })),
                )
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let (status, body) = site
            .request(
                Method::POST,
                "/api/ucms/auth/mfa/verify",
                None,
                Some(json!({ "mfa_token": challenge, "recovery_code": recovery[2] })),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "invalid_mfa_token")
        );

        // Disabling needs a factor.
        let (status, body) = site
            .request(
                Method::DELETE,
                "/api/ucms/auth/mfa/totp",
                Some(&session),
                Some(json!({ "recovery_code": recovery[3] })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(has_audit(&site, "mfa.disable").await);
        assert!(!identity.totp_enabled(&alice.id).await.unwrap());
        site.close().await;
    }
}

struct OidcSite {
    site: TestSite,
    provider: Provider,
}

async fn oidc_site(
    backend: Backend,
    provider_user: TestUser,
    allow_signup: bool,
) -> Option<OidcSite> {
    let provider = Provider::start(provider_user).await;
    let mut config: Config = test_config();
    config.auth.oidc.insert(
        "test".into(),
        OidcProviderConfig {
            issuer: provider.issuer(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            allow_signup,
            default_roles: vec!["viewer".into()],
            ..OidcProviderConfig::default()
        },
    );
    let site = TestSite::open(backend, config).await?;
    Some(OidcSite { site, provider })
}

async fn get_with_host(site: &TestSite, uri: &str) -> (StatusCode, http::HeaderMap, Value) {
    let request = Request::builder()
        .uri(uri)
        .header("host", "ucms.test")
        .body(Body::empty())
        .unwrap();
    let (status, headers, bytes) = site.send(request).await;
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Starts a sign-in and follows the redirect through the provider; returns the callback path.
async fn through_provider(site: &TestSite, return_to: &str) -> String {
    let (status, headers, body) = get_with_host(
        site,
        &format!("/api/ucms/auth/oidc/test/start?return_to={return_to}"),
    )
    .await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    let authorize = headers["location"].to_str().unwrap().to_string();
    let url = url::Url::parse(&authorize).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["client_id"], CLIENT_ID);
    assert_eq!(
        query["redirect_uri"],
        "http://ucms.test/api/ucms/auth/oidc/test/callback"
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(authorize).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let back = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    format!("{}?{}", back.path(), back.query().unwrap())
}

#[tokio::test]
async fn oidc_sign_in_against_the_loopback_provider() {
    for backend in BACKENDS {
        let provider_user = TestUser {
            sub: "alice-at-provider".into(),
            email: "Alice@Example.com".into(),
            email_verified: true,
        };
        let Some(OidcSite { site, provider }) = oidc_site(backend, provider_user, false).await
        else {
            continue;
        };
        let alice = user(&site, "alice@example.com").await;

        // The whole flow: start → provider → callback → a session and a redirect to return_to.
        let callback = through_provider(&site, "/admin/content").await;
        let (status, headers, body) = get_with_host(&site, &callback).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{backend:?}: {body}");
        assert_eq!(headers["location"], "/admin/content");
        let cookie = headers["set-cookie"].to_str().unwrap();
        assert!(
            cookie.starts_with("ucms_session=") && cookie.contains("HttpOnly"),
            "{cookie}"
        );
        assert_eq!(body["user"]["id"], alice.id.as_str());
        let token = body["token"].as_str().unwrap();
        let (status, me) = site
            .request(Method::GET, "/api/ucms/auth/me", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{me}");
        let audit = audit_actions(&site).await;
        assert!(
            audit
                .iter()
                .any(|(a, d)| a == "auth.sign-in" && d["method"] == "oidc:test")
        );
        assert!(audit.iter().any(|(a, _)| a == "auth.oidc.linked"));

        // The same callback again: the state is spent.
        let (status, _, body) = get_with_host(&site, &callback).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "oidc_invalid_state")
        );
        assert!(has_audit(&site, "auth.oidc.failed").await);

        // The linked identity signs in again even when the provider's email changes.
        provider.state.user.lock().unwrap().email = "alice.new@example.com".into();
        let callback = through_provider(&site, "/admin/").await;
        let (status, _, body) = get_with_host(&site, &callback).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        assert_eq!(body["user"]["id"], alice.id.as_str());

        // An ID token signed with EdDSA is verified as well as RS256.
        provider.state.sign_with_eddsa.store(true, Ordering::SeqCst);
        let callback = through_provider(&site, "/admin/").await;
        let (status, _, body) = get_with_host(&site, &callback).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "EdDSA ID token: {body}");
        assert_eq!(body["user"]["id"], alice.id.as_str());
        provider
            .state
            .sign_with_eddsa
            .store(false, Ordering::SeqCst);

        // PKCE: the provider refuses a verifier that doesn't match the challenge it recorded.
        provider.state.swap_challenge.store(true, Ordering::SeqCst);
        let callback = through_provider(&site, "/admin/").await;
        let (status, _, body) = get_with_host(&site, &callback).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_GATEWAY, "oidc_token_exchange_failed"),
            "{body}"
        );
        assert!(
            provider
                .state
                .refusals
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.contains("code_verifier"))
        );
        provider.state.swap_challenge.store(false, Ordering::SeqCst);

        // A tampered ID token is refused.
        provider.state.tamper_id_token.store(true, Ordering::SeqCst);
        let callback = through_provider(&site, "/admin/").await;
        let (status, _, body) = get_with_host(&site, &callback).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "oidc_invalid_id_token"),
            "{body}"
        );
        provider
            .state
            .tamper_id_token
            .store(false, Ordering::SeqCst);

        // Someone the site doesn't know, with sign-up off.
        *provider.state.user.lock().unwrap() = TestUser {
            sub: "stranger".into(),
            email: "stranger@example.com".into(),
            email_verified: true,
        };
        let callback = through_provider(&site, "/admin/").await;
        let (status, _, body) = get_with_host(&site, &callback).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "oidc_no_account"),
            "{body}"
        );
        assert!(
            site.site
                .services
                .identity
                .find_user("stranger@example.com")
                .await
                .unwrap()
                .is_none()
        );

        // The provider's own refusal, and a return_to off the site.
        let (status, _, body) = get_with_host(
            &site,
            "/api/ucms/auth/oidc/test/callback?error=access_denied&error_description=no&state=x",
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "oidc_provider_error")
        );
        let (status, _, body) = get_with_host(
            &site,
            "/api/ucms/auth/oidc/test/start?return_to=//evil.example/",
        )
        .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_return_to")
        );
        let (status, _, body) = get_with_host(&site, "/api/ucms/auth/oidc/nope/start").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "oidc_unknown_provider")
        );
        let failures = audit_actions(&site)
            .await
            .iter()
            .filter(|(a, _)| a == "auth.oidc.failed")
            .count();
        assert!(
            failures >= 5,
            "every failed callback is audited ({failures})"
        );
        site.close().await;
    }
}

#[tokio::test]
async fn oidc_sign_up_when_allowed() {
    let provider_user = TestUser {
        sub: "newcomer".into(),
        email: "newcomer@example.com".into(),
        email_verified: true,
    };
    let OidcSite { site, provider } = oidc_site(Backend::Sqlite, provider_user, true)
        .await
        .unwrap();
    let callback = through_provider(&site, "/admin/").await;
    let (status, _, body) = get_with_host(&site, &callback).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let created = site
        .site
        .services
        .identity
        .find_user("newcomer@example.com")
        .await
        .unwrap()
        .expect("an account was created");
    assert_eq!(created.roles, vec!["viewer".to_string()]);

    // An unverified email never creates or links an account.
    *provider.state.user.lock().unwrap() = TestUser {
        sub: "unverified".into(),
        email: "unverified@example.com".into(),
        email_verified: false,
    };
    let callback = through_provider(&site, "/admin/").await;
    let (status, _, body) = get_with_host(&site, &callback).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "oidc_no_account")
    );
    site.close().await;
}
