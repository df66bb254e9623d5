//! Bearer tokens: API tokens (named, scoped, optionally expiring) and sign-in sessions.
//!
//! A token reads `ucms_<16 hex id>_<43 base64url secret>`. Only the SHA-256 of the secret is stored;
//! authentication finds the row by id and compares hashes in constant time. The full token is shown
//! once, when issued.

use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::random::random_bytes;
use super::{Identity, Principal, User};
use crate::db::{now_ms, on_db, rfc3339};

const PREFIX: &str = "ucms_";
const ID_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Api,
    Session,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Session => "session",
        }
    }
}

/// A token just issued: the secret is in `token` and nowhere else.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    pub id: String,
    pub token: String,
    pub expires_at: Option<String>,
}

/// A stored token, without its secret.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub kind: TokenKind,
    pub user_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked: bool,
}

/// Why credentials were not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the token is malformed or unknown")]
    InvalidToken,
    #[error("the token expired at {0}")]
    Expired(String),
    #[error("the token was revoked")]
    Revoked,
    #[error("the account is disabled")]
    Disabled,
    #[error("the email or password is wrong")]
    BadCredentials,
    #[error("too many failed attempts from this address; try again in {} seconds", .retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
    #[error("the account is locked after too many failed attempts; try again in {} seconds", .retry_after.as_secs().max(1))]
    Locked { retry_after: Duration },
    #[error("authentication is unavailable right now")]
    Internal(#[source] anyhow::Error),
}

impl AuthError {
    pub(crate) fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }
}

type TokenRow = (
    String,
    String,
    String,
    String,
    Vec<u8>,
    String,
    Option<i64>,
    i64,
    Option<i64>,
    Option<i64>,
    Option<Vec<u8>>,
);

/// A principal and, when it came from a session, the session.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    pub session: Option<SessionMeta>,
}

/// What the CSRF check needs of a session.
#[derive(Debug, Clone)]
pub struct SessionMeta {
    pub id: String,
    /// SHA-256 of the session's CSRF token; `None` for sessions opened without one.
    pub csrf_hash: Option<Vec<u8>>,
}

/// Splits an opaque token into its id and secret.
pub(super) fn parse_opaque(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    if rest.len() <= ID_LEN + 1 || !rest.is_char_boundary(ID_LEN) {
        return None;
    }
    let (id, secret) = rest.split_at(ID_LEN);
    Some((id, secret.strip_prefix('_')?))
}

