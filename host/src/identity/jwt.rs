//! Signed JWT access tokens (EdDSA over Ed25519) for API clients.
//!
//! Signing keys live in the site database (`jwt_keys`), so every node of a site signs and
//! verifies with the same keys. The newest unretired key signs; it is generated on first use and
//! replaced after `[auth.jwt] rotate-days`. A retired key keeps verifying until the tokens it signed
//! have expired, and `/api/ucms/auth/jwks.json` publishes every key still verifying.
//!
//! An access token belongs to a refresh-token family (its `sid` claim, see [`super::refresh`]):
//! revoking the family revokes its access tokens too, at the next request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::random::random_bytes;
use super::{AuthError, Identity, Principal, User};
use crate::config::AuthConfig;
use crate::db::{now_ms, on_db, rfc3339};

/// The PKCS#8 v1 prefix of an Ed25519 private key: the DER the `jsonwebtoken` signer reads is this
/// followed by the 32-byte seed (RFC 8410, section 7).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// How often the key cache is reloaded from the database at most, when an unknown `kid` shows up.
const KEY_RELOAD_MIN: Duration = Duration::from_secs(1);
/// How long the cached keys are trusted before a reload (another node may have rotated).
const KEY_CACHE_TTL: Duration = Duration::from_secs(60);

/// The JWT settings and signing-key cache, shared by the clones of an [`Identity`].
#[derive(Debug)]
pub struct AuthState {
    pub config: AuthConfig,
    keys: Mutex<KeyCache>,
}

impl AuthState {
    pub fn new(config: AuthConfig) -> Self {
        Self {
            config,
            keys: Mutex::new(KeyCache::default()),
        }
    }
}

#[derive(Debug, Default)]
struct KeyCache {
    keys: Vec<StoredKey>,
    loaded: Option<Instant>,
}

#[derive(Clone)]
struct StoredKey {
    kid: String,
    public: Vec<u8>,
    private: Vec<u8>,
    created_at: i64,
    retired_at: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// The refresh-token family this token came from.
    pub sid: String,
    /// Space-separated permission patterns.
    pub scope: String,
}

/// An access token just signed.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

/// Whether a bearer token is a compact JWS (three base64url parts, a JSON header) rather than an
/// opaque `ucms_…` token.
pub fn looks_like_jwt(bearer: &str) -> bool {
    bearer.starts_with("eyJ") && bearer.split('.').count() == 3
}

type KeyRow = (String, Vec<u8>, Vec<u8>, i64, Option<i64>);

impl Identity {
    pub fn auth_config(&self) -> &AuthConfig {
        &self.auth_state().config
    }

    /// The `iss` of access tokens: `[auth.jwt] issuer`, else `[auth] public-url`, else `ucms`.
    pub fn jwt_issuer(&self) -> String {
        let config = self.auth_config();
        config
            .jwt
            .issuer
            .clone()
            .or_else(|| config.public_url.clone())
            .unwrap_or_else(|| "ucms".into())
    }

    fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.auth_config().jwt.access_ttl_secs.max(1))
    }

    /// Keys still verifying: unretired ones, and retired ones whose tokens may not have expired.
    async fn load_keys(&self) -> anyhow::Result<Vec<StoredKey>> {
        // Another node may keep signing with a key for up to KEY_CACHE_TTL after it was retired.
        let horizon = now_ms()
            - (self.access_ttl().as_millis() as i64)
            - (self.auth_config().jwt.leeway_secs as i64 * 1000)
            - KEY_CACHE_TTL.as_millis() as i64;
        let rows: Vec<KeyRow> = on_db!(self.db(), read, |pool| {
            sqlx::query_as(
                "SELECT kid, public_key, private_key, created_at, retired_at FROM jwt_keys \
                 WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid",
            )
            .bind(horizon)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(kid, public, private, created_at, retired_at)| StoredKey {
                kid,
                public,
                private,
                created_at,
                retired_at,
            })
            .collect())
    }

    async fn cached_keys(&self, force: bool) -> anyhow::Result<Vec<StoredKey>> {
        {
            let cache = self
                .auth_state()
                .keys
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let fresh = cache
                .loaded
                .is_some_and(|t| t.elapsed() < if force { KEY_RELOAD_MIN } else { KEY_CACHE_TTL });
            if fresh {
                return Ok(cache.keys.clone());
            }
        }
        let keys = self.load_keys().await?;
        let mut cache = self
            .auth_state()
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache.keys = keys.clone();
        cache.loaded = Some(Instant::now());
        Ok(keys)
    }

    /// The key that signs now: the newest unretired one younger than `rotate-days`, else a new one
    /// (the older ones are retired).
    async fn signing_key(&self) -> anyhow::Result<StoredKey> {
        let rotate_ms = self.auth_config().jwt.rotate_days.max(1) as i64 * 86_400_000;
        let now = now_ms();
        let current = |keys: &[StoredKey]| {
            keys.iter()
                .find(|k| k.retired_at.is_none() && now - k.created_at < rotate_ms)
                .cloned()
        };
        if let Some(key) = current(&self.cached_keys(false).await?) {
            return Ok(key);
        }
        if let Some(key) = current(&self.cached_keys(true).await?) {
            return Ok(key);
        }
        let seed = random_bytes::<32>();
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes()
            .to_vec();
        let kid = hex::encode(random_bytes::<8>());
        on_db!(self.db(), write, |pool| {
            sqlx::query(
                "INSERT INTO jwt_keys (kid, public_key, private_key, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&kid)
            .bind(&public)
            .bind(seed.as_slice())
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        on_db!(self.db(), write, |pool| {
            sqlx::query(
                "UPDATE jwt_keys SET retired_at = $1 WHERE retired_at IS NULL AND created_at < $2",
            )
            .bind(now)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        self.audit(
            None,
            "auth.jwt.key-created",
            Some(&format!("jwt-key:{kid}")),
            serde_json::Value::Null,
        )
        .await;
        self.auth_state()
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .loaded = None;
        Ok(StoredKey {
            kid,
            public,
            private: seed.to_vec(),
            created_at: now,
            retired_at: None,
        })
    }

    /// Signs an access token for `user` in refresh family `family`, limited to `scopes`.
    pub async fn issue_access_token(
        &self,
        user: &User,
        family: &str,
        scopes: &[String],
    ) -> anyhow::Result<AccessToken> {
        let key = self.signing_key().await?;
        let jwt = &self.auth_config().jwt;
        let ttl = self.access_ttl();
        let now = now_ms() / 1000;
        let claims = Claims {
            iss: self.jwt_issuer(),
            sub: user.id.clone(),
            aud: jwt.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs() as i64,
            jti: hex::encode(random_bytes::<12>()),
            sid: family.to_string(),
            scope: scopes.join(" "),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&key.private);
        let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&der))?;
        Ok(AccessToken {
            token,
            expires_in: ttl.as_secs(),
        })
    }

    /// The public keys that verify access tokens, as a JWK set (RFC 7517, OKP keys of RFC 8037).
    pub async fn jwks(&self) -> anyhow::Result<serde_json::Value> {
        // Publishing before the first token is signed still shows the key that will sign it.
        self.signing_key().await?;
        let keys = self.cached_keys(true).await?;
        let keys: Vec<_> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": k.kid,
                    "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&k.public),
                })
            })
            .collect();
        Ok(serde_json::json!({ "keys": keys }))
    }

    /// Verifies an access token: the signature with a known key, `alg` exactly EdDSA, `exp`/`nbf`
    /// with the configured leeway, `iss`, `aud`; then that its family isn't revoked and its user
    /// isn't disabled.
    pub(crate) async fn authenticate_jwt(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::InvalidToken);
        }
        let kid = header.kid.ok_or(AuthError::InvalidToken)?;
        let mut keys = self.cached_keys(false).await.map_err(AuthError::internal)?;
        if !keys.iter().any(|k| k.kid == kid) {
            keys = self.cached_keys(true).await.map_err(AuthError::internal)?;
        }
        let key = keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(AuthError::InvalidToken)?;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&key.public);
        let decoding = DecodingKey::from_ed_components(&x).map_err(|_| AuthError::InvalidToken)?;
        let jwt = &self.auth_config().jwt;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = jwt.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.jwt_issuer()]);
        validation.set_audience(&[&jwt.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let claims = match jsonwebtoken::decode::<Claims>(token, &decoding, &validation) {
            Ok(data) => data.claims,
            Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                let exp = unverified_claim(token, "exp").and_then(|v| v.as_i64());
                let sub = unverified_claim(token, "sub");
                self.audit_rejected(sub.as_ref().and_then(|s| s.as_str()), "expired")
                    .await;
                return Err(AuthError::Expired(
                    exp.map(|s| rfc3339(s * 1000)).unwrap_or_default(),
                ));
            }
            Err(_) => return Err(AuthError::InvalidToken),
        };
        let family: Option<(String, Option<i64>, i64)> = on_db!(self.db(), read, |pool| {
            sqlx::query_as(
                "SELECT user_id, revoked_at, expires_at FROM refresh_families WHERE id = $1",
            )
            .bind(&claims.sid)
            .fetch_optional(pool)
            .await
        })
        .map_err(AuthError::internal)?;
        let Some((user_id, revoked_at, _)) = family else {
            self.audit_rejected(Some(&claims.sub), "revoked").await;
            return Err(AuthError::Revoked);
        };
        if revoked_at.is_some() {
            self.audit_rejected(Some(&claims.sub), "revoked").await;
            return Err(AuthError::Revoked);
        }
        if user_id != claims.sub {
            return Err(AuthError::InvalidToken);
        }
        let user = self
            .user_by_id(&claims.sub)
            .await
            .map_err(AuthError::internal)?
            .ok_or(AuthError::InvalidToken)?;
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        let permissions = self
            .user_permissions(&user)
            .await
            .map_err(AuthError::internal)?;
        Ok(Principal::Token {
            token_id: format!("jwt:{}", claims.jti),
            user,
            scopes: claims.scope.split_whitespace().map(String::from).collect(),
            permissions,
        })
    }
}

