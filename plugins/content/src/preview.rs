//! Preview tokens: short-lived signed links that show one entry's draft to a caller without an
//! account (a front end's preview mode).
//!
//! A token is `{type}.{entry}.{locale or *}.{expiry ms}.{signature}`, the signature an
//! HMAC-SHA256 of those claims under a 32-byte secret drawn from the system's random source the
//! first time a token is asked for and kept in the plugin's `secrets` collection. Checking
//! compares signatures in constant time (`Mac::verify_slice`).

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use ucms_sdk::documents::Collection;

use crate::time;
use crate::{ApiError, ApiResult};

/// Default and longest lifetimes of a token, in seconds.
pub const DEFAULT_TTL: i64 = 3600;
pub const MAX_TTL: i64 = 7 * 24 * 3600;
const SECRET_ID: &str = "preview";

#[derive(Serialize, Deserialize)]
struct Secret {
    key: String,
}

fn secrets() -> Collection<Secret> {
    Collection::new("secrets")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The signing secret, created (32 random bytes) on first use.
fn secret(create: bool) -> ApiResult<Option<Vec<u8>>> {
    if let Some(d) = secrets().get(SECRET_ID)? {
        return Ok(unhex(&d.data.key));
    }
    if !create {
        return Ok(None);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| {
        ApiError::new(
            500,
            "internal",
            format!("no random source for the preview secret: {e}"),
        )
    })?;
    match secrets().insert_with_id(SECRET_ID, &Secret { key: hex(&key) }) {
        Ok(_) => Ok(Some(key.to_vec())),
        // Another request created it first: use theirs.
        Err(_) => Ok(secrets().get(SECRET_ID)?.and_then(|d| unhex(&d.data.key))),
    }
}

fn mac(key: &[u8], claims: &str) -> ApiResult<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|_| ApiError::new(500, "internal", "the preview secret has a bad length"))?;
    mac.update(b"ucms-content-preview.v1\n");
    mac.update(claims.as_bytes());
    Ok(mac)
}

/// A token for the entry `entry` of `ty` (in `locale`, or every locale), valid `ttl` seconds;
/// with its expiry.
pub fn issue(ty: &str, entry: &str, locale: Option<&str>, ttl: i64) -> ApiResult<(String, i64)> {
    let key = secret(true)?
        .ok_or_else(|| ApiError::new(500, "internal", "the preview secret could not be stored"))?;
    let expires = time::now_ms() + ttl * 1000;
    let claims = format!("{ty}.{entry}.{}.{expires}", locale.unwrap_or("*"));
    let tag = mac(&key, &claims)?.finalize().into_bytes();
    Ok((format!("{claims}.{}", hex(&tag)), expires))
}

/// What a valid token opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub ty: String,
    pub entry: String,
    pub locale: Option<String>,
    pub expires: i64,
}

fn invalid(why: &str) -> ApiError {
    ApiError::new(
        401,
        "preview_token_invalid",
        format!(
            "the preview token is not valid: {why}; ask for a new one with POST /api/content/{{type}}/{{id}}/preview-token"
        ),
    )
}

/// Checks a token's signature and expiry and that it is for the type `ty` and `locale`; its
/// claims (the caller compares the entry).
pub fn verify(token: &str, ty: &str, locale: &str) -> ApiResult<Claims> {
    let parts: Vec<&str> = token.split('.').collect();
    let [t, entry, loc, expires, sig] = parts[..] else {
        return Err(invalid(
            "it is malformed (five dot-separated parts expected)",
        ));
    };
    let expires: i64 = expires
        .parse()
        .map_err(|_| invalid("it is malformed (its expiry is not a number)"))?;
    let tag = unhex(sig)
        .filter(|t| t.len() == 32)
        .ok_or_else(|| invalid("it is malformed (its signature is not 64 hex digits)"))?;
    let key =
        secret(false)?.ok_or_else(|| invalid("no preview token was ever issued on this site"))?;
    let claims = format!("{t}.{entry}.{loc}.{expires}");
    mac(&key, &claims)?.verify_slice(&tag).map_err(|_| {
        invalid(
            "its signature does not match its contents (it was altered, or issued by another site)",
        )
    })?;
    let claims = Claims {
        ty: t.to_string(),
        entry: entry.to_string(),
        locale: (loc != "*").then(|| loc.to_string()),
        expires,
    };
    if claims.expires < time::now_ms() {
        return Err(ApiError::new(
            401,
            "preview_token_expired",
            format!(
                "the preview token expired at {}; ask for a new one with POST /api/content/{}/{}/preview-token",
                time::format_ms(claims.expires),
                claims.ty,
                claims.entry
            ),
        ));
    }
    if claims.ty != ty {
        return Err(other_entry(&claims));
    }
    if let Some(l) = &claims.locale
        && l != locale
    {
        return Err(ApiError::new(
            403,
            "preview_token_wrong_entry",
            format!(
                "this preview token opens the '{l}' version of the entry, not '{locale}': add locale={l}"
            ),
        ));
    }
    Ok(claims)
}

/// 403: a valid token shown for another entry than its own.
pub fn other_entry(claims: &Claims) -> ApiError {
    ApiError::new(
        403,
        "preview_token_wrong_entry",
        format!(
            "this preview token opens only the entry '{}' of '{}', not this one",
            claims.entry, claims.ty
        ),
    )
}
