//! Host routes the admin UI needs beyond plugin management: the configured registry's catalogue
//! (search and a plugin's versions, through the site's client and trust), the admin pages plugins
//! contribute, and the short-lived, plugin-scoped token such a page gets instead of the admin's
//! session.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use super::auth::Authn;
use super::auth::Caller;
use crate::Site;
use crate::identity::{Principal, TokenKind, permissions};
use crate::plugins::PluginError;
use crate::plugins::registry as reg;

/// How long a plugin page's token lives; the admin asks for a new one when it runs out.
pub const PAGE_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

pub fn routes() -> Router<Site> {
    Router::new()
        .route("/marketplace/search", get(search))
        .route("/marketplace/packages/{id}", get(package))
        .route("/admin/pages", get(pages))
        .route("/plugins/{id}/page-token", post(page_token))
        .route("/plugins/{id}/metrics", get(plugin_metrics))
        .route(
            "/plugins/{id}/settings",
            get(plugin_settings).put(save_settings),
        )
        .route("/plugins/{id}/logs", get(plugin_logs))
}

/// The installed plugin `id`, or 404 `plugin_not_found`.
fn installed(site: &Site, id: &str) -> Result<std::sync::Arc<crate::plugins::Slot>, ApiError> {
    site.plugins.get(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "plugin_not_found",
            format!("no plugin '{id}' is installed"),
        )
    })
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    /// Only lines after this `seq` (what the last page's `next_after` said): for tailing.
    after: Option<u64>,
    /// This level and above: trace, debug, info (the default), warn or error.
    level: Option<String>,
    /// At most this many of the newest lines (default 200, at most 1000).
    limit: Option<usize>,
}

/// A plugin's recent log lines on this node — its own, and the host's about it (failed
/// invocations, limit breaches, refused capabilities) — newest last. The ring is memory only and
/// per node (docs/admin-guide.md); lines may carry what plugins log, so reading them needs
/// `ucms.plugins.manage`.
async fn plugin_logs(
    State(site): State<Site>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::PLUGINS_MANAGE)?;
    installed(&site, &id)?;
    let level = q.level.as_deref().unwrap_or("info");
    if !crate::runtime::logbook::LEVELS.contains(&level) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_level",
            format!(
                "level '{level}' is not one of {}",
                crate::runtime::logbook::LEVELS.join(", ")
            ),
        ));
    }
    let limit = q.limit.unwrap_or(200).clamp(1, 1000);
    let page = site
        .services
        .logbook
        .plugin(&id)
        .read(q.after, level, limit);
    Ok(Json(json!({
        "plugin": id,
        "node_only": true,
        "lines": page.lines,
        "next_after": page.next_after,
        "evicted": page.evicted,
    })))
}

/// A plugin's settings schema (from its manifest) and the values in force — from `ucms.toml` or
/// `UCMS_PLUGINS__…` variables (locked: shown, not editable), else saved from the admin, else the
/// defaults — for the admin's settings form. Secrets are never shown.
async fn plugin_settings(
    State(site): State<Site>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::PLUGINS_READ)?;
    let slot = installed(&site, &id)?;
    let resolved = site.plugins.resolved_settings(&id).await;
    let schema: Vec<Value> = slot
        .manifest
        .settings
        .iter()
        .map(|(name, spec)| {
            let locked = resolved.as_ref().is_ok_and(|r| r.is_locked(name));
            json!({
                "name": name,
                "kind": spec.kind.name(),
                "description": spec.description,
                "default": spec.default,
                "required": spec.required,
                "locked": locked,
                "skipped": resolved.as_ref().ok().and_then(|r| r.skipped().get(name)),
            })
        })
        .collect();
    let (values, problem) = match &resolved {
        Ok(resolved) => (Value::Object(resolved.settings().clone()), None),
        Err(e) => (json!({}), Some(e.to_string())),
    };
    let saved = site.plugins.saved_settings(&id).await?;
    Ok(Json(json!({
        "plugin": id,
        "schema": schema,
        "values": values,
        "saved": saved,
        "problem": problem,
        "editable": caller.0.permits(permissions::PLUGINS_MANAGE),
        "locked_how": format!(
            "locked settings are set in ucms.toml, [plugins.{id}.settings] (or UCMS_PLUGINS__{}__SETTINGS__NAME), which wins over the admin",
            id.to_uppercase().replace('-', "_")
        ),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveSettings {
    /// The admin's values, the whole set: a setting left out goes back to its default.
    values: serde_json::Map<String, Value>,
}

/// Saves the admin's settings of a plugin (`ucms.plugins.manage`) and reloads it: each value is
/// checked against the manifest; settings the operator's configuration sets are refused.
async fn save_settings(
    State(site): State<Site>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<SaveSettings>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::PLUGINS_MANAGE)?;
    let actor = caller.0.actor();
    let info = site
        .plugins
        .save_settings(&id, body.values, Some(&actor))
        .await?;
    let resolved = site.plugins.resolved_settings(&id).await?;
    Ok(Json(json!({
        "plugin": info,
        "values": resolved.settings(),
    })))
}

/// This node's metrics about one plugin (the `/metrics` samples labelled with it, histogram
/// buckets left out), as JSON for the admin's plugin page.
async fn plugin_metrics(
    State(site): State<Site>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::PLUGINS_READ)?;
    installed(&site, &id)?;
    let text = site.services.metrics.render();
    let samples: Vec<Value> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(parse_sample)
        .filter(|(name, labels, _)| {
            !name.ends_with("_bucket")
                && labels.get("plugin").and_then(Value::as_str) == Some(id.as_str())
        })
        .map(|(name, mut labels, value)| {
            labels.remove("plugin");
            json!({ "name": name, "labels": labels, "value": value })
        })
        .collect();
    Ok(Json(json!({ "plugin": id, "samples": samples })))
}

/// One sample line of the text format: `name{a="x",b="y"} 1.5`.
fn parse_sample(line: &str) -> Option<(String, serde_json::Map<String, Value>, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, rest)) = head.split_once('{') else {
        return Some((head.to_string(), serde_json::Map::new(), value));
    };
    let body = rest.strip_suffix('}')?;
    let mut labels = serde_json::Map::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut val = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => val.push('\n'),
                    Some(other) => val.push(other),
                    None => return None,
                },
                '"' => break,
                other => val.push(other),
            }
        }
        labels.insert(key.trim_start_matches(',').to_string(), Value::String(val));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some((name.to_string(), labels, value))
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search(
    State(site): State<Site>,
    caller: Caller,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::PLUGINS_READ)?;
    let client = reg::client(&site.plugins, None)?;
    let mut found = client.search(&query.q).await.map_err(PluginError::from)?;
    // Mark what this site already runs, so the list can say "installed 0.1.0".
    let installed = site.plugins.installed_versions();
    if let Some(hits) = found.get_mut("packages").and_then(Value::as_array_mut) {
        for hit in hits {
            let id = hit
                .pointer("/latest/id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if let Some(v) = installed.get(&id) {
                hit["installed"] = json!(v.to_string());
            }
        }
    }
    Ok(Json(json!({
        "registry": client.base_url(),
        "packages": found.get("packages").cloned().unwrap_or_else(|| json!([])),
    })))
}

