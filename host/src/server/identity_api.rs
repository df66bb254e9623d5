//! The identity part of the host API: sign-in and sessions, passwords, users, roles, permissions,
//! API tokens and the audit log. See docs/identity.md.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Authn, Caller, client_address_behind_proxy};
use super::sessions::{clear_cookie, start_session};
use super::{ApiError, JsonBody};
use crate::Site;
use crate::identity::{
    AuditFilter, Principal, RoleError, TicketError, TokenKind, User, csrf_token_for, permissions,
};

pub fn routes() -> Router<Site> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/me", get(me))
        .route("/auth/logout", post(logout))
        .route("/auth/logout-all", post(logout_all))
        .route("/auth/password", post(change_password))
        .route("/auth/password-reset", post(password_reset))
        .route(
            "/auth/password-reset/complete",
            post(password_reset_complete),
        )
        .route("/auth/invite/accept", post(invite_accept))
        .route("/users", get(list_users).post(create_user))
        .route("/users/invite", post(invite))
        .route(
            "/users/{id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/roles", get(list_roles).post(create_role))
        .route(
            "/roles/{name}",
            get(get_role).put(update_role).delete(delete_role),
        )
        .route("/permissions", get(list_permissions))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/audit", get(audit))
}

impl From<TicketError> for ApiError {
    fn from(error: TicketError) -> Self {
        let code = match &error {
            TicketError::Unknown => "invalid_link",
            TicketError::Used => "link_used",
            TicketError::Expired => "link_expired",
            TicketError::WeakPassword(_) => "weak_password",
            TicketError::Auth(_) => {
                let TicketError::Auth(e) = error else {
                    unreachable!()
                };
                return e.into();
            }
        };
        let status = if code == "weak_password" {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, code, error.to_string())
    }
}

impl From<RoleError> for ApiError {
    fn from(error: RoleError) -> Self {
        let (status, code) = match &error {
            RoleError::NotFound(_) => (StatusCode::NOT_FOUND, "role_not_found"),
            RoleError::Exists(_) => (StatusCode::CONFLICT, "role_exists"),
            RoleError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_role"),
            RoleError::Protected(_) => (StatusCode::CONFLICT, "role_protected"),
            RoleError::Internal(e) => return ApiError::internal(e),
        };
        ApiError::new(status, code, error.to_string())
    }
}

fn actor(principal: &Principal) -> String {
    principal.actor()
}

/// The signed-in user, for routes about oneself.
fn own_user(principal: &Principal) -> Result<&User, ApiError> {
    principal.user().ok_or_else(|| {
        ApiError::unauthenticated("sign in first: this is about the signed-in user's own account")
    })
}

fn invalid_input(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
}

// ---- sign-in and sessions ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
}

async fn login(
    State(site): State<Site>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    JsonBody(body): JsonBody<Login>,
) -> Result<Response, ApiError> {
    let client = client_address_behind_proxy(&site, &headers, &extensions);
    let user = site
        .services
        .identity
        .check_sign_in(&body.email, &body.password, &client)
        .await?;
    // A second factor first, when the account has one (docs/authentication.md).
    if site
        .services
        .identity
        .totp_enabled(&user.id)
        .await
        .map_err(ApiError::internal)?
    {
        return super::auth_flows::mfa_challenge(&site, &user).await;
    }
    site.services.identity.throttle_success(&user.email).await;
    start_session(&site, &headers, &extensions, &user, "password").await
}

async fn me(headers: http::HeaderMap, authn: Authn) -> Result<Json<Value>, ApiError> {
    match &authn.principal {
        Principal::Anonymous { .. } => {
            Err(ApiError::unauthenticated("no credentials were presented"))
        }
        Principal::System => Err(ApiError::forbidden("the system principal has no profile")),
        Principal::User { user, permissions } => {
            let mut body = json!({ "kind": "user", "user": user, "permissions": permissions });
            if authn.via_cookie
                && let Some(csrf) = super::auth::session_cookie(&headers).and_then(csrf_token_for)
            {
                body["csrf_token"] = json!(csrf);
            }
            if let Some(session) = &authn.session {
                body["session_id"] = json!(session.id);
            }
            Ok(Json(body))
        }
        Principal::Token {
            token_id,
            user,
            scopes,
            permissions,
        } => Ok(Json(json!({
            "kind": "token",
            "token_id": token_id,
            "user": user,
            "scopes": scopes,
            "permissions": permissions,
        }))),
    }
}