/// A claim of a token whose signature was already checked (for messages and the audit log).
fn unverified_claim(token: &str, name: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let mut value: HashMap<String, serde_json::Value> = serde_json::from_slice(&bytes).ok()?;
    value.remove(name)
}

impl Identity {
    /// Audits a correctly signed access token refused as expired or revoked: a client that
    /// didn't refresh, or a token used after its sign-in was revoked (possibly stolen).
    async fn audit_rejected(&self, sub: Option<&str>, reason: &str) {
        let target = sub.map(|s| format!("user:{s}"));
        self.audit(
            None,
            "auth.token.rejected",
            target.as_deref(),
            serde_json::json!({ "kind": "jwt", "reason": reason }),
        )
        .await;
    }
}

impl Identity {
    /// This identity with the site's `[auth]` settings (JWT lifetimes, OpenID providers).
    pub fn with_auth_config(mut self, config: AuthConfig) -> Self {
        self.auth = std::sync::Arc::new(AuthState::new(config));
        self
    }

    pub(crate) fn auth_state(&self) -> &AuthState {
        &self.auth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_are_told_from_opaque_tokens() {
        assert!(looks_like_jwt("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt("ucms_0123456789abcdef_secret"));
        assert!(!looks_like_jwt("eyJhbGciOiJFZERTQSJ9.only-two"));
    }

    #[test]
    fn the_pkcs8_prefix_makes_a_key_jsonwebtoken_signs_with() {
        let seed = [7u8; 32];
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        let claims = serde_json::json!({ "sub": "u", "exp": 4_000_000_000u64 });
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &EncodingKey::from_ed_der(&der),
        )
        .unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public);
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_ed_components(&x).unwrap(),
            &validation,
        )
        .unwrap();
    }
}
