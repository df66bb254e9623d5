//! Refresh tokens for API clients (OAuth2 style).
//!
//! A password grant opens a *family*: one sign-in of one client. Each refresh token of the family
//! is opaque (`ucmsr_…`), stored only as its SHA-256, and single-use: refreshing marks it used and
//! hands out its successor. Presenting a used one means two parties hold the family's tokens (one
//! of them stole it), so the whole family is revoked, access tokens included (they carry the
//! family as `sid`). A family expires after `[auth.jwt] refresh-lifetime-secs`, or sooner when
//! unused for `refresh-idle-secs`.

use std::time::Duration;

use serde::Serialize;

pub use super::flow_error::FlowError;
use super::{AuthError, Identity, User};
use crate::db::{now_ms, on_db};

const REFRESH_PREFIX: &str = "ucmsr_";

/// What the token endpoint answers (RFC 6749, section 5.1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub refresh_token: String,
    pub scope: String,
}

type RefreshRow = (String, Option<i64>, String, String, i64, i64, Option<i64>);

fn invalid_grant(message: &str) -> FlowError {
    FlowError::bad_request("invalid_grant", message)
}

impl Identity {
    /// Checks an email and password without opening a session (the password grant), with the
    /// login's throttling and audit. Failures are alike whether or not the account exists.
    pub async fn check_password(
        &self,
        email: &str,
        password: &str,
        client: &str,
    ) -> Result<User, AuthError> {
        self.check_credentials(
            email,
            password,
            client,
            "token",
            serde_json::json!({ "grant": "password" }),
        )
        .await
    }

