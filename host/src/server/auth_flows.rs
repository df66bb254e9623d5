//! Sign-in flows beyond the password login: the OAuth2-style token endpoint (JWT access tokens
//! and rotating refresh tokens), the JWKS, TOTP enrolment and MFA challenges, and OpenID Connect.
//! The logic lives in [`crate::identity`]; these handlers parse, authorize and shape answers.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::auth::{Caller, client_address_behind_proxy};
use super::{ApiError, JsonBody};
use crate::Site;
use crate::identity::flow_error::FlowError;
use crate::identity::oidc::CallbackParams;
use crate::identity::totp::Factor;
use crate::identity::{Principal, User};

pub fn routes() -> Router<Site> {
    Router::new()
        .route("/auth/jwks.json", get(jwks))
        .route("/auth/token", post(token))
        .route("/auth/revoke", post(revoke))
        .route("/auth/mfa/totp/enrol", post(totp_enrol))
        .route("/auth/mfa/totp/confirm", post(totp_confirm))
        .route("/auth/mfa/totp", delete(totp_disable))
        .route("/auth/mfa/verify", post(mfa_verify))
        .route("/auth/oidc/{name}/start", get(oidc_start))
        .route("/auth/oidc/{name}/callback", get(oidc_callback))
}

impl From<FlowError> for ApiError {
    fn from(error: FlowError) -> Self {
        let status = match &error {
            FlowError::Auth(_) => match error {
                FlowError::Auth(auth) => return auth.into(),
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            FlowError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            FlowError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            FlowError::Forbidden { .. } => StatusCode::FORBIDDEN,
            FlowError::NotFound { .. } => StatusCode::NOT_FOUND,
            FlowError::Conflict { .. } => StatusCode::CONFLICT,
            FlowError::Upstream { .. } => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, error.code(), error.to_string())
    }
}

/// A request body as JSON or as `application/x-www-form-urlencoded` (OAuth2 clients send forms).
fn form_or_json<T: DeserializeOwned>(
    headers: &http::HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    let form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let value = if form {
        let map: serde_json::Map<String, Value> = url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        Value::Object(map)
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is neither a form nor valid JSON: {e}"),
            )
        })?
    };
    serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("the request is not valid: {e}"),
        )
    })
}

