//! Sign-in sessions: tokens of kind `session`, presented as the `ucms_session` cookie by browsers
//! or as a bearer token by API clients.
//!
//! A session ends at the first of: its absolute expiry (`expires_at`, `[auth]
//! session-absolute-secs` after sign-in), its idle expiry (`session-idle-secs` after its last use,
//! refreshed at most once a minute), sign-out, "sign out everywhere", a password change or reset,
//! or the account being disabled. Its CSRF token is stored only as a SHA-256.

use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::{Identity, User};
use crate::db::{now_ms, on_db, rfc3339};

/// A session just opened: the secrets are here and nowhere else.
#[derive(Debug, Clone, Serialize)]
pub struct OpenedSession {
    pub id: String,
    /// The session token (the cookie's value, or a bearer token).
    pub token: String,
    /// The value state-changing cookie-authenticated requests carry in `X-CSRF-Token`.
    pub csrf_token: String,
    /// The absolute expiry.
    pub expires_at: String,
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The CSRF token of a session is derived from its secret, so `GET /api/ucms/auth/me` can give it
/// again to the holder of the (HttpOnly) cookie while only its hash is stored.
fn csrf_for_secret(secret: &str) -> String {
    let digest = crate::digest::sha256(format!("ucms-csrf:{secret}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// The CSRF token of the session `token` (`ucms_<id>_<secret>`).
pub fn csrf_token_for(token: &str) -> Option<String> {
    super::tokens::parse_opaque(token).map(|(_, secret)| csrf_for_secret(secret))
}

impl Identity {
    /// Idle lifetime of a session, in milliseconds.
    pub(crate) fn session_idle(&self) -> i64 {
        let secs = self.auth_config().session_idle_secs.unwrap_or(2 * 3600);
        (secs.max(1) as i64).saturating_mul(1000)
    }

    /// Absolute lifetime of a session.
    pub fn session_absolute(&self) -> Duration {
        Duration::from_secs(
            self.auth_config()
                .session_absolute_secs
                .unwrap_or(12 * 3600)
                .max(1),
        )
    }

    /// Opens a session for `user`, who signed in with `method` (`password`, `totp`, `oidc:NAME`).
    pub async fn open_session(&self, user: &User, method: &str) -> anyhow::Result<OpenedSession> {
        let mut id_bytes = [0u8; 8];
        getrandom::fill(&mut id_bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let id = hex::encode(id_bytes);
        let secret = random_secret();
        let csrf_token = csrf_for_secret(&secret);
        let secret_hash = crate::digest::sha256(secret.as_bytes()).to_vec();
        let csrf_hash = crate::digest::sha256(csrf_token.as_bytes()).to_vec();
        let now = now_ms();
        let expires_at = now + self.session_absolute().as_millis() as i64;
        on_db!(self.db(), write, |pool| {
            sqlx::query(
                "INSERT INTO tokens (id, kind, user_id, name, secret_hash, scopes, expires_at, created_at, last_used_at, csrf_hash, method) \
                 VALUES ($1, 'session', $2, 'sign-in', $3, '[\"*\"]', $4, $5, $5, $6, $7)",
            )
            .bind(&id)
            .bind(&user.id)
            .bind(&secret_hash)
            .bind(expires_at)
            .bind(now)
            .bind(&csrf_hash)
            .bind(method)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(OpenedSession {
            token: format!("ucms_{id}_{secret}"),
            id,
            csrf_token,
            expires_at: rfc3339(expires_at),
        })
    }

    /// Whether `presented` is the CSRF token of a session whose CSRF hash is `expected`
    /// (compared in constant time). A session without a CSRF token never passes.
    pub fn csrf_matches(expected: Option<&[u8]>, presented: &str) -> bool {
        let Some(expected) = expected else {
            return false;
        };
        let presented = crate::digest::sha256(presented.trim().as_bytes());
        bool::from(presented.as_slice().ct_eq(expected))
    }

    /// Ends one session (sign-out). False when it was already over.
    pub async fn end_session(&self, session_id: &str) -> anyhow::Result<bool> {
        let done = on_db!(self.db(), write, |pool| {
            sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND kind = 'session' AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(session_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// Ends every session of a user except `keep`; returns how many were open.
    pub async fn end_sessions(&self, user_id: &str, keep: Option<&str>) -> anyhow::Result<u64> {
        Ok(on_db!(self.db(), write, |pool| {
            sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE user_id = $2 AND kind = 'session' AND revoked_at IS NULL AND id <> $3",
            )
            .bind(now_ms())
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?)
    }

    /// Revokes every API token of a user; returns how many were live.
    pub async fn revoke_api_tokens(&self, user_id: &str) -> anyhow::Result<u64> {
        Ok(on_db!(self.db(), write, |pool| {
            sqlx::query(
                "UPDATE tokens SET revoked_at = $1 WHERE user_id = $2 AND kind = 'api' AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?)
    }

    /// "Sign out everywhere": every session of the user and every refresh-token family (and with
    /// them the JWT access tokens they issued). API tokens stay: they are managed one by one.
    pub async fn sign_out_everywhere(&self, user_id: &str) -> anyhow::Result<(u64, u64)> {
        let sessions = self.end_sessions(user_id, None).await?;
        let families = self.revoke_all_families(user_id).await?;
        Ok((sessions, families))
    }
}