async fn logout(
    State(site): State<Site>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    authn: Authn,
) -> Result<Response, ApiError> {
    let Some(session) = &authn.session else {
        return Err(ApiError::bad_request(
            "sign-out ends a session; these credentials are not one (revoke API tokens at DELETE /api/ucms/tokens/ID)",
        ));
    };
    let identity = &site.services.identity;
    identity
        .end_session(&session.id)
        .await
        .map_err(ApiError::internal)?;
    identity
        .audit(
            Some(&authn.principal.actor()),
            "auth.sign-out",
            Some(&format!("session:{}", session.id)),
            Value::Null,
        )
        .await;
    let mut response = Json(json!({ "signed_out": true })).into_response();
    response.headers_mut().append(
        http::header::SET_COOKIE,
        clear_cookie(&site, &headers, &extensions),
    );
    Ok(response)
}

async fn logout_all(
    State(site): State<Site>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    Caller(principal): Caller,
) -> Result<Response, ApiError> {
    let user = own_user(&principal)?;
    let identity = &site.services.identity;
    let (sessions, families) = identity
        .sign_out_everywhere(&user.id)
        .await
        .map_err(ApiError::internal)?;
    identity
        .audit(
            Some(&principal.actor()),
            "auth.sign-out-all",
            Some(&format!("user:{}", user.id)),
            json!({ "sessions_ended": sessions, "refresh_families_revoked": families }),
        )
        .await;
    let mut response = Json(json!({
        "sessions_ended": sessions,
        "refresh_families_revoked": families,
    }))
    .into_response();
    response.headers_mut().append(
        http::header::SET_COOKIE,
        clear_cookie(&site, &headers, &extensions),
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(site): State<Site>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    authn: Authn,
    JsonBody(body): JsonBody<PasswordChange>,
) -> Result<Json<Value>, ApiError> {
    let user = own_user(&authn.principal)?;
    let client = client_address_behind_proxy(&site, &headers, &extensions);
    let keep = authn.session.as_ref().map(|s| s.id.as_str());
    let ended = site
        .services
        .identity
        .change_password(
            user,
            &body.current_password,
            &body.new_password,
            keep,
            &client,
        )
        .await?;
    Ok(Json(
        json!({ "changed": true, "other_sessions_ended": ended }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    email: String,
}

async fn password_reset(
    State(site): State<Site>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    JsonBody(body): JsonBody<ResetRequest>,
) -> Result<Response, ApiError> {
    let client = client_address_behind_proxy(&site, &headers, &extensions);
    site.services
        .identity
        .request_password_reset(&body.email, &client)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "accepted": true,
            "message": "if an account has this email, a reset link is on its way; it works once, within an hour",
        })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketBody {
    token: String,
    password: String,
}

async fn password_reset_complete(
    State(site): State<Site>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    JsonBody(body): JsonBody<TicketBody>,
) -> Result<Json<Value>, ApiError> {
    let client = client_address_behind_proxy(&site, &headers, &extensions);
    let user = site
        .services
        .identity
        .complete_password_reset(&body.token, &body.password, &client)
        .await?;
    Ok(Json(json!({ "reset": true, "user": user })))
}

async fn invite_accept(
    State(site): State<Site>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    JsonBody(body): JsonBody<TicketBody>,
) -> Result<Response, ApiError> {
    let client = client_address_behind_proxy(&site, &headers, &extensions);
    let user = site
        .services
        .identity
        .accept_invite(&body.token, &body.password, &client)
        .await?;
    start_session(&site, &headers, &extensions, &user, "invite").await
}

// ---- users ----

#[derive(Debug, Deserialize)]
struct UserListQuery {
    limit: Option<u32>,
    after: Option<String>,
}

async fn list_users(
    State(site): State<Site>,
    caller: Caller,
    Query(q): Query<UserListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::USERS_READ)?;
    let page = site
        .services
        .identity
        .list_users_page(q.limit.unwrap_or(100), q.after.as_deref())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!(page)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    email: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

async fn create_user(
    State(site): State<Site>,
    Caller(principal): Caller,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<Response, ApiError> {
    super::auth::require(&principal, permissions::USERS_MANAGE)?;
    let user = site
        .services
        .identity
        .create_user_by(
            &body.email,
            &body.password,
            &body.roles,
            Some(&actor(&principal)),
        )
        .await
        .map_err(user_error)?;
    Ok((StatusCode::CREATED, Json(json!({ "user": user }))).into_response())
}

fn user_error(e: anyhow::Error) -> ApiError {
    let message = e.to_string();
    if message.contains("already exists") {
        ApiError::new(StatusCode::CONFLICT, "user_exists", message)
    } else if message.contains("no role")
        || message.contains("not an email")
        || message.contains("password")
    {
        invalid_input(message)
    } else {
        ApiError::internal(e)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invite {
    email: String,
    #[serde(default)]
    roles: Vec<String>,
}

async fn invite(
    State(site): State<Site>,
    Caller(principal): Caller,
    JsonBody(body): JsonBody<Invite>,
) -> Result<Response, ApiError> {
    super::auth::require(&principal, permissions::USERS_MANAGE)?;
    let user = site
        .services
        .identity
        .invite(&body.email, &body.roles, Some(&actor(&principal)))
        .await
        .map_err(user_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user": user, "invite_expires_in_secs": crate::identity::INVITE_TTL.as_secs() })),
    )
        .into_response())
}

async fn find_user(site: &Site, id: &str) -> Result<User, ApiError> {
    site.services
        .identity
        .user_by_id(id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "user_not_found",
                format!("there is no user with the id '{id}'"),
            )
        })
}

async fn get_user(
    State(site): State<Site>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if caller.0.user().is_none_or(|u| u.id != id) {
        caller.require(permissions::USERS_READ)?;
    }
    let user = find_user(&site, &id).await?;
    Ok(Json(json!({ "user": user })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    roles: Option<Vec<String>>,
    disabled: Option<bool>,
}

async fn update_user(
    State(site): State<Site>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UserPatch>,
) -> Result<Json<Value>, ApiError> {
    super::auth::require(&principal, permissions::USERS_MANAGE)?;
    if body.roles.is_none() && body.disabled.is_none() {
        return Err(invalid_input(
            "nothing to change: send \"roles\" (a list of role names) and/or \"disabled\" (true or false)",
        ));
    }
    let identity = &site.services.identity;
    let mut user = find_user(&site, &id).await?;
    let actor = actor(&principal);
    if let Some(roles) = &body.roles {
        user = identity
            .set_roles(&user, roles, Some(&actor))
            .await
            .map_err(user_error)?;
    }
    if let Some(disabled) = body.disabled
        && disabled != user.disabled
    {
        if disabled && principal.user().is_some_and(|u| u.id == user.id) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "cannot_disable_self",
                "you can't disable your own account; ask another administrator",
            ));
        }
        user = identity
            .set_disabled(&user, disabled, Some(&actor))
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(Json(json!({ "user": user })))
}

async fn delete_user(
    State(site): State<Site>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    super::auth::require(&principal, permissions::USERS_MANAGE)?;
    let user = find_user(&site, &id).await?;
    if principal.user().is_some_and(|u| u.id == user.id) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "cannot_delete_self",
            "you can't delete your own account; ask another administrator",
        ));
    }
    site.services
        .identity
        .delete_user(&user, Some(&actor(&principal)))
        .await
        .map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- roles and permissions ----

async fn list_roles(State(site): State<Site>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::USERS_READ)?;
    let roles = site
        .services
        .identity
        .list_roles()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "roles": roles })))
}

