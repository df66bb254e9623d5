//! The host's own API under `/api/ucms`.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Caller, client_address};
use super::{ApiError, JsonBody};
use crate::Site;
use crate::identity::{Principal, permissions};

pub fn routes() -> Router<Site> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/me", get(me))
        .route("/plugins", get(plugins))
        .route(
            "/plugins/{id}",
            get(plugin).delete(super::plugin_admin::remove),
        )
        .route("/plugins/plan", post(super::plugin_admin::plan))
        .route("/plugins/apply", post(super::plugin_admin::apply))
        .route(
            "/plugins/{id}/rollback",
            post(super::plugin_admin::rollback),
        )
        .route("/plugins/{id}/enable", post(super::plugin_admin::enable))
        .route("/plugins/{id}/disable", post(super::plugin_admin::disable))
        .route("/dead-letters", get(dead_letters))
        .route("/audit", get(audit))
        .fallback(unknown)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
}

async fn login(
    State(site): State<Site>,
    extensions: http::Extensions,
    JsonBody(body): JsonBody<Login>,
) -> Result<Json<Value>, ApiError> {
    let client = client_address(&extensions);
    let (user, issued) = site
        .services
        .identity
        .sign_in(&body.email, &body.password, &client)
        .await?;
    Ok(Json(json!({
        "token": issued.token,
        "token_type": "Bearer",
        "expires_at": issued.expires_at,
        "user": user,
    })))
}

async fn me(Caller(principal): Caller) -> Result<Json<Value>, ApiError> {
    match &principal {
        Principal::Anonymous => Err(ApiError::unauthenticated("no credentials were presented")),
        Principal::System => Err(ApiError::forbidden("the system principal has no profile")),
        Principal::User { user, permissions } => Ok(Json(
            json!({ "kind": "user", "user": user, "permissions": permissions }),
        )),
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

async fn plugins(State(site): State<Site>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::PLUGINS_READ)?;
    Ok(Json(json!({ "plugins": site.plugins.list() })))
}

async fn plugin(
    State(site): State<Site>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::PLUGINS_READ)?;
    let slot = site.plugins.get(&id).ok_or_else(|| {
        ApiError::new(
            http::StatusCode::NOT_FOUND,
            "plugin_not_found",
            format!("no plugin '{id}' is installed"),
        )
    })?;
    Ok(Json(
        serde_json::to_value(slot.info()).map_err(ApiError::internal)?,
    ))
}

#[derive(Debug, Deserialize)]
struct Page {
    limit: Option<u32>,
    before: Option<i64>,
}

async fn dead_letters(
    State(site): State<Site>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::EVENTS_READ)?;
    let letters = site
        .services
        .events
        .outbox
        .dead_letters(page.limit.unwrap_or(100))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "dead_letters": letters })))
}

async fn audit(
    State(site): State<Site>,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::AUDIT_READ)?;
    let entries = site
        .services
        .identity
        .audit_log(page.limit.unwrap_or(100), page.before)
        .await
        .map_err(ApiError::internal)?;
    let next = entries.last().map(|e| e.seq);
    Ok(Json(json!({ "entries": entries, "next_before": next })))
}

async fn unknown(uri: http::Uri) -> ApiError {
    ApiError::not_found(format!("{} is not a host API route", uri.path()))
}