async fn jwks(State(site): State<Site>) -> Result<Response, ApiError> {
    let keys = site
        .services
        .identity
        .jwks()
        .await
        .map_err(ApiError::internal)?;
    Ok((
        [(http::header::CACHE_CONTROL, "public, max-age=300")],
        Json(keys),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    grant_type: String,
    /// `username` is the OAuth2 name of the field; either works.
    #[serde(alias = "username")]
    email: Option<String>,
    password: Option<String>,
    totp: Option<String>,
    refresh_token: Option<String>,
    /// Space-separated permission patterns; default `*` (bounded by the user's roles anyway).
    scope: Option<String>,
    client_id: Option<String>,
}

async fn token(
    State(site): State<Site>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: TokenRequest = form_or_json(&headers, &body)?;
    let client = client_address_behind_proxy(&site, &headers, &extensions);
    let identity = &site.services.identity;
    let missing = |field: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!(
                "grant_type={} needs the `{field}` field",
                request.grant_type
            ),
        )
    };
    let tokens = match request.grant_type.as_str() {
        "password" => {
            let email = request.email.as_deref().ok_or_else(|| missing("email"))?;
            let password = request
                .password
                .as_deref()
                .ok_or_else(|| missing("password"))?;
            let scopes: Vec<String> = match &request.scope {
                Some(scope) if !scope.trim().is_empty() => {
                    scope.split_whitespace().map(String::from).collect()
                }
                _ => vec!["*".to_string()],
            };
            if let Some(bad) = scopes.iter().find(|s| !crate::identity::valid_pattern(s)) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    format!(
                        "'{bad}' is not a scope: use a permission, a prefix ('hello.*') or '*'"
                    ),
                ));
            }
            let user = identity.check_password(email, password, &client).await?;
            let mut method = "password";
            if identity
                .totp_enabled(&user.id)
                .await
                .map_err(ApiError::internal)?
            {
                let Some(code) = request.totp.as_deref() else {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "mfa_required",
                        "this account signs in with TOTP: send the current code in the `totp` field",
                    ));
                };
                if !identity.check_factor(&user.id, Factor::Totp(code)).await? {
                    identity
                        .throttle_failure(&user.email, &client, "token")
                        .await;
                    identity
                        .audit(
                            None,
                            "auth.mfa.failed",
                            Some(&format!("user:{}", user.id)),
                            json!({ "client": client, "grant": "password" }),
                        )
                        .await;
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "invalid_mfa_code",
                        "the TOTP code is wrong or was already used; send the current code",
                    ));
                }
                method = "totp";
            }
            identity.throttle_success(&user.email).await;
            let tokens = identity
                .open_refresh_family(&user, &scopes)
                .await
                .map_err(ApiError::internal)?;
            identity
                .audit(
                    Some(&format!("user:{}", user.id)),
                    "auth.sign-in",
                    Some(&format!("user:{}", user.id)),
                    json!({ "client": client, "method": method, "grant": "password", "client_id": request.client_id }),
                )
                .await;
            tokens
        }
        "refresh_token" => {
            let refresh = request
                .refresh_token
                .as_deref()
                .ok_or_else(|| missing("refresh_token"))?;
            identity.refresh(refresh, &client).await?
        }
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type '{other}' is not supported; use 'password' or 'refresh_token'"),
            ));
        }
    };
    Ok((
        [
            (http::header::CACHE_CONTROL, "no-store"),
            (http::header::PRAGMA, "no-cache"),
        ],
        Json(tokens),
    )
        .into_response())
}

/// RFC 7009's body; its optional `token_type_hint` is accepted and ignored (only refresh tokens
/// are revoked here).
#[derive(Debug, Deserialize)]
struct RevokeRequest {
    token: String,
}

async fn revoke(
    State(site): State<Site>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: RevokeRequest = form_or_json(&headers, &body)?;
    site.services
        .identity
        .revoke_refresh_token(
            &request.token,
            &client_address_behind_proxy(&site, &headers, &extensions),
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({})))
}

/// The signed-in user (a browser session, not an API token: factors are managed in person).
fn session_user(principal: &Principal) -> Result<&User, ApiError> {
    match principal {
        Principal::User { user, .. } => Ok(user),
        Principal::Anonymous { .. } => Err(ApiError::unauthenticated(
            "sign in first: managing sign-in factors needs a session",
        )),
        _ => Err(ApiError::forbidden(
            "sign-in factors are managed from a signed-in session, not with an API token",
        )),
    }
}