    /// Opens a refresh family for `user` and returns its first tokens.
    pub async fn open_refresh_family(
        &self,
        user: &User,
        scopes: &[String],
    ) -> anyhow::Result<TokenResponse> {
        if let Some(bad) = scopes.iter().find(|s| !super::valid_pattern(s)) {
            anyhow::bail!("'{bad}' is not a scope: use a permission, a prefix ('hello.*') or '*'");
        }
        let family = hex::encode(super::random::random_bytes::<12>());
        let now = now_ms();
        let lifetime = Duration::from_secs(self.auth_config().jwt.refresh_lifetime_secs);
        let scopes_json = serde_json::to_string(scopes)?;
        // Families past their absolute lifetime (and their used tokens, by cascade) are swept as
        // new ones open; a day's grace keeps "expired" answers meaningful.
        on_db!(self.db(), write, |pool| {
            sqlx::query("DELETE FROM refresh_families WHERE expires_at < $1")
                .bind(now - 86_400_000)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        on_db!(self.db(), write, |pool| {
            sqlx::query(
                "INSERT INTO refresh_families (id, user_id, scopes, created_at, expires_at, last_used_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&family)
            .bind(&user.id)
            .bind(&scopes_json)
            .bind(now)
            .bind(now + lifetime.as_millis() as i64)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        let refresh_token = self.add_refresh_token(&family, now).await?;
        let access = self.issue_access_token(user, &family, scopes).await?;
        Ok(TokenResponse {
            access_token: access.token,
            token_type: "Bearer",
            expires_in: access.expires_in,
            refresh_token,
            scope: scopes.join(" "),
        })
    }

    async fn add_refresh_token(&self, family: &str, now: i64) -> anyhow::Result<String> {
        let secret = super::random::random_token::<32>();
        let hash = crate::digest::sha256(secret.as_bytes()).to_vec();
        on_db!(self.db(), write, |pool| {
            sqlx::query(
                "INSERT INTO refresh_tokens (hash, family_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(&hash)
            .bind(family)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(format!("{REFRESH_PREFIX}{secret}"))
    }

    async fn refresh_row(&self, token: &str) -> anyhow::Result<Option<(Vec<u8>, RefreshRow)>> {
        let Some(secret) = token.trim().strip_prefix(REFRESH_PREFIX) else {
            return Ok(None);
        };
        let hash = crate::digest::sha256(secret.as_bytes()).to_vec();
        let row: Option<RefreshRow> = on_db!(self.db(), read, |pool| {
            sqlx::query_as(
                "SELECT t.family_id, t.used_at, f.user_id, f.scopes, f.expires_at, f.last_used_at, f.revoked_at \
                 FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = $1",
            )
            .bind(&hash)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|row| (hash, row)))
    }

    /// Trades a refresh token for a new access token and its successor (the grant
    /// `refresh_token`). A token presented twice revokes its family.
    pub async fn refresh(&self, token: &str, client: &str) -> Result<TokenResponse, FlowError> {
        let Some((hash, (family, used_at, user_id, scopes, expires_at, last_used, revoked_at))) =
            self.refresh_row(token).await.map_err(FlowError::internal)?
        else {
            return Err(invalid_grant(
                "the refresh token is unknown; sign in again with grant_type=password",
            ));
        };
        if revoked_at.is_some() {
            return Err(invalid_grant(
                "the refresh token was revoked; sign in again with grant_type=password",
            ));
        }
        let now = now_ms();
        let idle = self.auth_config().jwt.refresh_idle_secs as i64 * 1000;
        if expires_at <= now || last_used + idle <= now {
            return Err(invalid_grant(
                "the refresh token expired; sign in again with grant_type=password",
            ));
        }
        let claimed = used_at.is_none()
            && on_db!(self.db(), write, |pool| {
                sqlx::query(
                    "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL",
                )
                .bind(now)
                .bind(&hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })
            .map_err(FlowError::internal)?
                == 1;
        if !claimed {
            self.revoke_family(&family, "reuse")
                .await
                .map_err(FlowError::internal)?;
            self.audit(
                None,
                "auth.refresh.reuse",
                Some(&format!("user:{user_id}")),
                serde_json::json!({ "family": family, "client": client }),
            )
            .await;
            return Err(invalid_grant(
                "the refresh token was already used, so its sign-in is revoked (a copy of it may have been stolen); sign in again",
            ));
        }
        let user = self
            .user_by_id(&user_id)
            .await
            .map_err(FlowError::internal)?
            .ok_or_else(|| invalid_grant("the account no longer exists"))?;
        if user.disabled {
            return Err(AuthError::Disabled.into());
        }
        on_db!(self.db(), write, |pool| {
            sqlx::query("UPDATE refresh_families SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&family)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(FlowError::internal)?;
        let scopes: Vec<String> = serde_json::from_str(&scopes).unwrap_or_default();
        let refresh_token = self
            .add_refresh_token(&family, now)
            .await
            .map_err(FlowError::internal)?;
        let access = self
            .issue_access_token(&user, &family, &scopes)
            .await
            .map_err(FlowError::internal)?;
        Ok(TokenResponse {
            access_token: access.token,
            token_type: "Bearer",
            expires_in: access.expires_in,
            refresh_token,
            scope: scopes.join(" "),
        })
    }

    async fn revoke_family(&self, family: &str, reason: &str) -> anyhow::Result<u64> {
        Ok(on_db!(self.db(), write, |pool| {
            sqlx::query(
                "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(reason)
            .bind(family)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?)
    }

    /// Revokes the family of a refresh token (RFC 7009: unknown tokens are not an error).
    pub async fn revoke_refresh_token(&self, token: &str, client: &str) -> anyhow::Result<()> {
        if let Some((_, (family, _, user_id, ..))) = self.refresh_row(token).await?
            && self.revoke_family(&family, "revoked").await? > 0
        {
            self.audit(
                Some(&format!("user:{user_id}")),
                "auth.refresh.revoke",
                Some(&format!("user:{user_id}")),
                serde_json::json!({ "family": family, "client": client }),
            )
            .await;
        }
        Ok(())
    }

    /// Revokes every refresh family of a user, and with them their access tokens ("sign out
    /// everywhere", disabling an account). Returns how many were open.
    pub async fn revoke_all_families(&self, user_id: &str) -> anyhow::Result<u64> {
        let revoked = on_db!(self.db(), write, |pool| {
            sqlx::query(
                "UPDATE refresh_families SET revoked_at = $1, revoked_reason = 'all' WHERE user_id = $2 AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if revoked > 0 {
            self.audit(
                None,
                "auth.refresh.revoke-all",
                Some(&format!("user:{user_id}")),
                serde_json::json!({ "families": revoked }),
            )
            .await;
        }
        Ok(revoked)
    }
}
