//! Authentication of API callers: the `Authorization: Bearer` header or the `ucms_session` cookie
//! becomes a [`Principal`]; a caller without either holds the `public` role's grants.
//!
//! A request authenticated by the cookie with a state-changing method (POST, PUT, PATCH, DELETE)
//! must carry the session's CSRF token in `X-CSRF-Token`: a cookie rides along with cross-site
//! form posts, a header set by script can't. Bearer tokens need no CSRF token.

use axum::extract::FromRequestParts;
use http::StatusCode;
use http::request::Parts;

use super::ApiError;
use crate::Site;
use crate::identity::{Identity, Principal, SessionMeta};

/// The browser session cookie.
pub const SESSION_COOKIE: &str = "ucms_session";
/// The header carrying the CSRF token of a cookie session.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A caller and how it authenticated.
#[derive(Debug, Clone)]
pub struct Authn {
    pub principal: Principal,
    /// The session, when the credentials were a session (cookie or bearer).
    pub session: Option<SessionMeta>,
    /// Whether the credentials came in the session cookie.
    pub via_cookie: bool,
}

/// The value of the session cookie, if the request carries one.
pub fn session_cookie(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

fn state_changing(method: &http::Method) -> bool {
    !matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
    )
}

/// Authenticates a request. Presenting a bad token or cookie is an error even on public routes:
/// it is a client bug (or an ended session) worth reporting.
pub async fn authenticate_request(
    site: &Site,
    method: &http::Method,
    headers: &http::HeaderMap,
) -> Result<Authn, ApiError> {
    let identity = &site.services.identity;
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::unauthenticated("the Authorization header is not valid text"))?;
        let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        else {
            return Err(ApiError::unauthenticated(
                "use `Authorization: Bearer <token>`",
            ));
        };
        let token = token.trim();
        if token.starts_with("ucms_") {
            let found = identity.authenticate_opaque(token).await?;
            return Ok(Authn {
                principal: found.principal,
                session: found.session,
                via_cookie: false,
            });
        }
        return Ok(Authn {
            principal: identity.authenticate(token).await?,
            session: None,
            via_cookie: false,
        });
    }
    if let Some(cookie) = session_cookie(headers) {
        let found = identity.authenticate_opaque(cookie).await?;
        let Some(session) = found.session else {
            return Err(ApiError::unauthenticated(
                "the ucms_session cookie holds no session; sign in again",
            ));
        };
        if state_changing(method) {
            let presented = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !Identity::csrf_matches(session.csrf_hash.as_deref(), presented) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf_failed",
                    format!(
                        "a {method} authenticated by the session cookie must carry the session's CSRF token in the X-CSRF-Token header (from the sign-in answer or GET /api/ucms/auth/me)"
                    ),
                ));
            }
        }
        return Ok(Authn {
            principal: found.principal,
            session: Some(session),
            via_cookie: true,
        });
    }
    let permissions = identity
        .public_permissions()
        .await
        .map_err(ApiError::internal)?;
    Ok(Authn {
        principal: Principal::Anonymous { permissions },
        session: None,
        via_cookie: false,
    })
}

/// The principal of a request (see [`authenticate_request`]).
pub async fn authenticate(
    site: &Site,
    method: &http::Method,
    headers: &http::HeaderMap,
) -> Result<Principal, ApiError> {
    Ok(authenticate_request(site, method, headers).await?.principal)
}

/// The authenticated caller of a host API route.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<Site> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, site: &Site) -> Result<Self, Self::Rejection> {
        authenticate(site, &parts.method, &parts.headers)
            .await
            .map(Caller)
    }
}

impl FromRequestParts<Site> for Authn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, site: &Site) -> Result<Self, Self::Rejection> {
        authenticate_request(site, &parts.method, &parts.headers).await
    }
}

impl Caller {
    /// Requires `permission`: 401 for an anonymous caller, 403 for one without it.
    pub fn require(&self, permission: &str) -> Result<(), ApiError> {
        require(&self.0, permission)
    }
}

pub fn require(principal: &Principal, permission: &str) -> Result<(), ApiError> {
    if principal.permits(permission) {
        return Ok(());
    }
    if principal.is_anonymous() {
        Err(ApiError::unauthenticated(format!(
            "this needs the '{permission}' permission; sign in or send `Authorization: Bearer <token>`"
        )))
    } else {
        Err(ApiError::forbidden(format!(
            "this needs the '{permission}' permission, which the caller lacks"
        )))
    }
}

fn peer(extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Whether the request came from a proxy `[auth] trusted-proxies` names.
pub fn from_trusted_proxy(site: &Site, extensions: &http::Extensions) -> bool {
    peer(extensions).is_some_and(|ip| {
        site.services
            .identity
            .auth_config()
            .trusted_proxies
            .contains(&ip)
    })
}

/// The caller's network address (for throttling), when the server recorded it.
pub fn client_address(parts: &http::Extensions) -> String {
    peer(parts)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "local".into())
}

/// The client address, believing `X-Forwarded-For` only from a trusted proxy.
pub fn client_address_behind_proxy(
    site: &Site,
    headers: &http::HeaderMap,
    extensions: &http::Extensions,
) -> String {
    if from_trusted_proxy(site, extensions)
        && let Some(forwarded) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| v.parse::<std::net::IpAddr>().is_ok())
    {
        return forwarded.to_string();
    }
    client_address(extensions)
}

/// Audits refused requests (403: a missing permission, a failed CSRF check) with the caller, the
/// method and the path. Only refusals pay for it: the body of a 403 is a small JSON error.
pub async fn audit_denials(
    axum::extract::State(site): axum::extract::State<Site>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let mut credentials = http::HeaderMap::new();
    for name in [http::header::AUTHORIZATION, http::header::COOKIE] {
        for value in request.headers().get_all(&name) {
            credentials.append(name.clone(), value.clone());
        }
    }
    let response = next.run(request).await;
    // Only the host's small JSON errors are read; a plugin's own large 403 passes untouched.
    let small = axum::body::HttpBody::size_hint(response.body())
        .exact()
        .is_some_and(|len| len <= 64 * 1024);
    if response.status() != StatusCode::FORBIDDEN || !small {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let error: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let code = error["error"]["code"].as_str().unwrap_or("forbidden");
    // GET: the CSRF check has already spoken; this only asks who the caller was.
    let actor = authenticate(&site, &http::Method::GET, &credentials)
        .await
        .map(|p| p.actor())
        .unwrap_or_else(|_| "unknown".into());
    let action = if code == "csrf_failed" {
        "auth.csrf-failed"
    } else {
        "access.denied"
    };
    site.services
        .identity
        .audit(
            Some(&actor),
            action,
            Some(&path),
            serde_json::json!({
                "method": method.as_str(),
                "code": code,
                "message": error["error"]["message"],
            }),
        )
        .await;
    axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
}
