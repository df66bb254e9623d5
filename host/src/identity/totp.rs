//! TOTP multi-factor sign-in (RFC 6238: SHA-1, 6 digits, 30-second steps) and recovery codes.
//!
//! Enrolment stores a secret as *pending*; confirming it with a first code enables it and hands
//! out ten recovery codes, once (stored as SHA-256, each single-use). The secret itself is stored
//! as it is: verifying a code needs it. A code is accepted one step either side of now and never
//! twice: the last step used is remembered and only later steps pass.
//!
//! A password sign-in of an enrolled user yields an *MFA challenge* instead of a session: a
//! single-use token (stored hashed) valid for five minutes and five wrong codes.

use std::time::Duration;

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::flow_error::FlowError;
use super::{AuthError, Identity, User};
use crate::db::{now_ms, on_db};

const STEP_SECS: u64 = 30;
const DIGITS: u8 = 6;
const RECOVERY_CODES: usize = 10;
const CHALLENGE_PREFIX: &str = "ucmsm_";
const CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);
const CHALLENGE_MAX_FAILURES: i32 = 5;

/// A pending enrolment: what the authenticator app needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Enrolment {
    /// The secret in base32, for typing in.
    pub secret: String,
    /// An `otpauth://totp/…` URI, for a QR code.
    pub otpauth_uri: String,
}

/// A second factor presented at sign-in or to disable TOTP.
#[derive(Debug, Clone, Copy)]
pub enum Factor<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
}

fn totp_for(secret: &str, issuer: &str, account: &str) -> anyhow::Result<Totp> {
    let secret = Secret::try_from_base32(secret)
        .map_err(|e| anyhow::anyhow!("the stored TOTP secret is not base32: {e:?}"))?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(1)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .with_issuer(Some(issuer.replace(':', "")))
        .with_account_name(account.replace(':', ""))
        .build()
        .map_err(|e| anyhow::anyhow!("cannot use the TOTP secret: {e}"))
}

/// The code of `secret` (base32) at time step `step`; for tests and tools.
pub fn code_at(secret: &str, step: u64) -> anyhow::Result<String> {
    Ok(totp_for(secret, "ucms", "user")?
        .generate(step * STEP_SECS)
        .to_string())
}

fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn bad_code() -> FlowError {
    FlowError::unauthorized(
        "invalid_mfa_code",
        "the code is wrong or was already used; enter the current code from the authenticator app",
    )
}

