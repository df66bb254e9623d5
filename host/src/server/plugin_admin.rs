//! Plugin management over HTTP, for the admin UI: the same operations as `ucms plugin …`.
//!
//! Installing and upgrading take two requests: `POST /api/ucms/plugins/plan` resolves and
//! returns what would change, with the capabilities each plugin asks for (for an upgrade, the
//! difference); `POST /api/ucms/plugins/apply` with that plan's id and `"approve": true` carries it
//! out. Nothing is installed without an explicit approval of a plan the caller has seen.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, JsonBody};
use crate::Site;
use crate::identity::permissions::PLUGINS_MANAGE;
use crate::plugins::PluginInfo;
use crate::plugins::registry::{self as reg, Plan, Quiet};

/// How long a plan can wait for its approval.
const PLAN_TTL: Duration = Duration::from_secs(600);

/// Plans waiting for approval, by id.
#[derive(Debug, Default)]
pub struct Plans {
    pending: Mutex<HashMap<String, (Plan, Instant, String)>>,
}

impl Plans {
    fn insert(&self, plan: Plan, actor: &str) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, (_, at, _)| at.elapsed() < PLAN_TTL);
        pending.insert(id.clone(), (plan, Instant::now(), actor.to_string()));
        id
    }

    fn take(&self, id: &str, actor: &str) -> Option<Plan> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get(id) {
            Some((_, at, by)) if at.elapsed() < PLAN_TTL && by == actor => {
                pending.remove(id).map(|(plan, _, _)| plan)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// Plugins to install: `hello`, `hello@^0.1`.
    #[serde(default)]
    install: Vec<String>,
    /// Plugins to upgrade to their newest compatible versions.
    #[serde(default)]
    upgrade: Vec<String>,
    /// The registry (default: the site's).
    registry: Option<String>,
}

pub async fn plan(
    State(site): State<Site>,
    caller: Caller,
    JsonBody(request): JsonBody<PlanRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(PLUGINS_MANAGE)?;
    if request.install.is_empty() && request.upgrade.is_empty() {
        return Err(ApiError::bad_request(
            "say what to change: \"install\": [\"hello@^0.1\"] or \"upgrade\": [\"hello\"]",
        ));
    }
    let wants = request
        .install
        .iter()
        .map(|t| reg::parse_want(t))
        .collect::<Result<Vec<_>, _>>()?;
    let upgrade: BTreeSet<String> = request.upgrade.into_iter().collect();
    let mut client = reg::client(&site.plugins, request.registry.as_deref())?;
    let plan = reg::plan(&site.plugins, &mut client, wants, upgrade).await?;
    let changes = serde_json::to_value(&plan.changes).map_err(ApiError::internal)?;
    let registry = plan.registry.clone();
    let id = site.plans.insert(plan, &caller.0.actor());
    Ok(Json(json!({
        "plan_id": id,
        "registry": registry,
        "changes": changes,
        "expires_in_seconds": PLAN_TTL.as_secs(),
        "next": "POST /api/ucms/plugins/apply with {\"plan_id\": …, \"approve\": true} to carry it out",
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    plan_id: String,
    #[serde(default)]
    approve: bool,
}

pub async fn apply(
    State(site): State<Site>,
    caller: Caller,
    JsonBody(request): JsonBody<ApplyRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require(PLUGINS_MANAGE)?;
    if !request.approve {
        return Err(ApiError::bad_request(
            "applying a plan needs an explicit approval of its capabilities: send \"approve\": true",
        ));
    }
    let actor = caller.0.actor();
    let plan = site.plans.take(&request.plan_id, &actor).ok_or_else(|| {
        ApiError::not_found("no such plan (plans expire after 10 minutes and belong to whoever made them); make a new one")
    })?;
    let mut client = reg::client(&site.plugins, Some(&plan.registry))?;
    client
        .refresh()
        .await
        .map_err(crate::plugins::PluginError::from)?;
    let applied = reg::apply(&site.plugins, &client, &plan, Some(&actor), &mut Quiet).await?;
    Ok(Json(json!({ "applied": applied })))
}

pub async fn rollback(
    State(site): State<Site>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PluginInfo>, ApiError> {
    caller.require(PLUGINS_MANAGE)?;
    Ok(Json(
        site.plugins.rollback(&id, Some(&caller.0.actor())).await?,
    ))
}

pub async fn enable(
    State(site): State<Site>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PluginInfo>, ApiError> {
    set_enabled(&site, &caller, &id, true).await
}

pub async fn disable(
    State(site): State<Site>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PluginInfo>, ApiError> {
    set_enabled(&site, &caller, &id, false).await
}

async fn set_enabled(
    site: &Site,
    caller: &Caller,
    id: &str,
    enabled: bool,
) -> Result<Json<PluginInfo>, ApiError> {
    caller.require(PLUGINS_MANAGE)?;
    let actor = caller.0.actor();
    Ok(Json(
        site.plugins.set_enabled(id, enabled, Some(&actor)).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct RemoveQuery {
    #[serde(default)]
    purge: bool,
}

pub async fn remove(
    State(site): State<Site>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(PLUGINS_MANAGE)?;
    site.plugins
        .remove(&id, q.purge, Some(&caller.0.actor()))
        .await?;
    Ok(Json(json!({ "removed": id, "purged": q.purge })))
}