async fn totp_enrol(
    State(site): State<Site>,
    Caller(principal): Caller,
) -> Result<Json<Value>, ApiError> {
    let user = session_user(&principal)?;
    let enrolment = site.services.identity.totp_enrol(user).await?;
    Ok(Json(json!({
        "secret": enrolment.secret,
        "otpauth_uri": enrolment.otpauth_uri,
        "next": "POST /api/ucms/auth/mfa/totp/confirm with {\"code\": \"...\"} from the authenticator app",
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

async fn totp_confirm(
    State(site): State<Site>,
    Caller(principal): Caller,
    JsonBody(body): JsonBody<CodeBody>,
) -> Result<Json<Value>, ApiError> {
    let user = session_user(&principal)?;
    let codes = site
        .services
        .identity
        .totp_confirm(user, &body.code)
        .await?;
    Ok(Json(json!({ "enabled": true, "recovery_codes": codes })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FactorBody {
    code: Option<String>,
    recovery_code: Option<String>,
}

impl FactorBody {
    fn factor(&self) -> Result<Factor<'_>, ApiError> {
        match (&self.code, &self.recovery_code) {
            (Some(code), None) => Ok(Factor::Totp(code)),
            (None, Some(code)) => Ok(Factor::RecoveryCode(code)),
            _ => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "send exactly one of `code` (from the authenticator app) and `recovery_code`",
            )),
        }
    }
}

async fn totp_disable(
    State(site): State<Site>,
    Caller(principal): Caller,
    JsonBody(body): JsonBody<FactorBody>,
) -> Result<Json<Value>, ApiError> {
    let user = session_user(&principal)?;
    site.services
        .identity
        .totp_disable(user, body.factor()?)
        .await?;
    Ok(Json(json!({ "enabled": false })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    mfa_token: String,
    code: Option<String>,
    recovery_code: Option<String>,
}

async fn mfa_verify(
    State(site): State<Site>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    JsonBody(body): JsonBody<VerifyBody>,
) -> Result<Response, ApiError> {
    let factor = FactorBody {
        code: body.code,
        recovery_code: body.recovery_code,
    };
    let user = site
        .services
        .identity
        .answer_mfa_challenge(
            &body.mfa_token,
            factor.factor()?,
            &client_address_behind_proxy(&site, &headers, &extensions),
        )
        .await?;
    let method = if factor.code.is_some() {
        "totp"
    } else {
        "recovery-code"
    };
    open_session(&site, &headers, &extensions, &user, method).await
}

/// The answer of a password login for an account with a second factor: a challenge to answer at
/// `/auth/mfa/verify` instead of a session.
pub async fn mfa_challenge(site: &Site, user: &User) -> Result<Response, ApiError> {
    let mfa_token = site
        .services
        .identity
        .open_mfa_challenge(user)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({
        "mfa_required": true,
        "mfa_token": mfa_token,
        "methods": ["totp", "recovery-code"],
    }))
    .into_response())
}

/// Opens a browser session for a user who passed a sign-in flow (cookie, audit, login JSON).
async fn open_session(
    site: &Site,
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
    user: &User,
    method: &str,
) -> Result<Response, ApiError> {
    super::sessions::start_session(site, headers, extensions, user, method).await
}

/// `scheme://host` of the request, for the OpenID callback URL when none is configured; `https`
/// when a trusted proxy says so.
fn request_origin(
    site: &Site,
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
) -> Result<String, ApiError> {
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', '\\', '@', ' ']))
        .ok_or_else(|| {
            ApiError::bad_request(
                "the request has no usable Host header; configure [auth.oidc.NAME] redirect-url",
            )
        })?;
    let https = super::auth::from_trusted_proxy(site, extensions)
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let scheme = if https { "https" } else { "http" };
    Ok(format!("{scheme}://{host}"))
}

#[derive(Debug, Deserialize)]
struct StartQuery {
    return_to: Option<String>,
}

async fn oidc_start(
    State(site): State<Site>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    Query(query): Query<StartQuery>,
) -> Result<Response, ApiError> {
    let origin = request_origin(&site, &headers, &extensions)?;
    let location = site
        .services
        .identity
        .oidc_start(&name, query.return_to.as_deref(), &origin)
        .await?;
    // 302, as OAuth2 authorization requests are usually sent (RFC 6749, section 4.1.1).
    Ok((StatusCode::FOUND, [(http::header::LOCATION, location)]).into_response())
}

async fn oidc_callback(
    State(site): State<Site>,
    Path(name): Path<String>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    Query(params): Query<CallbackParams>,
) -> Result<Response, ApiError> {
    let origin = request_origin(&site, &headers, &extensions)?;
    let client = client_address_behind_proxy(&site, &headers, &extensions);
    let (user, return_to) = site
        .services
        .identity
        .oidc_callback(&name, &params, &origin, &client)
        .await?;
    let mut response =
        open_session(&site, &headers, &extensions, &user, &format!("oidc:{name}")).await?;
    if response.status().is_success() {
        *response.status_mut() = StatusCode::SEE_OTHER;
        let location = http::HeaderValue::from_str(&return_to).map_err(ApiError::internal)?;
        response
            .headers_mut()
            .insert(http::header::LOCATION, location);
    }
    Ok(response)
}