async fn get_role(
    State(site): State<Site>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::USERS_READ)?;
    let role = site
        .services
        .identity
        .role(&name)
        .await
        .map_err(ApiError::internal)?
        .ok_or(RoleError::NotFound(name))?;
    Ok(Json(json!({ "role": role })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRole {
    name: String,
    #[serde(default)]
    description: String,
    permissions: Vec<String>,
}

async fn create_role(
    State(site): State<Site>,
    Caller(principal): Caller,
    JsonBody(body): JsonBody<NewRole>,
) -> Result<Response, ApiError> {
    super::auth::require(&principal, permissions::ROLES_MANAGE)?;
    let role = site
        .services
        .identity
        .create_role(
            &body.name,
            &body.description,
            &body.permissions,
            Some(&actor(&principal)),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "role": role }))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolePatch {
    description: Option<String>,
    permissions: Option<Vec<String>>,
}

async fn update_role(
    State(site): State<Site>,
    Caller(principal): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<RolePatch>,
) -> Result<Json<Value>, ApiError> {
    super::auth::require(&principal, permissions::ROLES_MANAGE)?;
    let role = site
        .services
        .identity
        .update_role(
            &name,
            body.description.as_deref(),
            body.permissions.as_deref(),
            Some(&actor(&principal)),
        )
        .await?;
    Ok(Json(json!({ "role": role })))
}

async fn delete_role(
    State(site): State<Site>,
    Caller(principal): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    super::auth::require(&principal, permissions::ROLES_MANAGE)?;
    site.services
        .identity
        .delete_role(&name, Some(&actor(&principal)))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_permissions(
    State(site): State<Site>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::USERS_READ)?;
    let mut list: Vec<Value> = permissions::ALL
        .iter()
        .map(|(name, description)| {
            json!({ "name": name, "description": description, "source": "ucms" })
        })
        .collect();
    for plugin in site.plugins.list() {
        // Already qualified: `plugin.local`.
        for (name, description) in &plugin.permissions {
            list.push(json!({
                "name": name,
                "description": description,
                "source": plugin.id,
            }));
        }
    }
    Ok(Json(json!({ "permissions": list })))
}

// ---- API tokens ----

#[derive(Debug, Deserialize)]
struct TokenQuery {
    user: Option<String>,
}

/// Whose tokens a request is about: one's own, or (with `ucms.tokens.manage`) anyone's.
fn token_owner<'a>(principal: &'a Principal, other: Option<&'a str>) -> Result<&'a str, ApiError> {
    let own = own_user(principal).map(|u| u.id.as_str());
    match other {
        Some(other) if own.as_ref().is_ok_and(|id| *id == other) => Ok(other),
        Some(other) => {
            super::auth::require(principal, permissions::TOKENS_MANAGE)?;
            Ok(other)
        }
        None => own,
    }
}

async fn list_tokens(
    State(site): State<Site>,
    Caller(principal): Caller,
    Query(q): Query<TokenQuery>,
) -> Result<Json<Value>, ApiError> {
    let owner = token_owner(&principal, q.user.as_deref())?;
    let tokens = site
        .services
        .identity
        .list_tokens(Some(owner))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "tokens": tokens })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    scopes: Vec<String>,
    /// Lifetime in seconds.
    ttl_secs: Option<u64>,
    /// Or an RFC 3339 expiry time.
    expires_at: Option<String>,
    /// Another user's id (needs `ucms.tokens.manage`).
    user: Option<String>,
}

