//! Who is calling: users, roles, API tokens, sign-in sessions, and the audit log.
//!
//! [`Identity`] stores accounts and tokens in the site database and turns a bearer token into a
//! [`Principal`] whose permissions are resolved once per request. Permissions are dotted names
//! (`hello.counter.increment`, `ucms.plugins.read`); roles and token scopes hold patterns over
//! them (`*`, `hello.*`, or an exact name). A token acts for its owner, limited to its scopes.

pub mod flow_error;
pub mod jwt;
pub mod mail;
pub mod oidc;
pub mod password;
mod random;
pub mod refresh;
mod roles;
mod sessions;
mod throttle;
mod tokens;
pub mod totp;
mod users;

use anyhow::Context;
use serde::Serialize;

pub use roles::{ADMIN_ROLE, PUBLIC_ROLE, Role, RoleError};
pub use sessions::{OpenedSession, csrf_token_for};
pub use throttle::{
    Limits, LoginThrottle, MemoryThrottle, RedisThrottle, Refusal, ThrottleBackend,
};
pub use tokens::{AuthError, Authenticated, IssuedToken, SessionMeta, TokenInfo, TokenKind};
pub use users::{INVITE_TTL, RESET_TTL, TicketError, TicketKind, UserPage};

use crate::db::{Db, now_ms, on_db};

/// Permissions of the host's own API.
pub mod permissions {
    /// List installed plugins.
    pub const PLUGINS_READ: &str = "ucms.plugins.read";
    /// Install, upgrade, roll back, enable, disable and remove plugins.
    pub const PLUGINS_MANAGE: &str = "ucms.plugins.manage";
    /// List and inspect event dead letters.
    pub const EVENTS_READ: &str = "ucms.events.read";
    /// Replay and discard event dead letters.
    pub const EVENTS_MANAGE: &str = "ucms.events.manage";
    /// Read the audit log.
    pub const AUDIT_READ: &str = "ucms.audit.read";
    /// List users and see their roles.
    pub const USERS_READ: &str = "ucms.users.read";
    /// Create, invite, change, disable and delete users.
    pub const USERS_MANAGE: &str = "ucms.users.manage";
    /// Create, change and delete roles.
    pub const ROLES_MANAGE: &str = "ucms.roles.manage";
    /// List and revoke anyone's API tokens (one's own need no permission).
    pub const TOKENS_MANAGE: &str = "ucms.tokens.manage";
    /// Read the operator's policy and check plugins against it.
    pub const POLICY_READ: &str = "ucms.policy.read";
    /// Reload the operator's policy.
    pub const POLICY_MANAGE: &str = "ucms.policy.manage";

    /// Every host permission with its description.
    pub const ALL: [(&str, &str); 11] = [
        (PLUGINS_READ, "List installed plugins"),
        (
            PLUGINS_MANAGE,
            "Install, upgrade, roll back, enable, disable and remove plugins",
        ),
        (EVENTS_READ, "List and inspect event dead letters"),
        (EVENTS_MANAGE, "Replay and discard event dead letters"),
        (AUDIT_READ, "Read the audit log"),
        (USERS_READ, "List users and see their roles"),
        (
            USERS_MANAGE,
            "Create, invite, change, disable and delete users",
        ),
        (ROLES_MANAGE, "Create, change and delete roles"),
        (TOKENS_MANAGE, "List and revoke anyone's API tokens"),
        (
            POLICY_READ,
            "Read the operator's policy and check plugins against it",
        ),
        (POLICY_MANAGE, "Reload the operator's policy"),
    ];
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
    /// No credentials: the permissions of the built-in `public` role.
    Anonymous { permissions: Vec<String> },
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

/// How far a principal holds a permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    Denied,
    Granted,
    /// Held only under these conditions (sorted, deduplicated), which the plugin evaluates:
    /// `own` means "only their own items".
    Only(Vec<String>),
}

impl Principal {
    /// An anonymous caller without any permission (the `public` role resolved to nothing).
    pub fn anonymous() -> Self {
        Self::Anonymous {
            permissions: Vec::new(),
        }
    }

    /// How far this principal holds `permission` (a fully qualified name): `Granted` when an
    /// unconditional grant covers it, `Only(conditions)` when only conditional grants
    /// (`notes.notes.edit:own`) do, else `Denied`. A token is first bounded by its scopes, which
    /// are plain patterns.
    pub fn access(&self, permission: &str) -> Access {
        match self {
            Self::System => Access::Granted,
            Self::Anonymous { permissions } | Self::User { permissions, .. } => {
                grant_access(permissions, permission)
            }
            Self::Token {
                scopes,
                permissions,
                ..
            } => {
                if scopes.iter().any(|s| pattern_matches(s, permission)) {
                    grant_access(permissions, permission)
                } else {
                    Access::Denied
                }
            }
        }
    }

