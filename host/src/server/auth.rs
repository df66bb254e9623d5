//! Authentication of API callers: the `Authorization: Bearer` header becomes a [`Principal`].

use axum::extract::FromRequestParts;
use http::request::Parts;

use super::ApiError;
use crate::Site;
use crate::identity::Principal;

/// Authenticates the request's bearer token, if any. Presenting a bad token is an error even on
/// public routes: it is a client bug worth reporting.
pub async fn authenticate(site: &Site, headers: &http::HeaderMap) -> Result<Principal, ApiError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(Principal::Anonymous);
    };
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
    Ok(site.services.identity.authenticate(token.trim()).await?)
}

/// The authenticated caller of a host API route.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<Site> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, site: &Site) -> Result<Self, Self::Rejection> {
        authenticate(site, &parts.headers).await.map(Caller)
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
    if matches!(principal, Principal::Anonymous) {
        Err(ApiError::unauthenticated(format!(
            "this needs the '{permission}' permission; sign in or send `Authorization: Bearer <token>`"
        )))
    } else {
        Err(ApiError::forbidden(format!(
            "this needs the '{permission}' permission, which the caller lacks"
        )))
    }
}

/// The caller's network address (for sign-in throttling), when the server recorded it.
pub fn client_address(parts: &http::Extensions) -> String {
    parts
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "local".into())
}
