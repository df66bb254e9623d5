//! Managing accounts: roles, disabling, deleting, password changes, and the single-use tickets of
//! password resets and invitations (stored only as SHA-256, mailed as links).

use std::time::Duration;

use base64::Engine as _;
use serde::Serialize;

use super::mail::Mail;
use super::{AuthError, Identity, User, password};
use crate::db::{now_ms, on_db};

/// How long a password-reset link works.
pub const RESET_TTL: Duration = Duration::from_secs(3600);
/// How long an invitation works.
pub const INVITE_TTL: Duration = Duration::from_secs(72 * 3600);

/// What a single-use ticket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketKind {
    Reset,
    Invite,
}

impl TicketKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Reset => "reset",
            Self::Invite => "invite",
        }
    }
}

/// Why a ticket or a password change was refused.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    #[error("the link is malformed or unknown; ask for a new one")]
    Unknown,
    #[error("the link was already used; ask for a new one")]
    Used,
    #[error("the link expired; ask for a new one")]
    Expired,
    #[error("{0}")]
    WeakPassword(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl From<anyhow::Error> for TicketError {
    fn from(e: anyhow::Error) -> Self {
        Self::Auth(AuthError::internal(e))
    }
}

/// One page of users, ordered by email.
#[derive(Debug, Clone, Serialize)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next_after: Option<String>,
}

fn actor_or_system(actor: Option<&str>) -> Option<&str> {
    actor.or(Some("system"))
}

impl Identity {
    /// Users by email, `limit` at a time, after the email `after`.
    pub async fn list_users_page(
        &self,
        limit: u32,
        after: Option<&str>,
    ) -> anyhow::Result<UserPage> {
        let limit = limit.clamp(1, 500);
        let rows: Vec<(String, String, String, bool, i64)> = on_db!(self.db(), read, |pool| {
            sqlx::query_as(
                "SELECT id, email, roles, disabled, created_at FROM users WHERE email > $1 ORDER BY email LIMIT $2",
            )
            .bind(after.unwrap_or(""))
            .bind(i64::from(limit) + 1)
            .fetch_all(pool)
            .await
        })?;
        let mut users: Vec<User> = rows.into_iter().map(super::user_from_row).collect();
        let next_after = if users.len() > limit as usize {
            users.truncate(limit as usize);
            users.last().map(|u| u.email.clone())
        } else {
            None
        };
        Ok(UserPage { users, next_after })
    }

    pub(super) async fn check_roles(&self, roles: &[String]) -> anyhow::Result<()> {
        for role in roles {
            if self.role_permissions(role).await?.is_none() {
                let known = self.role_names().await?.join(", ");
                anyhow::bail!("there is no role '{role}' (roles: {known})");
            }
        }
        Ok(())
    }