impl Identity {
    /// Whether `user_id` signs in with TOTP.
    pub async fn totp_enabled(&self, user_id: &str) -> anyhow::Result<bool> {
        let row: Option<(bool,)> = on_db!(self.db(), read, |pool| {
            sqlx::query_as("SELECT enabled FROM user_totp WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.is_some_and(|(enabled,)| enabled))
    }

    /// Starts (or restarts) enrolment: a new pending secret. Refused when TOTP is already enabled.
    pub async fn totp_enrol(&self, user: &User) -> Result<Enrolment, FlowError> {
        if self
            .totp_enabled(&user.id)
            .await
            .map_err(FlowError::internal)?
        {
            return Err(FlowError::Conflict {
                code: "mfa_already_enabled",
                message:
                    "TOTP is already enabled; disable it first (DELETE /api/ucms/auth/mfa/totp)"
                        .into(),
            });
        }
        let secret = Secret::from(super::random::random_bytes::<20>()).to_base32();
        let issuer = self
            .auth_config()
            .public_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(String::from))
            .unwrap_or_else(|| "UCMS".into());
        let totp = totp_for(&secret, &issuer, &user.email).map_err(FlowError::internal)?;
        let now = now_ms();
        on_db!(self.db(), write, |pool| {
            sqlx::query(
                "INSERT INTO user_totp (user_id, secret, enabled, created_at) VALUES ($1, $2, FALSE, $3) \
                 ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at, last_step = NULL \
                 WHERE user_totp.enabled = FALSE",
            )
            .bind(&user.id)
            .bind(&secret)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(FlowError::internal)?;
        Ok(Enrolment {
            otpauth_uri: totp
                .to_url()
                .map_err(|e| FlowError::internal(anyhow::anyhow!("{e}")))?,
            secret,
        })
    }

    /// Checks a TOTP code of `user_id` (pending or enabled), consuming its time step.
    async fn check_totp(&self, user_id: &str, code: &str) -> Result<bool, FlowError> {
        let row: Option<(String, Option<i64>)> = on_db!(self.db(), read, |pool| {
            sqlx::query_as("SELECT secret, last_step FROM user_totp WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })
        .map_err(FlowError::internal)?;
        let Some((secret, last_step)) = row else {
            return Ok(false);
        };
        let totp = totp_for(&secret, "ucms", "user").map_err(FlowError::internal)?;
        let code = code.trim();
        let now_step = (now_ms() / 1000) as u64 / STEP_SECS;
        let mut matched = None;
        for step in [now_step - 1, now_step, now_step + 1] {
            let expected = totp.generate(step * STEP_SECS).to_string();
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
                matched = Some(step as i64);
            }
        }
        let Some(step) = matched else {
            return Ok(false);
        };
        if last_step.is_some_and(|last| step <= last) {
            return Ok(false);
        }
        // Two requests with the same code race here; only one moves the step forward.
        let updated = on_db!(self.db(), write, |pool| {
            sqlx::query(
                "UPDATE user_totp SET last_step = $1 WHERE user_id = $2 AND (last_step IS NULL OR last_step < $1)",
            )
            .bind(step)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(FlowError::internal)?;
        Ok(updated == 1)
    }

    /// Uses one recovery code of `user_id`; false when it is unknown or spent.
    async fn use_recovery_code(&self, user_id: &str, code: &str) -> Result<bool, FlowError> {
        let hash = crate::digest::sha256(normalize_recovery(code).as_bytes()).to_vec();
        let used = on_db!(self.db(), write, |pool| {
            sqlx::query(
                "UPDATE recovery_codes SET used_at = $1 WHERE hash = $2 AND user_id = $3 AND used_at IS NULL",
            )
            .bind(now_ms())
            .bind(&hash)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(FlowError::internal)?;
        if used == 1 {
            self.audit(
                Some(&format!("user:{user_id}")),
                "auth.recovery-code.used",
                Some(&format!("user:{user_id}")),
                serde_json::Value::Null,
            )
            .await;
        }
        Ok(used == 1)
    }

    /// Checks a second factor of an enrolled user.
    pub async fn check_factor(&self, user_id: &str, factor: Factor<'_>) -> Result<bool, FlowError> {
        if !self
            .totp_enabled(user_id)
            .await
            .map_err(FlowError::internal)?
        {
            return Ok(false);
        }
        match factor {
            Factor::Totp(code) => self.check_totp(user_id, code).await,
            Factor::RecoveryCode(code) => self.use_recovery_code(user_id, code).await,
        }
    }

    /// Confirms a pending enrolment with its first code: TOTP is enabled and the recovery codes
    /// are returned (the only time they are shown).
    pub async fn totp_confirm(&self, user: &User, code: &str) -> Result<Vec<String>, FlowError> {
        let row: Option<(bool,)> = on_db!(self.db(), read, |pool| {
            sqlx::query_as("SELECT enabled FROM user_totp WHERE user_id = $1")
                .bind(&user.id)
                .fetch_optional(pool)
                .await
        })
        .map_err(FlowError::internal)?;
        match row {
            None => {
                return Err(FlowError::Conflict {
                    code: "mfa_not_enrolled",
                    message: "there is no pending TOTP enrolment; start one with POST /api/ucms/auth/mfa/totp/enrol".into(),
                });
            }
            Some((true,)) => {
                return Err(FlowError::Conflict {
                    code: "mfa_already_enabled",
                    message: "TOTP is already enabled".into(),
                });
            }
            Some((false,)) => {}
        }
        if !self.check_totp(&user.id, code).await? {
            return Err(bad_code());
        }
        let codes: Vec<String> = (0..RECOVERY_CODES)
            .map(|_| {
                let raw = hex::encode(super::random::random_bytes::<6>());
                format!("{}-{}-{}", &raw[0..4], &raw[4..8], &raw[8..12])
            })
            .collect();
        on_db!(self.db(), write, |pool| {
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(&user.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(FlowError::internal)?;
        for code in &codes {
            let hash = crate::digest::sha256(normalize_recovery(code).as_bytes()).to_vec();
            on_db!(self.db(), write, |pool| {
                sqlx::query("INSERT INTO recovery_codes (hash, user_id) VALUES ($1, $2)")
                    .bind(&hash)
                    .bind(&user.id)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })
            .map_err(FlowError::internal)?;
        }
        on_db!(self.db(), write, |pool| {
            sqlx::query("UPDATE user_totp SET enabled = TRUE WHERE user_id = $1")
                .bind(&user.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(FlowError::internal)?;
        self.audit(
            Some(&format!("user:{}", user.id)),
            "mfa.enrol",
            Some(&format!("user:{}", user.id)),
            serde_json::json!({ "method": "totp" }),
        )
        .await;
        Ok(codes)
    }

    /// Disables TOTP after checking a current code or a recovery code.
    pub async fn totp_disable(&self, user: &User, factor: Factor<'_>) -> Result<(), FlowError> {
        if !self
            .totp_enabled(&user.id)
            .await
            .map_err(FlowError::internal)?
        {
            return Err(FlowError::Conflict {
                code: "mfa_not_enrolled",
                message: "TOTP is not enabled for this account".into(),
            });
        }
        if !self.check_factor(&user.id, factor).await? {
            self.audit(
                Some(&format!("user:{}", user.id)),
                "auth.mfa.failed",
                Some(&format!("user:{}", user.id)),
                serde_json::json!({ "purpose": "disable" }),
            )
            .await;
            return Err(bad_code());
        }
        // One transaction: never recovery codes gone while TOTP stays on, or the reverse.
        on_db!(self.db(), write, |pool| {
            async {
                let mut tx = pool.begin().await?;
                for sql in [
                    "DELETE FROM recovery_codes WHERE user_id = $1",
                    "DELETE FROM user_totp WHERE user_id = $1",
                ] {
                    sqlx::query(sql).bind(&user.id).execute(&mut *tx).await?;
                }
                tx.commit().await
            }
            .await
        })
        .map_err(FlowError::internal)?;
        self.audit(
            Some(&format!("user:{}", user.id)),
            "mfa.disable",
            Some(&format!("user:{}", user.id)),
            serde_json::json!({ "method": "totp" }),
        )
        .await;
        Ok(())
    }

    /// Opens an MFA challenge for a user whose password was just checked.
    pub async fn open_mfa_challenge(&self, user: &User) -> anyhow::Result<String> {
        let secret = super::random::random_token::<32>();
        let hash = crate::digest::sha256(secret.as_bytes()).to_vec();
        let expires = now_ms() + CHALLENGE_TTL.as_millis() as i64;
        // Spent and expired challenges are swept as new ones come: the table stays small.
        on_db!(self.db(), write, |pool| {
            sqlx::query("DELETE FROM mfa_challenges WHERE expires_at < $1")
                .bind(now_ms() - CHALLENGE_TTL.as_millis() as i64)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        on_db!(self.db(), write, |pool| {
            sqlx::query(
                "INSERT INTO mfa_challenges (hash, user_id, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(&hash)
            .bind(&user.id)
            .bind(expires)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(format!("{CHALLENGE_PREFIX}{secret}"))
    }

    /// Answers an MFA challenge. Wrong codes count against the challenge (five at most) and the
    /// sign-in throttle; the right one spends the challenge and returns the user.
    pub async fn answer_mfa_challenge(
        &self,
        token: &str,
        factor: Factor<'_>,
        client: &str,
    ) -> Result<User, FlowError> {
        let invalid = || {
            FlowError::unauthorized(
                "invalid_mfa_token",
                "the sign-in challenge is unknown, used up or expired; sign in with the password again",
            )
        };
        let secret = token
            .trim()
            .strip_prefix(CHALLENGE_PREFIX)
            .ok_or_else(invalid)?;
        let hash = crate::digest::sha256(secret.as_bytes()).to_vec();
        let row: Option<(String, i64, i32, Option<i64>)> = on_db!(self.db(), read, |pool| {
            sqlx::query_as(
                "SELECT user_id, expires_at, failures, used_at FROM mfa_challenges WHERE hash = $1",
            )
            .bind(&hash)
            .fetch_optional(pool)
            .await
        })
        .map_err(FlowError::internal)?;
        let Some((user_id, expires_at, failures, used_at)) = row else {
            return Err(invalid());
        };
        if used_at.is_some() || expires_at <= now_ms() || failures >= CHALLENGE_MAX_FAILURES {
            return Err(invalid());
        }
        let user = self
            .user_by_id(&user_id)
            .await
            .map_err(FlowError::internal)?
            .ok_or_else(invalid)?;
        if user.disabled {
            return Err(AuthError::Disabled.into());
        }
        self.throttle_check(&user.email, client, "mfa").await?;
        if !self.check_factor(&user.id, factor).await? {
            on_db!(self.db(), write, |pool| {
                sqlx::query("UPDATE mfa_challenges SET failures = failures + 1 WHERE hash = $1")
                    .bind(&hash)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })
            .map_err(FlowError::internal)?;
            self.throttle_failure(&user.email, client, "mfa").await;
            self.audit(
                None,
                "auth.mfa.failed",
                Some(&format!("user:{}", user.id)),
                serde_json::json!({ "client": client, "failures": failures + 1 }),
            )
            .await;
            return Err(bad_code());
        }
        let spent = on_db!(self.db(), write, |pool| {
            sqlx::query(
                "UPDATE mfa_challenges SET used_at = $1 WHERE hash = $2 AND used_at IS NULL",
            )
            .bind(now_ms())
            .bind(&hash)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(FlowError::internal)?;
        if spent != 1 {
            return Err(invalid());
        }
        self.throttle_success(&user.email).await;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_rfc_6238_test_vector() {
        // RFC 6238 appendix B: the ASCII secret "12345678901234567890", T = 59 s → 94287082 (8
        // digits), whose last 6 digits a 6-digit code shows.
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(code_at(secret, 59 / STEP_SECS).unwrap(), "287082");
    }

    #[test]
    fn recovery_codes_are_compared_without_dashes_or_case() {
        assert_eq!(normalize_recovery("AB12-cd34-EF56"), "ab12cd34ef56");
        assert_eq!(normalize_recovery(" ab12 cd34 ef56 "), "ab12cd34ef56");
    }
}
