//! Browser sessions over HTTP: opening one after any sign-in flow (password, TOTP, OpenID
//! Connect) with its `ucms_session` cookie, and ending it.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use serde_json::json;

use super::ApiError;
use super::auth::{SESSION_COOKIE, client_address_behind_proxy, from_trusted_proxy};
use crate::Site;
use crate::config::SecureCookies;
use crate::identity::User;

/// Whether the session cookie gets `Secure`: per `[auth] secure-cookies`, and under `auto` when a
/// trusted proxy says the request came over TLS.
pub fn secure_cookie(
    site: &Site,
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
) -> bool {
    match site.services.identity.auth_config().secure_cookies {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => {
            from_trusted_proxy(site, extensions)
                && headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        }
    }
}

fn cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}"
    ))
    .expect("session tokens are header-safe")
}

/// A `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(
    site: &Site,
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
) -> HeaderValue {
    cookie("", 0, secure_cookie(site, headers, extensions))
}

/// Opens a session for `user`, already authenticated by `method` (`password`, `totp`,
/// `oidc:<provider>`): sets the `ucms_session` cookie, audits `auth.sign-in` with the method, and
/// answers with the session token (for API clients), its CSRF token and the user.
pub async fn start_session(
    site: &Site,
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
    user: &User,
    method: &str,
) -> Result<Response, ApiError> {
    let identity = &site.services.identity;
    let session = identity
        .open_session(user, method)
        .await
        .map_err(ApiError::internal)?;
    identity
        .audit(
            Some(&format!("user:{}", user.id)),
            "auth.sign-in",
            Some(&format!("user:{}", user.id)),
            json!({
                "client": client_address_behind_proxy(site, headers, extensions),
                "method": method,
                "session": session.id,
            }),
        )
        .await;
    let set_cookie = cookie(
        &session.token,
        identity.session_absolute().as_secs(),
        secure_cookie(site, headers, extensions),
    );
    let mut response = Json(json!({
        "token": session.token,
        "token_type": "Bearer",
        "expires_at": session.expires_at,
        "csrf_token": session.csrf_token,
        "user": user,
        "method": method,
    }))
    .into_response();
    response
        .headers_mut()
        .append(http::header::SET_COOKIE, set_cookie);
    Ok(response)
}