impl Identity {
    /// Issues a token for `user`. Scopes must be permission patterns (`*`, `hello.*`, `a.b`).
    pub async fn issue_token(
        &self,
        user: &User,
        kind: TokenKind,
        name: &str,
        scopes: &[String],
        ttl: Option<Duration>,
    ) -> anyhow::Result<IssuedToken> {
        if let Some(bad) = scopes.iter().find(|s| !super::valid_pattern(s)) {
            anyhow::bail!(
                "'{bad}' is not a scope: use a permission ('hello.counter.increment'), a prefix ('hello.*') or '*'"
            );
        }
        if scopes.is_empty() {
            anyhow::bail!("a token needs at least one scope (for example --scope 'hello.*')");
        }
        let id = hex::encode(random_bytes::<{ ID_LEN / 2 }>());
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let hash = crate::digest::sha256(secret.as_bytes()).to_vec();
        let now = now_ms();
        let expires_at = ttl.map(|ttl| now + ttl.as_millis() as i64);
        let scopes_json = serde_json::to_string(scopes)?;
        on_db!(self.db(), write, |pool| {
            sqlx::query(
                "INSERT INTO tokens (id, kind, user_id, name, secret_hash, scopes, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&id)
            .bind(kind.as_str())
            .bind(&user.id)
            .bind(name)
            .bind(&hash)
            .bind(&scopes_json)
            .bind(expires_at)
            .bind(now)
            .execute(pool)
            .await
                .map(|r| r.rows_affected())
        })?;
        if kind == TokenKind::Api {
            self.audit(
                Some(&format!("user:{}", user.id)),
                "token.create",
                Some(&format!("token:{id}")),
                serde_json::json!({ "name": name, "scopes": scopes }),
            )
            .await;
        }
        Ok(IssuedToken {
            token: format!("{PREFIX}{id}_{secret}"),
            id,
            expires_at: expires_at.map(rfc3339),
        })
    }

    /// Turns a bearer token into its principal, or says why not.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        if super::jwt::looks_like_jwt(bearer) {
            return self.authenticate_jwt(bearer).await;
        }
        Ok(self.authenticate_opaque(bearer).await?.principal)
    }

    /// Turns an opaque token (`ucms_…`: an API token or a session) into its principal and, for a
    /// session, what the CSRF check needs. Sessions also expire when idle too long.
    pub async fn authenticate_opaque(&self, bearer: &str) -> Result<Authenticated, AuthError> {
        let rest = bearer.strip_prefix(PREFIX).ok_or(AuthError::InvalidToken)?;
        if rest.len() <= ID_LEN + 1 || !rest.is_char_boundary(ID_LEN) {
            return Err(AuthError::InvalidToken);
        }
        let (id, secret) = rest.split_at(ID_LEN);
        let secret = secret.strip_prefix('_').ok_or(AuthError::InvalidToken)?;
        let row = self.token_row(id).await.map_err(AuthError::internal)?;
        let Some((
            id,
            kind,
            user_id,
            _name,
            hash,
            scopes,
            expires_at,
            created,
            last_used,
            revoked_at,
            csrf_hash,
        )) = row
        else {
            return Err(AuthError::InvalidToken);
        };
        let presented = crate::digest::sha256(secret.as_bytes());
        if !bool::from(presented.as_slice().ct_eq(hash.as_slice())) {
            return Err(AuthError::InvalidToken);
        }
        if revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        let now = now_ms();
        if let Some(exp) = expires_at
            && exp <= now
        {
            return Err(AuthError::Expired(rfc3339(exp)));
        }
        let is_session = kind == "session";
        if is_session {
            let idle = self.session_idle();
            let since = last_used.unwrap_or(created);
            if now - since >= idle {
                return Err(AuthError::Expired(rfc3339(since + idle)));
            }
        }
        let user = self
            .user_by_id(&user_id)
            .await
            .map_err(AuthError::internal)?
            .ok_or(AuthError::InvalidToken)?;
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        // Writing on every request would serialize reads behind writes; a minute's precision is
        // enough for the last-used time, the idle expiry of sessions and the `token.use` audit.
        if last_used.is_none_or(|t| now - t > 60_000) {
            let updated = on_db!(self.db(), write, |pool| {
                sqlx::query(
                    "UPDATE tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
                )
                .bind(now)
                .bind(&id)
                .bind(now - 60_000)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            });
            if !is_session && matches!(updated, Ok(1)) {
                self.audit(
                    Some(&format!("user:{user_id}")),
                    "token.use",
                    Some(&format!("token:{id}")),
                    serde_json::Value::Null,
                )
                .await;
            }
        }
        let permissions = self
            .user_permissions(&user)
            .await
            .map_err(AuthError::internal)?;
        let session = is_session.then(|| SessionMeta {
            id: id.clone(),
            csrf_hash,
        });
        let principal = if is_session {
            Principal::User { user, permissions }
        } else {
            Principal::Token {
                token_id: id,
                user,
                scopes: serde_json::from_str(&scopes).unwrap_or_default(),
                permissions,
            }
        };
        Ok(Authenticated { principal, session })
    }

    async fn token_row(&self, id: &str) -> anyhow::Result<Option<TokenRow>> {
        Ok(on_db!(self.db(), read, |pool| {
            sqlx::query_as(
                "SELECT id, kind, user_id, name, secret_hash, scopes, expires_at, created_at, last_used_at, revoked_at, csrf_hash \
                 FROM tokens WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })?)
    }

    /// API tokens (not sessions), optionally of one user.
    pub async fn list_tokens(&self, user_id: Option<&str>) -> anyhow::Result<Vec<TokenInfo>> {
        let rows: Vec<TokenRow> = on_db!(self.db(), read, |pool| {
            sqlx::query_as(
                "SELECT id, kind, user_id, name, secret_hash, scopes, expires_at, created_at, last_used_at, revoked_at, csrf_hash \
                 FROM tokens WHERE kind = 'api' AND ($1 IS NULL OR user_id = $1) ORDER BY created_at",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    _kind,
                    user_id,
                    name,
                    _hash,
                    scopes,
                    expires_at,
                    created_at,
                    last_used,
                    revoked,
                    _csrf,
                )| TokenInfo {
                    id,
                    kind: TokenKind::Api,
                    user_id,
                    name,
                    scopes: serde_json::from_str(&scopes).unwrap_or_default(),
                    created_at: rfc3339(created_at),
                    expires_at: expires_at.map(rfc3339),
                    last_used_at: last_used.map(rfc3339),
                    revoked: revoked.is_some(),
                },
            )
            .collect())
    }

    /// One token (API token or session) by id, without its secret.
    pub async fn token_info(&self, id: &str) -> anyhow::Result<Option<TokenInfo>> {
        Ok(self.token_row(id).await?.map(
            |(
                id,
                kind,
                user_id,
                name,
                _hash,
                scopes,
                expires_at,
                created_at,
                last_used,
                revoked,
                _csrf,
            )| {
                TokenInfo {
                    id,
                    kind: if kind == "session" {
                        TokenKind::Session
                    } else {
                        TokenKind::Api
                    },
                    user_id,
                    name,
                    scopes: serde_json::from_str(&scopes).unwrap_or_default(),
                    created_at: rfc3339(created_at),
                    expires_at: expires_at.map(rfc3339),
                    last_used_at: last_used.map(rfc3339),
                    revoked: revoked.is_some(),
                }
            },
        ))
    }

    /// Revokes a token by id; false when there is no such token.
    pub async fn revoke_token(&self, id: &str, actor: Option<&str>) -> anyhow::Result<bool> {
        let done = on_db!(self.db(), write, |pool| {
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        let revoked = done > 0;
        if revoked {
            self.audit(
                actor,
                "token.revoke",
                Some(&format!("token:{id}")),
                serde_json::Value::Null,
            )
            .await;
        }
        Ok(revoked)
    }
}
