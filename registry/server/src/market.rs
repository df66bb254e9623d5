//! The marketplace's state: accounts of the people who rate and review plugins, their sessions,
//! reviews and the reports on them, and what the public pages show about publishers, ratings and
//! downloads.
//!
//! Marketplace accounts are separate from publishers: a publisher token publishes, an account
//! reviews. Passwords are argon2id hashes; a session is a random secret whose SHA-256 is stored,
//! paired with a CSRF token that every cookie-authenticated write must echo.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use ucms_db::on_db;
use ucms_package::keys::KeyId;
use ucms_package::unix_now;

use crate::{Registry, RegistryError};

/// How long a sign-in lasts.
pub const SESSION_TTL_MS: i64 = 14 * 24 * 3600 * 1000;
/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;
const MAX_PASSWORD_LEN: usize = 1024;
const MAX_REVIEW_LEN: usize = 5000;
const MAX_REASON_LEN: usize = 1000;

/// A marketplace account, as others see it.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: String,
    pub name: String,
    #[serde(skip)]
    pub email: String,
    pub admin: bool,
}

/// A signed-in session: `token` goes in the cookie, `csrf` in forms and the `X-CSRF-Token` header.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub csrf: String,
    pub user: User,
}

impl Session {
    /// Whether `presented` is this session's CSRF token, compared in constant time.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        !presented.is_empty() && bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// One review of a package.
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub package: String,
    pub author: String,
    pub author_name: String,
    pub rating: i64,
    pub body: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A package's average rating.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Rating {
    /// Mean of the ratings, 0 when there are none.
    pub average: f64,
    pub count: i64,
}

impl Rating {
    fn from_sum(sum: i64, count: i64) -> Self {
        Self {
            average: if count > 0 {
                (sum as f64 / count as f64 * 100.0).round() / 100.0
            } else {
                0.0
            },
            count,
        }
    }
}

/// A report on a review, listed for the registry's admins.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub package: String,
    pub author: String,
    pub author_name: String,
    pub rating: i64,
    pub body: String,
    pub reporter: String,
    pub reporter_name: String,
    pub reason: String,
    pub created_at: i64,
}

/// A publisher's key as its page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PublisherKey {
    pub key_id: String,
    pub created_at: i64,
    /// Unix seconds the registry's endorsement lasts until.
    pub endorsed_until: Option<i64>,
    /// Whether sites reading this registry trust the key now.
    pub trusted: bool,
    pub revoked: Option<String>,
}

/// A publisher: its keys, whether the registry vouches for it, and its packages.
#[derive(Debug, Clone, Serialize)]
pub struct PublisherInfo {
    pub name: String,
    pub created_at: i64,
    /// At least one of its keys is endorsed by this registry, unexpired and not revoked.
    pub verified: bool,
    pub keys: Vec<PublisherKey>,
    pub packages: Vec<crate::store::SearchHit>,
}

/// Download counts of a package.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Downloads {
    pub total: i64,
    pub versions: BTreeMap<String, i64>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source works");
    hex::encode(buf)
}

fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

async fn hash_password(password: String) -> Result<String, RegistryError> {
    use argon2::password_hash::PasswordHasher;
    tokio::task::spawn_blocking(move || {
        argon2::Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| RegistryError::Internal(anyhow::anyhow!("cannot hash a password: {e}")))
    })
    .await
    .map_err(|e| RegistryError::Internal(e.into()))?
}

async fn verify_password(password: String, phc: String) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, checked when an account doesn't exist so that signing in takes
/// the same time either way.
async fn decoy_hash() -> String {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY
        .get_or_init(|| async { hash_password(random_hex(24)).await.unwrap_or_default() })
        .await
        .clone()
}

fn normalize_email(email: &str) -> Result<String, RegistryError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if !valid {
        return Err(RegistryError::invalid(
            "invalid_email",
            format!("'{email}' is not an email address: use the form name@example.com"),
        ));
    }
    Ok(email)
}

type UserRow = (String, String, String, bool);

fn user_of((id, email, name, admin): UserRow) -> User {
    User {
        id,
        email,
        name,
        admin,
    }
}