    /// Replaces a user's roles (every one must exist); audited as `user.roles`.
    pub async fn set_roles(
        &self,
        user: &User,
        roles: &[String],
        actor: Option<&str>,
    ) -> anyhow::Result<User> {
        self.check_roles(roles).await?;
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        let json = serde_json::to_string(&roles)?;
        on_db!(self.db(), write, |pool| {
            sqlx::query("UPDATE users SET roles = $1 WHERE id = $2")
                .bind(&json)
                .bind(&user.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        self.audit(
            actor_or_system(actor),
            "user.roles",
            Some(&format!("user:{}", user.id)),
            serde_json::json!({ "before": user.roles, "after": roles }),
        )
        .await;
        Ok(User {
            roles,
            ..user.clone()
        })
    }

    /// Disables or enables an account. Disabling ends its sessions and refresh-token families.
    pub async fn set_disabled(
        &self,
        user: &User,
        disabled: bool,
        actor: Option<&str>,
    ) -> anyhow::Result<User> {
        on_db!(self.db(), write, |pool| {
            sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
                .bind(disabled)
                .bind(&user.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        let mut detail = serde_json::json!({});
        if disabled {
            let (sessions, families) = self.sign_out_everywhere(&user.id).await?;
            detail = serde_json::json!({ "sessions_ended": sessions, "refresh_families_revoked": families });
        }
        self.audit(
            actor_or_system(actor),
            if disabled {
                "user.disable"
            } else {
                "user.enable"
            },
            Some(&format!("user:{}", user.id)),
            detail,
        )
        .await;
        Ok(User {
            disabled,
            ..user.clone()
        })
    }

    /// Deletes an account with its tokens, sessions and tickets.
    pub async fn delete_user(&self, user: &User, actor: Option<&str>) -> anyhow::Result<()> {
        for sql in [
            "DELETE FROM tokens WHERE user_id = $1",
            "DELETE FROM user_tickets WHERE user_id = $1",
            "DELETE FROM users WHERE id = $1",
        ] {
            on_db!(self.db(), write, |pool| {
                sqlx::query(sql)
                    .bind(&user.id)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
        }
        self.audit(
            actor_or_system(actor),
            "user.delete",
            Some(&format!("user:{}", user.id)),
            serde_json::json!({ "email": user.email }),
        )
        .await;
        Ok(())
    }

    async fn store_password(&self, user_id: &str, new_password: &str) -> Result<(), TicketError> {
        password::check_strength(new_password).map_err(TicketError::WeakPassword)?;
        let hash = password::hash(new_password.to_string()).await?;
        on_db!(self.db(), write, |pool| {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(&hash)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(anyhow::Error::from)?;
        Ok(())
    }

    /// Sets a password outright (the CLI's `ucms user password`).
    pub async fn set_password(&self, user: &User, new_password: &str) -> anyhow::Result<()> {
        self.store_password(&user.id, new_password)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.end_sessions(&user.id, None).await?;
        self.audit(
            Some("system"),
            "auth.password.set",
            Some(&format!("user:{}", user.id)),
            serde_json::Value::Null,
        )
        .await;
        Ok(())
    }

    /// Changes a signed-in user's password after checking the current one; ends every other
    /// session of theirs (`keep` is the one making the change).
    pub async fn change_password(
        &self,
        user: &User,
        current: &str,
        new_password: &str,
        keep: Option<&str>,
        client: &str,
    ) -> Result<u64, TicketError> {
        self.throttle_check(&user.email, client, "password-change")
            .await?;
        let row: Option<(String,)> = on_db!(self.db(), read, |pool| {
            sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
                .bind(&user.id)
                .fetch_optional(pool)
                .await
        })
        .map_err(anyhow::Error::from)?;
        let hash = row.map(|(h,)| h).unwrap_or_default();
        if !password::verify(current.to_string(), hash).await {
            self.audit(
                Some(&format!("user:{}", user.id)),
                "auth.password.change-failed",
                Some(&format!("user:{}", user.id)),
                serde_json::json!({ "client": client }),
            )
            .await;
            self.throttle_failure(&user.email, client, "password-change")
                .await;
            return Err(AuthError::BadCredentials.into());
        }
        self.store_password(&user.id, new_password).await?;
        let ended = self.end_sessions(&user.id, keep).await?;
        self.audit(
            Some(&format!("user:{}", user.id)),
            "auth.password.change",
            Some(&format!("user:{}", user.id)),
            serde_json::json!({ "client": client, "sessions_ended": ended }),
        )
        .await;
        Ok(ended)
    }

    /// Creates a single-use ticket for `user_id`; returns its secret.
    async fn create_ticket(
        &self,
        kind: TicketKind,
        user_id: &str,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let hash = crate::digest::sha256(secret.as_bytes()).to_vec();
        let now = now_ms();
        on_db!(self.db(), write, |pool| {
            sqlx::query(
                "INSERT INTO user_tickets (hash, kind, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&hash)
            .bind(kind.as_str())
            .bind(user_id)
            .bind(now)
            .bind(now + ttl.as_millis() as i64)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(secret)
    }

    /// Uses up a reset or invitation ticket and sets the account's password. Wrong tickets count
    /// against the client's address; a weak password is refused before the ticket is spent.
    async fn redeem_with_password(
        &self,
        kind: TicketKind,
        token: &str,
        new_password: &str,
        client: &str,
    ) -> Result<User, TicketError> {
        let purpose = match kind {
            TicketKind::Reset => "password-reset",
            TicketKind::Invite => "invite-accept",
        };
        let key = format!("ticket:{client}");
        self.throttle_check(&key, client, purpose).await?;
        password::check_strength(new_password).map_err(TicketError::WeakPassword)?;
        let user = match self.redeem_ticket(kind, token).await {
            Ok(user) => user,
            Err(e) => {
                self.throttle_failure(&key, client, purpose).await;
                return Err(e);
            }
        };
        self.store_password(&user.id, new_password).await?;
        Ok(user)
    }

    /// Uses up a ticket: the user it was for, or why not.
    async fn redeem_ticket(&self, kind: TicketKind, secret: &str) -> Result<User, TicketError> {
        let hash = crate::digest::sha256(secret.trim().as_bytes()).to_vec();
        let now = now_ms();
        let taken = on_db!(self.db(), write, |pool| {
            sqlx::query(
                "UPDATE user_tickets SET used_at = $1 WHERE hash = $2 AND kind = $3 AND used_at IS NULL AND expires_at > $1",
            )
            .bind(now)
            .bind(&hash)
            .bind(kind.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(anyhow::Error::from)?;
        let row: Option<(String, i64, Option<i64>)> = on_db!(self.db(), read, |pool| {
            sqlx::query_as(
                "SELECT user_id, expires_at, used_at FROM user_tickets WHERE hash = $1 AND kind = $2",
            )
            .bind(&hash)
            .bind(kind.as_str())
            .fetch_optional(pool)
            .await
        })
        .map_err(anyhow::Error::from)?;
        let Some((user_id, expires_at, used_at)) = row else {
            return Err(TicketError::Unknown);
        };
        if taken == 0 {
            return Err(if used_at.is_some() {
                TicketError::Used
            } else if expires_at <= now {
                TicketError::Expired
            } else {
                TicketError::Unknown
            });
        }
        self.user_by_id(&user_id).await?.ok_or(TicketError::Unknown)
    }

    /// Starts a password reset: when `email` belongs to an enabled account, mails it a link that
    /// works once within an hour. Says nothing about whether the account exists.
    pub async fn request_password_reset(&self, email: &str, client: &str) -> Result<(), AuthError> {
        let email = email.trim().to_lowercase();
        // Every request counts, so the endpoint can't be used to flood an inbox or probe; under a
        // key of its own, so reset requests by a stranger can't lock the account's sign-in.
        let key = format!("reset:{email}");
        self.throttle_check(&key, client, "password-reset").await?;
        self.throttle_failure(&key, client, "password-reset").await;
        let user = self.find_user(&email).await.map_err(AuthError::internal)?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            self.audit(
                None,
                "auth.password.reset-request",
                Some(&email),
                serde_json::json!({ "client": client, "account": false }),
            )
            .await;
            return Ok(());
        };
        let secret = self
            .create_ticket(TicketKind::Reset, &user.id, RESET_TTL)
            .await
            .map_err(AuthError::internal)?;
        let link = format!("{}/admin/reset-password?token={secret}", self.public_url());
        let mail = Mail {
            to: user.email.clone(),
            subject: "Reset your UCMS password".into(),
            body: format!(
                "Someone asked to reset the password of {}.\n\nTo choose a new one, open this link within an hour:\n\n{link}\n\nOr POST {{\"token\": \"{secret}\", \"password\": \"...\"}} to /api/ucms/auth/password-reset/complete.\n\nIf it wasn't you, ignore this message: your password stays as it is.\n",
                user.email
            ),
        };
        if let Err(e) = self.mailer().send(mail).await {
            tracing::error!(error = %e, "cannot send the password-reset mail");
        }
        self.audit(
            None,
            "auth.password.reset-request",
            Some(&format!("user:{}", user.id)),
            serde_json::json!({ "client": client, "account": true }),
        )
        .await;
        Ok(())
    }

    /// Finishes a password reset: sets the password and ends every session and refresh-token
    /// family of the account.
    pub async fn complete_password_reset(
        &self,
        token: &str,
        new_password: &str,
        client: &str,
    ) -> Result<User, TicketError> {
        let user = self
            .redeem_with_password(TicketKind::Reset, token, new_password, client)
            .await?;
        let (sessions, families) = self.sign_out_everywhere(&user.id).await?;
        self.audit(
            Some(&format!("user:{}", user.id)),
            "auth.password.reset",
            Some(&format!("user:{}", user.id)),
            serde_json::json!({
                "client": client,
                "sessions_ended": sessions,
                "refresh_families_revoked": families,
            }),
        )
        .await;
        Ok(user)
    }

    /// Invites `email` with `roles`: an account without a password, and a mailed link that lets
    /// its owner choose one within 72 hours.
    pub async fn invite(
        &self,
        email: &str,
        roles: &[String],
        actor: Option<&str>,
    ) -> anyhow::Result<User> {
        let email = super::normalize_email(email)?;
        self.check_roles(roles).await?;
        if self.find_user(&email).await?.is_some() {
            anyhow::bail!("a user with the email {email} already exists");
        }
        let user = self.insert_user(&email, "", roles).await?;
        let secret = self
            .create_ticket(TicketKind::Invite, &user.id, INVITE_TTL)
            .await?;
        let link = format!("{}/admin/accept-invite?token={secret}", self.public_url());
        let sent = self
            .mailer()
            .send(Mail {
                to: email.clone(),
                subject: "You are invited to UCMS".into(),
                body: format!(
                    "You are invited to a UCMS site as {email}.\n\nTo accept and choose your password, open this link within 72 hours:\n\n{link}\n\nOr POST {{\"token\": \"{secret}\", \"password\": \"...\"}} to /api/ucms/auth/invite/accept.\n"
                ),
            })
            .await;
        if let Err(e) = sent {
            // Without the mail nobody can accept: take the account back so the invitation can be
            // sent again once the mail server works.
            self.delete_user(&user, actor).await?;
            return Err(e.context("cannot send the invitation"));
        }
        self.audit(
            actor_or_system(actor),
            "user.invite",
            Some(&format!("user:{}", user.id)),
            serde_json::json!({ "email": email, "roles": roles }),
        )
        .await;
        Ok(user)
    }

    /// Accepts an invitation: sets the account's first password.
    pub async fn accept_invite(
        &self,
        token: &str,
        new_password: &str,
        client: &str,
    ) -> Result<User, TicketError> {
        let user = self
            .redeem_with_password(TicketKind::Invite, token, new_password, client)
            .await?;
        self.audit(
            Some(&format!("user:{}", user.id)),
            "user.invite.accept",
            Some(&format!("user:{}", user.id)),
            serde_json::json!({ "client": client }),
        )
        .await;
        Ok(user)
    }
}