async fn package(
    State(site): State<Site>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::PLUGINS_READ)?;
    let mut client = reg::client(&site.plugins, None)?;
    client.refresh().await.map_err(PluginError::from)?;
    let versions = client.index(&id).await.map_err(PluginError::from)?;
    let Some(mut versions) = versions else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "package_not_found",
            format!("the registry {} has no plugin '{id}'", client.base_url()),
        ));
    };
    versions.sort_by(|a, b| b.version.cmp(&a.version));
    Ok(Json(json!({
        "registry": client.base_url(),
        "id": id,
        "installed": site.plugins.installed_versions().get(&id).map(|v| v.to_string()),
        "versions": versions,
    })))
}

/// The pages of enabled plugins that the caller may open.
async fn pages(State(site): State<Site>, caller: Caller) -> Result<Json<Value>, ApiError> {
    if caller.0.is_anonymous() {
        return Err(ApiError::unauthenticated(
            "sign in to see the admin pages plugins add",
        ));
    }
    let mut out = Vec::new();
    for (id, slot) in site.plugins.snapshot().iter() {
        if slot.runnable().is_none() {
            continue;
        }
        for page in &slot.manifest.admin_pages {
            if let Some(p) = &page.permission
                && !caller.0.permits(&format!("{id}.{p}"))
            {
                continue;
            }
            let asset = page.entry.strip_prefix("assets/").unwrap_or(&page.entry);
            out.push(json!({
                "plugin": id,
                "path": page.path,
                "title": page.title,
                "url": format!("/admin/ext/{id}/{asset}"),
                "permission": page.permission.as_ref().map(|p| format!("{id}.{p}")),
            }));
        }
    }
    Ok(Json(json!({ "pages": out })))
}

/// A token for a plugin's admin page: the signed-in user's, narrowed to `{plugin}.*`, for
/// [`PAGE_TOKEN_TTL`]. Only a browser session can ask (a token can't mint tokens), and only for
/// an enabled plugin that has pages.
async fn page_token(
    State(site): State<Site>,
    authn: Authn,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Principal::User { user, .. } = &authn.principal else {
        return Err(if authn.principal.is_anonymous() {
            ApiError::unauthenticated("sign in to open a plugin's admin page")
        } else {
            ApiError::forbidden("only a signed-in user's session can ask for a page token")
        });
    };
    let slot = site
        .plugins
        .get(&id)
        .filter(|s| s.runnable().is_some() && !s.manifest.admin_pages.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "plugin_not_found",
                format!("no enabled plugin '{id}' with admin pages is installed"),
            )
        })?;
    let allowed = slot.manifest.admin_pages.iter().any(|page| {
        page.permission
            .as_ref()
            .is_none_or(|p| authn.principal.permits(&format!("{id}.{p}")))
    });
    if !allowed {
        return Err(ApiError::forbidden(format!(
            "none of '{id}''s admin pages is open to this user"
        )));
    }
    let scopes = vec![format!("{id}.*")];
    let issued = site
        .services
        .identity
        .issue_token(
            user,
            TokenKind::Api,
            &format!("admin page of {id}"),
            &scopes,
            Some(PAGE_TOKEN_TTL),
        )
        .await
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": issued.token,
            "scopes": scopes,
            "expires_in_seconds": PAGE_TOKEN_TTL.as_secs(),
            "plugin": id,
        })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::parse_sample;

    #[test]
    fn samples_of_the_text_format_are_read_with_their_labels() {
        let (name, labels, value) =
            parse_sample(r#"plugin_errors_total{plugin="hello",code="a \"b\", c"} 3"#).unwrap();
        assert_eq!(name, "plugin_errors_total");
        assert_eq!(labels["plugin"], "hello");
        assert_eq!(labels["code"], "a \"b\", c");
        assert_eq!(value, 3.0);
        let (name, labels, value) = parse_sample("http_up 1.5").unwrap();
        assert_eq!((name.as_str(), labels.len(), value), ("http_up", 0, 1.5));
        assert!(parse_sample("# HELP x y").is_none());
        assert!(parse_sample(r#"x{a=b} 1"#).is_none());
    }
}