    /// Whether this principal holds `permission` at all (conditionally or not): the host's route
    /// check; the plugin refines conditional access.
    pub fn permits(&self, permission: &str) -> bool {
        self.access(permission) != Access::Denied
    }

    /// Whether the caller presented no credentials.
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Self::Anonymous { .. })
    }

    pub fn user(&self) -> Option<&User> {
        match self {
            Self::User { user, .. } | Self::Token { user, .. } => Some(user),
            Self::Anonymous { .. } | Self::System => None,
        }
    }

    /// A short description for logs and the audit log: `user:ID`, `token:ID`, `anonymous`, `system`.
    pub fn actor(&self) -> String {
        match self {
            Self::Anonymous { .. } => "anonymous".into(),
            Self::System => "system".into(),
            Self::User { user, .. } => format!("user:{}", user.id),
            Self::Token { token_id, .. } => format!("token:{token_id}"),
        }
    }
}

/// Whether a permission pattern covers `permission`. Patterns are dotted like permissions; a `*`
/// segment stands for any one segment, a final `*` for one or more (`hello.*`, `*.read`), and `*`
/// alone for everything. A leading `*` stands for any plugin, never the host (`ucms.…`).
pub fn pattern_matches(pattern: &str, permission: &str) -> bool {
    if pattern == "*" || pattern == permission {
        return true;
    }
    let pattern: Vec<&str> = pattern.split('.').collect();
    let permission: Vec<&str> = permission.split('.').collect();
    if pattern[0] == "*" && permission[0] == "ucms" {
        return false;
    }
    let segment = |(p, s): (&&str, &&str)| *p == "*" || p == s;
    match pattern.split_last() {
        Some((&"*", init)) => {
            permission.len() > init.len() && init.iter().zip(&permission).all(segment)
        }
        _ => pattern.len() == permission.len() && pattern.iter().zip(&permission).all(segment),
    }
}

/// Splits a role grant into its pattern and its conditions (empty when unconditional).
pub fn split_grant(grant: &str) -> (&str, Vec<&str>) {
    match grant.split_once(':') {
        Some((pattern, conditions)) => (
            pattern,
            conditions.split(',').filter(|c| !c.is_empty()).collect(),
        ),
        None => (grant, Vec::new()),
    }
}

fn grant_access(grants: &[String], permission: &str) -> Access {
    let mut conditions: Vec<String> = Vec::new();
    for grant in grants {
        let (pattern, conds) = split_grant(grant);
        if !pattern_matches(pattern, permission) {
            continue;
        }
        if conds.is_empty() {
            return Access::Granted;
        }
        conditions.extend(conds.into_iter().map(str::to_string));
    }
    if conditions.is_empty() {
        return Access::Denied;
    }
    conditions.sort();
    conditions.dedup();
    Access::Only(conditions)
}