async fn create_token(
    State(site): State<Site>,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    Caller(principal): Caller,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<Response, ApiError> {
    let owner_id = token_owner(&principal, body.user.as_deref())?.to_string();
    if matches!(principal, Principal::Token { .. }) {
        return Err(ApiError::forbidden(
            "an API token can't issue API tokens; sign in to create one",
        ));
    }
    let identity = &site.services.identity;
    let client = client_address_behind_proxy(&site, &headers, &extensions);
    let owner = find_user(&site, &owner_id).await?;
    identity
        .throttle_check(&owner.email, &client, "token-issue")
        .await?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(invalid_input(
            "\"name\" must be 1 to 100 characters, saying what the token is for",
        ));
    }
    let ttl = match (body.ttl_secs, &body.expires_at) {
        (Some(_), Some(_)) => {
            return Err(invalid_input(
                "give either \"ttl_secs\" or \"expires_at\", not both",
            ));
        }
        (Some(0), None) => return Err(invalid_input("\"ttl_secs\" must be at least 1")),
        (Some(secs), None) => Some(std::time::Duration::from_secs(secs)),
        (None, Some(at)) => {
            let at = chrono::DateTime::parse_from_rfc3339(at).map_err(|_| {
                invalid_input(format!(
                    "\"expires_at\" = '{at}' is not an RFC 3339 time (e.g. 2030-01-31T12:00:00Z)"
                ))
            })?;
            let left = at.timestamp_millis() - crate::db::now_ms();
            if left <= 0 {
                return Err(invalid_input("\"expires_at\" is in the past"));
            }
            Some(std::time::Duration::from_millis(left as u64))
        }
        (None, None) => None,
    };
    let issued = identity
        .issue_token(&owner, TokenKind::Api, name, &body.scopes, ttl)
        .await
        .map_err(|e| invalid_input(e.to_string()))?;
    Ok((StatusCode::CREATED, Json(json!(issued))).into_response())
}

async fn revoke_token(
    State(site): State<Site>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let identity = &site.services.identity;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "token_not_found",
            format!("there is no API token '{id}' you may revoke"),
        )
    };
    let token = identity
        .token_info(&id)
        .await
        .map_err(ApiError::internal)?
        .filter(|t| t.kind == TokenKind::Api)
        .ok_or_else(not_found)?;
    if principal.user().is_none_or(|u| u.id != token.user_id)
        && !principal.permits(permissions::TOKENS_MANAGE)
    {
        return Err(not_found());
    }
    identity
        .revoke_token(&id, Some(&actor(&principal)))
        .await
        .map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- audit ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<u32>,
    before: Option<i64>,
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    /// RFC 3339 time or Unix milliseconds.
    since: Option<String>,
}

async fn audit(
    State(site): State<Site>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::AUDIT_READ)?;
    let since = match &q.since {
        None => None,
        Some(s) => Some(match s.parse::<i64>() {
            Ok(ms) => ms,
            Err(_) => chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "since = '{s}' is neither an RFC 3339 time (2030-01-31T12:00:00Z) nor Unix milliseconds"
                    ))
                })?
                .timestamp_millis(),
        }),
    };
    let entries = site
        .services
        .identity
        .audit_query(&AuditFilter {
            limit: q.limit.unwrap_or(100),
            before: q.before,
            action: q.action,
            actor: q.actor,
            target: q.target,
            since,
        })
        .await
        .map_err(ApiError::internal)?;
    let next = entries.last().map(|e| e.seq);
    Ok(Json(json!({ "entries": entries, "next_before": next })))
}
