//! The host's own API under `/api/ucms`.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::ApiError;
use super::auth::Caller;
use crate::Site;
use crate::identity::permissions;

pub fn routes() -> Router<Site> {
    Router::new()
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
        .merge(super::events_api::routes())
        .merge(super::admin_api::routes())
        .merge(super::policy_api::routes())
        .merge(super::identity_api::routes())
        .merge(super::auth_flows::routes())
        .fallback(unknown)
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
    let mut info = serde_json::to_value(slot.info()).map_err(ApiError::internal)?;
    // This node's record of its recent failures (what quarantine counts).
    if let Some(loaded) = &slot.loaded {
        info["recent_failures"] = json!(loaded.ctx().health.recent_failures());
    }
    Ok(Json(info))
}

async fn unknown(uri: http::Uri) -> ApiError {
    ApiError::not_found(format!("{} is not a host API route", uri.path()))
}
