//! Who is calling: users, roles, API tokens, sign-in sessions, and the audit log.
//!
//! [`Identity`] stores accounts and tokens in the site database and turns a bearer token into a
//! [`Principal`] whose permissions are resolved once per request. Permissions are dotted names
//! (`hello.counter.increment`, `ucms.plugins.read`); roles and token scopes hold patterns over
//! them (`*`, `hello.*`, or an exact name). A token acts for its owner, limited to its scopes.

pub mod password;
mod throttle;
mod tokens;

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

pub use throttle::LoginThrottle;
pub use tokens::{AuthError, IssuedToken, TokenInfo, TokenKind};

use crate::db::{Db, now_ms, on_db};

/// Permissions of the host's own API.
pub mod permissions {
    /// List installed plugins.
    pub const PLUGINS_READ: &str = "ucms.plugins.read";
    /// Install, upgrade, roll back, enable, disable and remove plugins.
    pub const PLUGINS_MANAGE: &str = "ucms.plugins.manage";
    /// List and inspect event dead letters.
    pub const EVENTS_READ: &str = "ucms.events.read";
    /// Read the audit log.
    pub const AUDIT_READ: &str = "ucms.audit.read";
}

/// A user account as the host and plugins see it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: String,
}

/// On whose behalf a request or invocation runs.
#[derive(Debug, Clone)]
pub enum Principal {
    Anonymous,
    /// A signed-in user (a session token), with the permission patterns of their roles.
    User {
        user: User,
        permissions: Vec<String>,
    },
    /// An API token acting for `user`, limited to `scopes`.
    Token {
        token_id: String,
        user: User,
        scopes: Vec<String>,
        permissions: Vec<String>,
    },
    /// The host itself: event deliveries and lifecycle calls.
    System,
}

impl Principal {
    /// Whether this principal holds `permission` (a fully qualified name).
    pub fn permits(&self, permission: &str) -> bool {
        match self {
            Self::Anonymous => false,
            Self::System => true,
            Self::User { permissions, .. } => matches_any(permissions, permission),
            Self::Token {
                scopes,
                permissions,
                ..
            } => matches_any(scopes, permission) && matches_any(permissions, permission),
        }
    }

    pub fn user(&self) -> Option<&User> {
        match self {
            Self::User { user, .. } | Self::Token { user, .. } => Some(user),
            Self::Anonymous | Self::System => None,
        }
    }

    /// A short description for logs and the audit log: `user:ID`, `token:ID`, `anonymous`, `system`.
    pub fn actor(&self) -> String {
        match self {
            Self::Anonymous => "anonymous".into(),
            Self::System => "system".into(),
            Self::User { user, .. } => format!("user:{}", user.id),
            Self::Token { token_id, .. } => format!("token:{token_id}"),
        }
    }
}

/// Whether a permission pattern covers `permission`: `*`, an exact name, or `prefix.*`.
pub fn pattern_matches(pattern: &str, permission: &str) -> bool {
    if pattern == "*" || pattern == permission {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => permission
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1),
        None => false,
    }
}

fn matches_any(patterns: &[String], permission: &str) -> bool {
    patterns.iter().any(|p| pattern_matches(p, permission))
}

/// Whether `pattern` is a well-formed permission pattern (for scopes and role grants).
pub fn valid_pattern(pattern: &str) -> bool {
    let body = pattern.strip_suffix(".*").unwrap_or(pattern);
    pattern == "*"
        || (!body.is_empty()
            && body.split('.').all(|seg| {
                !seg.is_empty()
                    && seg.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'
                    })
            }))
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: String,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<serde_json::Value>,
}

/// Accounts, roles, tokens and the audit log of one site.
#[derive(Debug, Clone)]
pub struct Identity {
    db: Db,
    throttle: std::sync::Arc<LoginThrottle>,
}

/// How long a sign-in session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

type UserRow = (String, String, String, bool, i64);

