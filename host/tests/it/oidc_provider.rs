//! A small OpenID Connect provider on a loopback socket, for the sign-in tests: discovery,
//! `/authorize` (approves the configured user at once and redirects back with a one-time code,
//! recording the PKCE challenge), `/token` (demands the client secret and a `code_verifier` whose
//! S256 matches the challenge) and `/jwks`. ID tokens are signed with the provider's own RS256
//! key, or its Ed25519 key when told to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use serde_json::json;
use sha2::Digest as _;

pub const CLIENT_ID: &str = "ucms-test";
pub const CLIENT_SECRET: &str = "s3cret-of-the-test-client";
const KID: &str = "test-rsa-1";
const ED_KID: &str = "test-ed25519-1";
/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410), followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Who the provider signs in.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
}

#[derive(Debug)]
struct Grant {
    challenge: String,
    nonce: String,
    redirect_uri: String,
}

pub struct ProviderState {
    pub issuer: String,
    pub user: Mutex<TestUser>,
    codes: Mutex<HashMap<String, Grant>>,
    der: Vec<u8>,
    n: String,
    e: String,
    ed_seed: [u8; 32],
    /// Sign ID tokens with EdDSA (Ed25519) instead of RS256.
    pub sign_with_eddsa: AtomicBool,
    /// Sign ID tokens, then break their signature.
    pub tamper_id_token: AtomicBool,
    /// Record a different challenge than the client sent (so its verifier won't match).
    pub swap_challenge: AtomicBool,
    /// Token requests refused, by reason.
    pub refusals: Mutex<Vec<String>>,
}

pub struct Provider {
    pub state: Arc<ProviderState>,
}

impl Provider {
    pub async fn start(user: TestUser) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let key = tokio::task::spawn_blocking(|| {
            rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap()
        })
        .await
        .unwrap();
        let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let state = Arc::new(ProviderState {
            issuer: format!("http://{addr}"),
            user: Mutex::new(user),
            codes: Mutex::default(),
            der: key.to_pkcs1_der().unwrap().as_bytes().to_vec(),
            n: b64(key.n().to_bytes_be()),
            e: b64(key.e().to_bytes_be()),
            ed_seed: {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).unwrap();
                seed
            },
            sign_with_eddsa: AtomicBool::new(false),
            tamper_id_token: AtomicBool::new(false),
            swap_challenge: AtomicBool::new(false),
            refusals: Mutex::default(),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { state }
    }

    pub fn issuer(&self) -> String {
        self.state.issuer.clone()
    }
}

async fn discovery(State(state): State<Arc<ProviderState>>) -> Json<serde_json::Value> {
    let issuer = &state.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(State(state): State<Arc<ProviderState>>) -> Json<serde_json::Value> {
    let ed_public = ed25519_dalek::SigningKey::from_bytes(&state.ed_seed)
        .verifying_key()
        .to_bytes();
    Json(json!({ "keys": [
        { "kty": "RSA", "use": "sig", "alg": "RS256", "kid": KID, "n": state.n, "e": state.e },
        {
            "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": ED_KID,
            "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ed_public),
        },
    ]}))
}

#[derive(Debug, Deserialize)]
struct AuthorizeQuery {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: String,
    nonce: String,
    code_challenge: String,
    code_challenge_method: String,
}

async fn authorize(
    State(state): State<Arc<ProviderState>>,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    if q.response_type != "code" || q.client_id != CLIENT_ID || q.code_challenge_method != "S256" {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let code = hex::encode(rand_bytes());
    let challenge = if state.swap_challenge.load(Ordering::SeqCst) {
        "not-the-challenge-the-client-sent".to_string()
    } else {
        q.code_challenge
    };
    state.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            challenge,
            nonce: q.nonce,
            redirect_uri: q.redirect_uri.clone(),
        },
    );
    let mut url = url::Url::parse(&q.redirect_uri).unwrap();
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q.state);
    (
        StatusCode::FOUND,
        [(http::header::LOCATION, url.to_string())],
    )
        .into_response()
}

fn rand_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    grant_type: String,
    code: String,
    redirect_uri: String,
    code_verifier: Option<String>,
}

async fn token(
    State(state): State<Arc<ProviderState>>,
    headers: http::HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    let refuse = |why: &str| {
        state.refusals.lock().unwrap().push(why.to_string());
        (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid_grant", "error_description": why })),
        )
            .into_response()
    };
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        state
            .refusals
            .lock()
            .unwrap()
            .push("client authentication".into());
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    if form.grant_type != "authorization_code" {
        return refuse("grant_type");
    }
    // One-time codes: taken out of the map whatever happens next.
    let Some(grant) = state.codes.lock().unwrap().remove(&form.code) else {
        return refuse("unknown or used code");
    };
    if grant.redirect_uri != form.redirect_uri {
        return refuse("redirect_uri");
    }
    let Some(verifier) = form.code_verifier else {
        return refuse("no code_verifier");
    };
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    if challenge != grant.challenge {
        return refuse("code_verifier does not match the challenge");
    }
    let user = state.user.lock().unwrap().clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": state.issuer,
        "aud": CLIENT_ID,
        "sub": user.sub,
        "email": user.email,
        "email_verified": user.email_verified,
        "nonce": grant.nonce,
        "iat": now,
        "exp": now + 300,
    });
    let (header, key) = if state.sign_with_eddsa.load(Ordering::SeqCst) {
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&state.ed_seed);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(ED_KID.into());
        (header, EncodingKey::from_ed_der(&der))
    } else {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID.into());
        (header, EncodingKey::from_rsa_der(&state.der))
    };
    let mut id_token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    if state.tamper_id_token.load(Ordering::SeqCst) {
        // Change the claims after signing: the signature no longer covers them.
        let mut parts: Vec<String> = id_token.split('.').map(String::from).collect();
        let forged = json!({
            "iss": state.issuer, "aud": CLIENT_ID, "sub": user.sub, "email": "admin@example.com",
            "email_verified": true, "nonce": grant.nonce, "iat": now, "exp": now + 300,
        });
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
        id_token = parts.join(".");
    }
    Json(json!({
        "access_token": "provider-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}