/// Whether `pattern` is a well-formed permission pattern (for scopes and role grants).
pub fn valid_pattern(pattern: &str) -> bool {
    pattern.split('.').all(|seg| {
        seg == "*"
            || (!seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'))
    })
}

/// Whether `grant` is a well-formed role grant: a permission pattern optionally followed by `:`
/// and comma-separated condition names (`notes.notes.edit:own`, conditions match `[a-z0-9_-]+`).
pub fn valid_grant(grant: &str) -> bool {
    match grant.split_once(':') {
        None => valid_pattern(grant),
        Some((pattern, conditions)) => {
            valid_pattern(pattern)
                && conditions.split(',').all(|c| {
                    !c.is_empty()
                        && c.chars().all(|ch| {
                            ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_'
                        })
                })
        }
    }
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

/// Which audit entries to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub limit: u32,
    /// Only entries with a smaller `seq` (the previous page's `next_before`).
    pub before: Option<i64>,
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target: Option<String>,
    /// Only entries at or after this time (Unix milliseconds).
    pub since: Option<i64>,
}

/// Grants read at a point in time.
type CachedGrants = (std::time::Instant, Vec<String>);

/// Accounts, roles, tokens and the audit log of one site.
#[derive(Debug, Clone)]
pub struct Identity {
    db: Db,
    throttle: LoginThrottle,
    mailer: std::sync::Arc<dyn mail::Mailer>,
    /// The site's public URL for links in mail (no trailing slash).
    public_url: std::sync::Arc<str>,
    /// The `public` role's grants, read at most once a second (every anonymous request needs them).
    public_grants: std::sync::Arc<std::sync::Mutex<Option<CachedGrants>>>,
    /// JWT and refresh-token settings and the signing-key cache (see [`jwt::AuthState`]).
    auth: std::sync::Arc<jwt::AuthState>,
    /// OpenID Connect discovery documents, key sets and the HTTP client.
    oidc: std::sync::Arc<oidc::OidcCache>,
}

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
            throttle: LoginThrottle::default(),
            mailer: std::sync::Arc::new(mail::LogMailer),
            public_url: "http://127.0.0.1:8080".into(),
            public_grants: Default::default(),
            auth: std::sync::Arc::new(jwt::AuthState::new(Default::default())),
            oidc: Default::default(),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn throttle(&self) -> &LoginThrottle {
        &self.throttle
    }

    /// This identity with the site's brute-force limits (shared through Redis when
    /// `[cluster] redis-url` is set), mailer (`[auth.smtp]`) and public URL.
    pub fn with_site_config(mut self, config: &crate::config::Config) -> anyhow::Result<Self> {
        let limits = Limits::from_config(&config.auth);
        let backend: std::sync::Arc<dyn ThrottleBackend> = match &config.cluster.redis_url {
            Some(url) => {
                let namespace = config.cluster.namespace.as_deref().unwrap_or("ucms");
                std::sync::Arc::new(RedisThrottle::new(url, namespace)?)
            }
            None => std::sync::Arc::new(MemoryThrottle::default()),
        };
        self.throttle = LoginThrottle::new(backend, limits);
        self.mailer = mail::from_config(config.auth.smtp.as_ref())?;
        self.public_url = config
            .auth
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.server.listen))
            .trim_end_matches('/')
            .into();
        Ok(self)
    }

    /// This identity with another throttle (tests use it to share one between sites).
    pub fn with_throttle(mut self, throttle: LoginThrottle) -> Self {
        self.throttle = throttle;
        self
    }

    /// This identity with another mailer.
    pub fn with_mailer(mut self, mailer: std::sync::Arc<dyn mail::Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    pub fn mailer(&self) -> &dyn mail::Mailer {
        &*self.mailer
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Creates an account. Emails are unique (case-insensitively); every role must exist.
    pub async fn create_user(
        &self,
        email: &str,
        password: &str,
        roles: &[String],
    ) -> anyhow::Result<User> {
        self.create_user_by(email, password, roles, None).await
    }

    /// Creates an account on behalf of `actor` (audited as `user.create`).
    pub async fn create_user_by(
        &self,
        email: &str,
        password: &str,
        roles: &[String],
        actor: Option<&str>,
    ) -> anyhow::Result<User> {
        let email = normalize_email(email)?;
        password::check_strength(password).map_err(anyhow::Error::msg)?;
        self.check_roles(roles).await?;
        if self.find_user(&email).await?.is_some() {
            anyhow::bail!("a user with the email {email} already exists");
        }
        let hash = password::hash(password.to_string()).await?;
        let user = self.insert_user(&email, &hash, roles).await?;
        self.audit(
            actor.or(Some("system")),
            "user.create",
            Some(&format!("user:{}", user.id)),
            serde_json::json!({ "email": email, "roles": roles }),
        )
        .await;
        Ok(user)
    }

    /// Stores a new account; an empty `hash` means no password yet (an invitation).
    async fn insert_user(&self, email: &str, hash: &str, roles: &[String]) -> anyhow::Result<User> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let roles_json = serde_json::to_string(roles)?;
        let now = now_ms();
        on_db!(&self.db, write, |pool| {
            sqlx::query("INSERT INTO users (id, email, password_hash, roles, disabled, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&id)
                .bind(email)
                .bind(hash)
                .bind(&roles_json)
                .bind(false)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .context("cannot store the user")?;
        Ok(User {
            id,
            email: email.to_string(),
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

    /// Checks an email and password (the password sign-in), throttled per account and address.
    /// Failures are deliberately alike (no hint whether the account exists) and audited; a
    /// session is opened by the caller (`server::sessions::start_session`).
    pub async fn check_sign_in(
        &self,
        email: &str,
        password: &str,
        client: &str,
    ) -> Result<User, AuthError> {
        self.check_credentials(email, password, client, "sign-in", serde_json::json!({}))
            .await
    }

    /// The password check behind every password flow: the sign-in (`purpose` "sign-in") and the
    /// token endpoint's password grant ("token"), each throttled under its own purpose. A
    /// failure is audited as `auth.sign-in.failed` with `detail` (plus the client) and counted.
    /// The failure count is cleared by the caller once every factor passed: clearing it here
    /// would let someone who knows the password keep guessing second-factor codes.
    pub(crate) async fn check_credentials(
        &self,
        email: &str,
        password: &str,
        client: &str,
        purpose: &str,
        mut detail: serde_json::Value,
    ) -> Result<User, AuthError> {
        let email = email.trim().to_lowercase();
        self.throttle_check(&email, client, purpose).await?;
        let row: Option<(String, String)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT id, password_hash FROM users WHERE email = $1")
                .bind(&email)
                .fetch_optional(pool)
                .await
        })
        .map_err(AuthError::internal)?;
        // An account without a password (invited, or made by an OIDC sign-in) is checked
        // against the decoy like an unknown one, so both take as long as a real check.
        let (user_id, hash) = match row {
            Some((id, hash)) if !hash.is_empty() => (id, hash),
            _ => (String::new(), password::decoy_hash().await),
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
            detail["client"] = serde_json::json!(client);
            self.audit(None, "auth.sign-in.failed", Some(&email), detail)
                .await;
            self.throttle_failure(&email, client, purpose).await;
            return Err(AuthError::BadCredentials);
        };
        Ok(user)
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
        self.audit_query(&AuditFilter {
            limit,
            before,
            ..AuditFilter::default()
        })
        .await
    }

    /// Audit entries matching `filter`, newest first.
    pub async fn audit_query(&self, filter: &AuditFilter) -> anyhow::Result<Vec<AuditEntry>> {
        let AuditFilter {
            limit,
            before,
            ref action,
            ref actor,
            ref target,
            since,
        } = *filter;
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
                "SELECT seq, at, actor, action, target, detail FROM audit_log \
                 WHERE seq < $1 AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR actor = $4) \
                 AND ($5 IS NULL OR target = $5) AND at >= $6 \
                 ORDER BY seq DESC LIMIT $2",
            )
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit.clamp(1, 1000)))
            .bind(action.as_deref())
            .bind(actor.as_deref())
            .bind(target.as_deref())
            .bind(since.unwrap_or(0))
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
        assert!(pattern_matches("*.read", "notes.read"));
        assert!(!pattern_matches("*.read", "notes.notes.read"));
        assert!(pattern_matches("*.*.read", "notes.notes.read"));
        assert!(pattern_matches("*.*", "notes.notes.read"));
        assert!(
            !pattern_matches("*.*.read", "ucms.audit.read") && !pattern_matches("*.*", "ucms.x"),
            "a leading wildcard stands for plugins, not the host"
        );
        assert!(valid_pattern("*.*.read") && !valid_pattern("*x.read"));
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
        assert!(!Principal::anonymous().permits("hello.counter.increment"));
    }

    #[test]
    fn conditional_grants_give_conditional_access() {
        let user = User {
            id: "u".into(),
            email: "a@b.c".into(),
            roles: vec![],
            disabled: false,
            created_at: String::new(),
        };
        let p = Principal::User {
            user: user.clone(),
            permissions: vec![
                "notes.notes.edit:own".into(),
                "notes.*:published,own".into(),
                "notes.notes.read".into(),
            ],
        };
        assert_eq!(
            p.access("notes.notes.edit"),
            Access::Only(vec!["own".into(), "published".into()])
        );
        assert!(p.permits("notes.notes.edit"));
        assert_eq!(p.access("notes.notes.read"), Access::Granted);
        assert_eq!(p.access("other.x"), Access::Denied);
        assert_eq!(
            Principal::Anonymous {
                permissions: vec!["notes.notes.read".into()]
            }
            .access("notes.notes.read"),
            Access::Granted
        );
        assert_eq!(Principal::System.access("anything.at.all"), Access::Granted);
        let token = Principal::Token {
            token_id: "t".into(),
            user,
            scopes: vec!["notes.notes.edit".into()],
            permissions: vec!["notes.notes.edit:own".into(), "notes.notes.read".into()],
        };
        assert_eq!(
            token.access("notes.notes.edit"),
            Access::Only(vec!["own".into()])
        );
        assert_eq!(token.access("notes.notes.read"), Access::Denied);
        assert!(valid_grant("notes.notes.edit:own") && valid_grant("a.*:own,team-1"));
        assert!(!valid_grant("a.b:") && !valid_grant("a.b:Own") && !valid_grant("a.b:own,"));
    }
}