fn user_from_row((id, email, roles, disabled, created_at): UserRow) -> User {
    User {
        id,
        email,
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        disabled,
        created_at: crate::db::rfc3339(created_at),
    }
}

impl Identity {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            throttle: std::sync::Arc::new(LoginThrottle::default()),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }

    /// Creates an account. Emails are unique (case-insensitively); every role must exist.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        roles: &[String],
    ) -> anyhow::Result<User> {
        let email = normalize_email(email)?;
        password::check_strength(password).map_err(anyhow::Error::msg)?;
        for role in roles {
            if self.role_permissions(role).await?.is_none() {
                let known = self.role_names().await?.join(", ");
                anyhow::bail!("there is no role '{role}' (roles: {known})");
            }
        }
        if self.find_user(&email).await?.is_some() {
            anyhow::bail!("a user with the email {email} already exists");
        }
        let hash = password::hash(password.to_string()).await?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let roles_json = serde_json::to_string(roles)?;
        let now = now_ms();
        on_db!(&self.db, write, |pool| {
            sqlx::query("INSERT INTO users (id, email, password_hash, roles, disabled, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&id)
                .bind(&email)
                .bind(&hash)
                .bind(&roles_json)
                .bind(false)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .context("cannot store the user")?;
        self.audit(
            None,
            "user.create",
            Some(&format!("user:{id}")),
            serde_json::json!({ "email": email, "roles": roles }),
        )
        .await;
        Ok(User {
            id,
            email,
            roles: roles.to_vec(),
            disabled: false,
            created_at: crate::db::rfc3339(now),
        })
    }

    pub async fn find_user(&self, email: &str) -> anyhow::Result<Option<User>> {
        let email = email.trim().to_lowercase();
        let row: Option<UserRow> = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT id, email, roles, disabled, created_at FROM users WHERE email = $1",
            )
            .bind(&email)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(user_from_row))
    }

    pub async fn user_by_id(&self, id: &str) -> anyhow::Result<Option<User>> {
        let row: Option<UserRow> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT id, email, roles, disabled, created_at FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(user_from_row))
    }

    pub async fn list_users(&self) -> anyhow::Result<Vec<User>> {
        let rows: Vec<UserRow> = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT id, email, roles, disabled, created_at FROM users ORDER BY email",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(user_from_row).collect())
    }

    /// The permission patterns of a role, or `None` when it doesn't exist.
    pub async fn role_permissions(&self, role: &str) -> anyhow::Result<Option<Vec<String>>> {
        let row: Option<(String,)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT permissions FROM roles WHERE name = $1")
                .bind(role)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(p,)| serde_json::from_str(&p).unwrap_or_default()))
    }

    pub async fn role_names(&self) -> anyhow::Result<Vec<String>> {
        let rows: Vec<(String,)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT name FROM roles ORDER BY name")
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    /// The union of the permission patterns of `user`'s roles.
    pub async fn user_permissions(&self, user: &User) -> anyhow::Result<Vec<String>> {
        let mut all = Vec::new();
        for role in &user.roles {
            all.extend(self.role_permissions(role).await?.unwrap_or_default());
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    /// Checks an email and password; on success opens a session and returns its token.
    /// Failures are deliberately alike (no hint whether the account exists) and audited.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        client: &str,
    ) -> Result<(User, IssuedToken), AuthError> {
        let email = email.trim().to_lowercase();
        if let Err(retry_after) = self.throttle.check(&email, client) {
            self.audit(
                None,
                "auth.sign-in.throttled",
                Some(&email),
                serde_json::json!({ "client": client }),
            )
            .await;
            return Err(AuthError::Throttled { retry_after });
        }
        let row: Option<(String, String)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT id, password_hash FROM users WHERE email = $1")
                .bind(&email)
                .fetch_optional(pool)
                .await
        })
        .map_err(AuthError::internal)?;
        let (user_id, hash) = match row {
            Some(row) => row,
            None => (String::new(), password::decoy_hash().await),
        };
        let ok = password::verify(password.to_string(), hash).await && !user_id.is_empty();
        let user = if ok {
            self.user_by_id(&user_id)
                .await
                .map_err(AuthError::internal)?
        } else {
            None
        };
        let Some(user) = user.filter(|u| !u.disabled) else {
            self.throttle.record_failure(&email, client);
            self.audit(
                None,
                "auth.sign-in.failed",
                Some(&email),
                serde_json::json!({ "client": client }),
            )
            .await;
            return Err(AuthError::BadCredentials);
        };
        self.throttle.record_success(&email);
        let issued = self
            .issue_token(
                &user,
                TokenKind::Session,
                "sign-in",
                &["*".to_string()],
                Some(SESSION_TTL),
            )
            .await
            .map_err(AuthError::internal)?;
        self.audit(
            Some(&format!("user:{}", user.id)),
            "auth.sign-in",
            Some(&format!("user:{}", user.id)),
            serde_json::json!({ "client": client }),
        )
        .await;
        Ok((user, issued))
    }

    /// Records a security-relevant action. Failing to write the audit log is logged, not fatal.
    pub async fn audit(
        &self,
        actor: Option<&str>,
        action: &str,
        target: Option<&str>,
        detail: serde_json::Value,
    ) {
        let detail = detail.to_string();
        let result = on_db!(&self.db, write, |pool| {
            sqlx::query("INSERT INTO audit_log (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
                .bind(now_ms())
                .bind(actor)
                .bind(action)
                .bind(target)
                .bind(&detail)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        });
        if let Err(e) = result {
            tracing::error!(action, error = %e, "cannot write to the audit log");
        }
    }

    /// The newest audit entries, newest first, optionally before `before` (a `seq`).
    pub async fn audit_log(
        &self,
        limit: u32,
        before: Option<i64>,
    ) -> anyhow::Result<Vec<AuditEntry>> {
        type Row = (
            i64,
            i64,
            Option<String>,
            String,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT seq, at, actor, action, target, detail FROM audit_log WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
            )
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(seq, at, actor, action, target, detail)| AuditEntry {
                seq,
                at: crate::db::rfc3339(at),
                actor,
                action,
                target,
                detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
            })
            .collect())
    }
}

