//! Plugin routes: `/api/{plugin}/...` → the plugin's `http-handler`.
//!
//! The order of checks is the contract: the plugin must be installed and enabled, the route must
//! exist, the caller must hold the route's permission — and only then is the body read (up to the
//! plugin's limit) and an instance started.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use percent_encoding::percent_decode_str;
use ucms_manifest::{Access, Method};

use super::ApiError;
use super::auth::{authenticate, require};
use crate::Site;
use crate::plugins::{HttpCall, PluginState, RouteMiss};

/// Request headers never passed to plugins: credentials stay with the host.
const PRIVATE_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

pub async fn handle(State(site): State<Site>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let raw_path = parts.uri.path();
    let below_api = raw_path.strip_prefix("/api/").unwrap_or(raw_path);
    let (plugin_id, plugin_path) = match below_api.find('/') {
        Some(i) => (&below_api[..i], &below_api[i..]),
        None => (below_api, "/"),
    };
    if plugin_id == "ucms" {
        return Err(ApiError::not_found(format!(
            "{raw_path} is not a host API route"
        )));
    }
    let slot = site.plugins.get(plugin_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "plugin_not_found",
            format!("no plugin '{plugin_id}' is installed on this site"),
        )
    })?;
    let plugin = match (&slot.state, slot.runnable()) {
        (PluginState::Enabled, Some(plugin)) => plugin.clone(),
        (PluginState::Disabled, _) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "plugin_disabled",
                format!(
                    "plugin '{plugin_id}' is disabled; an administrator can enable it (ucms plugin enable {plugin_id})"
                ),
            ));
        }
        (PluginState::Quarantined(reason), _) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "plugin_quarantined",
                format!(
                    "plugin '{plugin_id}' is quarantined: {reason}; an administrator can inspect it (GET /api/ucms/plugins/{plugin_id}), then enable or remove it"
                ),
            ));
        }
        (PluginState::Refused(reason), _) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "plugin_refused_by_policy",
                format!("plugin '{plugin_id}' doesn't run on this site: {reason}"),
            ));
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "plugin_unavailable",
                format!(
                    "plugin '{plugin_id}' failed to load; its state in `ucms plugin list` says why"
                ),
            ));
        }
    };

    let method_name = if parts.method == http::Method::HEAD {
        "GET"
    } else {
        parts.method.as_str()
    };
    let method = Method::parse(method_name).ok_or_else(|| {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{} is not a method plugin routes serve", parts.method),
        )
    })?;
    let matched = plugin
        .route(method, plugin_path)
        .map_err(|miss| match miss {
            RouteMiss::NotFound => ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                format!("plugin '{plugin_id}' has no route {plugin_path}"),
            ),
            RouteMiss::MethodNotAllowed(allowed) => {
                let allowed: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
                ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{plugin_path} accepts {}", allowed.join(", ")),
                )
                .with_header(http::header::ALLOW, &allowed.join(", "))
            }
        })?;

    let principal = authenticate(&site, &parts.method, &parts.headers).await?;
    if let Access::Permission(local) = &matched.route.access {
        require(
            &principal,
            &plugin.ctx().manifest.qualified_permission(local),
        )?;
    }

    let upload_route = matched.route.upload;
    let (body, uploads) = if upload_route {
        let state = plugin
            .ctx()
            .caps
            .blobs
            .expect("the manifest grants blobs to plugins with upload routes");
        let uploaded = super::blob_http::receive(
            plugin_id,
            &plugin.ctx().services.blobs,
            state,
            &parts.headers,
            body,
        )
        .await?;
        (uploaded.body, uploaded.uploads)
    } else {
        (read_body(&plugin, &parts.headers, body).await?, Vec::new())
    };

    let route_index = matched.index;
    let params = matched
        .params
        .into_iter()
        .map(|(k, v)| (k, percent_decode_str(&v).decode_utf8_lossy().into_owned()))
        .collect();
    let query = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| !PRIVATE_HEADERS.contains(&name.as_str()))
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request_id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let call = HttpCall {
        route: route_index,
        method,
        path: plugin_path.to_string(),
        params,
        query,
        headers,
        body,
        uploads: uploads.clone(),
    };
    let response = plugin.handle_http(principal, &request_id, call).await;
    if !uploads.is_empty() && !response.as_ref().is_ok_and(|r| r.status.is_success()) {
        super::blob_http::discard(plugin_id, &plugin.ctx().services.blobs, &uploads).await;
    }
    let response = response?;
    if response.headers.contains_key(super::blob_http::BLOB_HEADER)
        && plugin.ctx().caps.blobs.is_some()
        && response.status.is_success()
    {
        return super::blob_http::stream_blob(
            plugin_id,
            &plugin.ctx().services.blobs,
            response.status,
            response.headers,
        )
        .await;
    }
    let mut headers = response.headers;
    headers.remove(super::blob_http::BLOB_HEADER);
    let mut out = (response.status, Body::from(response.body)).into_response();
    out.headers_mut().extend(headers);
    Ok(out)
}

/// The body of an ordinary route, up to the plugin's limit.
async fn read_body(
    plugin: &crate::plugins::LoadedPlugin,
    headers: &http::HeaderMap,
    body: Body,
) -> Result<Vec<u8>, ApiError> {
    let limit = plugin.ctx().limits.max_request_body();
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_body_too_large",
            format!("the request body is over this route's limit of {limit} bytes"),
        )
    };
    if headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|len| len > limit)
    {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    Ok(body.to_vec())
}