impl Registry {
    /// Creates a marketplace account and signs it in.
    pub async fn sign_up(
        &self,
        email: &str,
        name: &str,
        password: &str,
    ) -> Result<Session, RegistryError> {
        let email = normalize_email(email)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(RegistryError::invalid(
                "invalid_name",
                "the display name must be 1 to 64 characters, without control characters",
            ));
        }
        let length = password.chars().count();
        if length < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
            return Err(RegistryError::invalid(
                "weak_password",
                format!(
                    "the password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters long"
                ),
            ));
        }
        let hash = hash_password(password.to_string()).await?;
        let id = random_hex(8);
        let inserted = on_db!(&self.db, write, |pool| {
            sqlx::query(
                "INSERT INTO users (id, email, name, password_hash, admin, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (email) DO NOTHING",
            )
            .bind(&id)
            .bind(&email)
            .bind(name)
            .bind(&hash)
            .bind(false)
            .bind(ucms_db::now_ms())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        if inserted == 0 {
            return Err(RegistryError::conflict(
                "an account with this email already exists: sign in instead",
            ));
        }
        tracing::info!(user = %id, "marketplace account created");
        self.new_session(User {
            id,
            email,
            name: name.to_string(),
            admin: false,
        })
        .await
    }

    /// Signs in with an email and password; attempts are rate-limited per email address.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<Session, RegistryError> {
        let invalid = || RegistryError::unauthorized("the email or the password is wrong");
        let email = normalize_email(email).map_err(|_| invalid())?;
        self.login_limiter.admit(&email).map_err(|_| {
            RegistryError::too_many(
                "too many sign-in attempts for this account; wait a minute and try again",
                60,
            )
        })?;
        let row: Option<(String, String, String, bool, String)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT id, email, name, admin, password_hash FROM users WHERE email = $1",
            )
            .bind(&email)
            .fetch_optional(pool)
            .await
        })?;
        let (phc, user) = match row {
            Some((id, email, name, admin, phc)) => (phc, Some(user_of((id, email, name, admin)))),
            None => (decoy_hash().await, None),
        };
        let matches = verify_password(password.to_string(), phc).await;
        match user {
            Some(user) if matches => self.new_session(user).await,
            _ => Err(invalid()),
        }
    }

    async fn new_session(&self, user: User) -> Result<Session, RegistryError> {
        let token = random_hex(32);
        let csrf = random_hex(24);
        let now = ucms_db::now_ms();
        on_db!(&self.db, write, |pool| {
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(hash_token(&token))
            .bind(&user.id)
            .bind(&csrf)
            .bind(now)
            .bind(now + SESSION_TTL_MS)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(Session { token, csrf, user })
    }

    /// The session a cookie's token belongs to, if it is live.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, RegistryError> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let row: Option<(String, String, String, bool, String)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT u.id, u.email, u.name, u.admin, s.csrf FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
            )
            .bind(hash_token(token))
            .bind(ucms_db::now_ms())
            .fetch_optional(pool)
            .await
        })?;
        Ok(row.map(|(id, email, name, admin, csrf)| Session {
            token: token.to_string(),
            csrf,
            user: user_of((id, email, name, admin)),
        }))
    }

    /// Ends a session.
    pub async fn sign_out(&self, token: &str) -> Result<(), RegistryError> {
        on_db!(&self.db, write, |pool| {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1 OR expires_at <= $2")
                .bind(hash_token(token))
                .bind(ucms_db::now_ms())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Makes an account a registry admin (who sees reports), or not.
    pub async fn set_admin(&self, email: &str, admin: bool) -> Result<(), RegistryError> {
        let email = normalize_email(email)?;
        let updated = on_db!(&self.db, write, |pool| {
            sqlx::query("UPDATE users SET admin = $1 WHERE email = $2")
                .bind(admin)
                .bind(&email)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if updated == 0 {
            return Err(RegistryError::not_found(format!(
                "there is no marketplace account '{email}'"
            )));
        }
        Ok(())
    }

    /// Writes or replaces `user`'s review of `package`.
    pub async fn put_review(
        &self,
        user: &User,
        package: &str,
        rating: i64,
        body: &str,
    ) -> Result<Review, RegistryError> {
        if !(1..=5).contains(&rating) {
            return Err(RegistryError::invalid(
                "invalid_rating",
                format!("the rating is {rating}; give 1 to 5 stars"),
            ));
        }
        let body = body.trim();
        if body.chars().count() > MAX_REVIEW_LEN {
            return Err(RegistryError::invalid(
                "review_too_long",
                format!("a review is at most {MAX_REVIEW_LEN} characters"),
            ));
        }
        let now = ucms_db::now_ms();
        on_db!(&self.db, write, |pool| {
            sqlx::query(
                "INSERT INTO reviews (package, user_id, rating, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (package, user_id) DO UPDATE SET rating = excluded.rating, body = excluded.body, updated_at = excluded.updated_at",
            )
            .bind(package)
            .bind(&user.id)
            .bind(rating)
            .bind(body)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| {
            RegistryError::or_missing(e, || format!("no package '{package}' is published here"))
        })?;
        self.review(package, &user.id).await?.ok_or_else(|| {
            RegistryError::Internal(anyhow::anyhow!("a review just written is missing"))
        })
    }

    /// Deletes `user`'s own review of `package`.
    pub async fn delete_review(&self, user: &User, package: &str) -> Result<(), RegistryError> {
        let deleted = on_db!(&self.db, write, |pool| {
            sqlx::query("DELETE FROM reviews WHERE package = $1 AND user_id = $2")
                .bind(package)
                .bind(&user.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if deleted == 0 {
            return Err(RegistryError::not_found(format!(
                "you have not reviewed '{package}'"
            )));
        }
        Ok(())
    }

    pub async fn review(
        &self,
        package: &str,
        author: &str,
    ) -> Result<Option<Review>, RegistryError> {
        Ok(self
            .reviews_where(package, Some(author))
            .await?
            .into_iter()
            .next())
    }

    /// A package's reviews, most recently changed first.
    pub async fn reviews(&self, package: &str) -> Result<Vec<Review>, RegistryError> {
        self.reviews_where(package, None).await
    }

    async fn reviews_where(
        &self,
        package: &str,
        author: Option<&str>,
    ) -> Result<Vec<Review>, RegistryError> {
        type Row = (String, String, String, i64, String, i64, i64);
        let rows: Vec<Row> = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT r.package, r.user_id, u.name, r.rating, r.body, r.created_at, r.updated_at \
                 FROM reviews r JOIN users u ON u.id = r.user_id \
                 WHERE r.package = $1 AND ($2 IS NULL OR r.user_id = $2) \
                 ORDER BY r.updated_at DESC, r.user_id",
            )
            .bind(package)
            .bind(author)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(package, author, author_name, rating, body, created_at, updated_at)| Review {
                    package,
                    author,
                    author_name,
                    rating,
                    body,
                    created_at,
                    updated_at,
                },
            )
            .collect())
    }

    /// Reports a review to the registry's admins. Reporting the same review twice is one report.
    pub async fn report_review(
        &self,
        reporter: &User,
        package: &str,
        author: &str,
        reason: &str,
    ) -> Result<(), RegistryError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_LEN {
            return Err(RegistryError::invalid(
                "invalid_reason",
                format!(
                    "say why the review should be looked at, in 1 to {MAX_REASON_LEN} characters"
                ),
            ));
        }
        if reporter.id == author {
            return Err(RegistryError::bad_request(
                "you cannot report your own review; edit or delete it instead",
            ));
        }
        on_db!(&self.db, write, |pool| {
            sqlx::query(
                "INSERT INTO review_reports (package, author, reporter, reason, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (package, author, reporter) DO NOTHING",
            )
            .bind(package)
            .bind(author)
            .bind(&reporter.id)
            .bind(reason)
            .bind(ucms_db::now_ms())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| {
            RegistryError::or_missing(e, || {
                format!("there is no review of '{package}' by '{author}'")
            })
        })?;
        tracing::info!(package, author, reporter = %reporter.id, "review reported");
        Ok(())
    }

    /// Every open report, newest first.
    pub async fn reports(&self) -> Result<Vec<Report>, RegistryError> {
        type Row = (
            String,
            String,
            String,
            i64,
            String,
            String,
            String,
            String,
            i64,
        );
        let rows: Vec<Row> = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT p.package, p.author, a.name, r.rating, r.body, p.reporter, b.name, p.reason, p.created_at \
                 FROM review_reports p \
                 JOIN reviews r ON r.package = p.package AND r.user_id = p.author \
                 JOIN users a ON a.id = p.author JOIN users b ON b.id = p.reporter \
                 ORDER BY p.created_at DESC",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    package,
                    author,
                    author_name,
                    rating,
                    body,
                    reporter,
                    reporter_name,
                    reason,
                    created_at,
                )| Report {
                    package,
                    author,
                    author_name,
                    rating,
                    body,
                    reporter,
                    reporter_name,
                    reason,
                    created_at,
                },
            )
            .collect())
    }

    /// Average rating and count of every rated package.
    pub(crate) async fn ratings(&self) -> Result<BTreeMap<String, Rating>, RegistryError> {
        let rows: Vec<(String, i64, i64)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT package, CAST(SUM(rating) AS BIGINT), COUNT(*) FROM reviews GROUP BY package",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(p, sum, count)| (p, Rating::from_sum(sum, count)))
            .collect())
    }

    pub async fn rating(&self, package: &str) -> Result<Rating, RegistryError> {
        let (sum, count): (Option<i64>, i64) = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT CAST(SUM(rating) AS BIGINT), COUNT(*) FROM reviews WHERE package = $1",
            )
            .bind(package)
            .fetch_one(pool)
            .await
        })?;
        Ok(Rating::from_sum(sum.unwrap_or(0), count))
    }

    /// Download counts, per version and in total.
    pub async fn downloads(&self, package: &str) -> Result<Downloads, RegistryError> {
        let rows: Vec<(String, i64)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT version, downloads FROM versions WHERE package = $1")
                .bind(package)
                .fetch_all(pool)
                .await
        })?;
        let versions: BTreeMap<String, i64> = rows.into_iter().collect();
        Ok(Downloads {
            total: versions.values().sum(),
            versions,
        })
    }

    /// Each version's README.md and CHANGELOG.md, as published.
    pub async fn documents(
        &self,
        package: &str,
    ) -> Result<BTreeMap<String, (Option<String>, Option<String>)>, RegistryError> {
        let rows: Vec<(String, Option<String>, Option<String>)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT version, readme, changelog FROM versions WHERE package = $1")
                .bind(package)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(|(v, r, c)| (v, (r, c))).collect())
    }

    /// The publishers that hold at least one key this registry endorses, unexpired and unrevoked.
    pub(crate) async fn verified_publishers(&self) -> Result<BTreeSet<String>, RegistryError> {
        let keys: Vec<(String, String)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT key_id, publisher FROM keys")
                .fetch_all(pool)
                .await
        })?;
        let trust = self.trust().await?;
        let now = unix_now();
        Ok(keys
            .into_iter()
            .filter(|(key_id, publisher)| {
                trust
                    .resolve(&KeyId(key_id.clone()), now)
                    .is_ok_and(|t| &t.publisher == publisher)
            })
            .map(|(_, publisher)| publisher)
            .collect())
    }

    /// A publisher's page: its keys, whether it is verified, and its packages.
    pub async fn publisher_info(&self, name: &str) -> Result<PublisherInfo, RegistryError> {
        let row: Option<(i64,)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT created_at FROM publishers WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
        })?;
        let (created_at,) =
            row.ok_or_else(|| RegistryError::not_found(format!("there is no publisher '{name}'")))?;
        let rows: Vec<(String, i64, String, Option<String>)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT key_id, created_at, endorsement, revocation FROM keys WHERE publisher = $1 ORDER BY created_at",
            )
            .bind(name)
            .fetch_all(pool)
            .await
        })?;
        let trust = self.trust().await?;
        let now = unix_now();
        let keys: Vec<PublisherKey> = rows
            .into_iter()
            .map(|(key_id, created_at, endorsement, revocation)| {
                let endorsement: Option<ucms_package::trust::Endorsement> =
                    serde_json::from_str(&endorsement).ok();
                let revocation: Option<ucms_package::trust::Revocation> =
                    revocation.and_then(|r| serde_json::from_str(&r).ok());
                PublisherKey {
                    trusted: trust
                        .resolve(&KeyId(key_id.clone()), now)
                        .is_ok_and(|t| t.publisher == name),
                    key_id,
                    created_at,
                    endorsed_until: endorsement.map(|e| e.not_after),
                    revoked: revocation.map(|r| r.reason),
                }
            })
            .collect();
        let owned: Vec<(String,)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT package FROM owners WHERE publisher = $1")
                .bind(name)
                .fetch_all(pool)
                .await
        })?;
        let owned: BTreeSet<String> = owned.into_iter().map(|(p,)| p).collect();
        let packages = self
            .search(&crate::store::SearchParams {
                per_page: 200,
                ..Default::default()
            })
            .await?
            .packages
            .into_iter()
            .filter(|hit| owned.contains(&hit.latest.id))
            .collect();
        Ok(PublisherInfo {
            name: name.to_string(),
            created_at,
            verified: keys.iter().any(|k| k.trusted),
            keys,
            packages,
        })
    }
}
