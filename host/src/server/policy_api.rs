//! The operator's policy over HTTP: `GET /api/ucms/policy` (`ucms.policy.read`) shows the rules
//! in force and where they came from; `POST /api/ucms/policy/reload` (`ucms.policy.manage`)
//! reads them again and judges every installed plugin under them.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::ApiError;
use super::auth::Caller;
use crate::Site;
use crate::identity::permissions;
use crate::policy::{PolicySource, Reloaded};

pub fn routes() -> Router<Site> {
    Router::new()
        .route("/policy", get(show))
        .route("/policy/reload", post(reload))
}

async fn show(State(site): State<Site>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::POLICY_READ)?;
    let store = site.plugins.policy();
    let policy = store.current();
    let source = match store.source() {
        PolicySource::Fixed => json!({ "kind": "fixed" }),
        PolicySource::ConfigFile(p) => json!({ "kind": "configuration", "path": p }),
        PolicySource::File(p) => json!({ "kind": "file", "path": p }),
    };
    Ok(Json(json!({
        "origin": policy.origin,
        "digest": policy.digest,
        "source": source,
        "rules": policy.rules,
    })))
}

async fn reload(State(site): State<Site>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::POLICY_MANAGE)?;
    let actor = caller.0.actor();
    match site.reload_policy(Some(&actor)).await {
        Ok(Reloaded::Unchanged) => Ok(Json(json!({
            "changed": false,
            "digest": site.plugins.policy().current().digest,
        }))),
        Ok(Reloaded::Changed(policy)) => {
            let refused: Vec<Value> = site
                .plugins
                .list()
                .into_iter()
                .filter(|p| matches!(p.state, crate::plugins::PluginState::Refused(_)))
                .map(|p| json!({ "id": p.id, "state": p.state }))
                .collect();
            Ok(Json(json!({
                "changed": true,
                "digest": policy.digest,
                "refused": refused,
            })))
        }
        Err(e) => Err(ApiError::new(
            http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_policy",
            format!("{e:#}; the policy in force stays"),
        )),
    }
}