fn normalize_email(email: &str) -> anyhow::Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if !valid {
        anyhow::bail!("'{email}' is not an email address");
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_patterns() {
        assert!(pattern_matches("*", "hello.counter.increment"));
        assert!(pattern_matches("hello.*", "hello.counter.increment"));
        assert!(pattern_matches(
            "hello.counter.increment",
            "hello.counter.increment"
        ));
        assert!(!pattern_matches("hello.*", "hellox.counter"));
        assert!(!pattern_matches("hello.*", "hello"));
        assert!(!pattern_matches("hello.counter", "hello.counter.increment"));
        assert!(valid_pattern("hello.*") && valid_pattern("*") && valid_pattern("a.b-c"));
        assert!(!valid_pattern("hello.") && !valid_pattern("Hello") && !valid_pattern("a..b"));
    }

    #[test]
    fn a_token_is_bounded_by_its_scopes_and_its_owner() {
        let user = User {
            id: "u".into(),
            email: "a@b.c".into(),
            roles: vec![],
            disabled: false,
            created_at: String::new(),
        };
        let token = Principal::Token {
            token_id: "t".into(),
            user,
            scopes: vec!["hello.*".into()],
            permissions: vec!["hello.counter.increment".into(), "other.x".into()],
        };
        assert!(token.permits("hello.counter.increment"));
        assert!(!token.permits("other.x"), "outside the token's scopes");
        assert!(
            !token.permits("hello.admin"),
            "outside the owner's permissions"
        );
        assert!(!Principal::Anonymous.permits("hello.counter.increment"));
    }
}
