//! The HTTP API: health, metrics, the host API under `/api/ucms`, and plugin routes under
//! `/api/{plugin-id}`.

mod admin;
mod admin_api;
mod auth;
mod auth_flows;
mod blob_http;
mod dispatch;
mod error;
mod events_api;
mod host_api;
mod identity_api;
mod plugin_admin;
mod policy_api;
pub mod sessions;

use axum::extract::{FromRequest, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

pub use admin::built as admin_built;
pub use auth::{Caller, authenticate};
pub use error::ApiError;
pub use plugin_admin::Plans;

use crate::Site;

/// The site's router.
pub fn router(site: Site) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api/ucms", host_api::routes())
        .merge(admin::routes())
        .route("/api/{plugin}", any(dispatch::handle))
        .route("/api/{plugin}/{*rest}", any(dispatch::handle))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            site.clone(),
            auth::audit_denials,
        ))
        .layer(middleware::from_fn_with_state(
            site.clone(),
            count_responses,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the server failed to handle the request",
            )
            .into_response()
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::x_request_id(RequestIds::new()))
        .with_state(site)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(site): State<Site>) -> Response {
    let database = site.db.ping().await;
    let plugins = site.plugins.list();
    let failed: Vec<&str> = plugins
        .iter()
        .filter(|p| p.state.label() == "failed")
        .map(|p| p.id.as_str())
        .collect();
    let body = json!({
        "status": if database.is_ok() { "ready" } else { "unavailable" },
        "database": { "backend": site.db.backend_name(), "ok": database.is_ok() },
        "plugins": { "installed": plugins.len(), "failed": failed },
        "runtime": { "allocator": format!("{:?}", site.runtime.allocator()).to_lowercase() },
    });
    let status = if database.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(site): State<Site>) -> Response {
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        site.services.metrics.render(),
    )
        .into_response()
}

async fn not_found(uri: http::Uri) -> ApiError {
    ApiError::not_found(format!("nothing is served at {}", uri.path()))
}

async fn count_responses(State(site): State<Site>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    site.services
        .metrics
        .http_response(response.status().as_u16());
    response
}

/// Request ids: a random per-process prefix and a counter. Unique without a syscall per request
/// (a random UUID costs a `getrandom` call).
#[derive(Debug, Clone)]
struct RequestIds {
    prefix: u32,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        let mut bytes = [0u8; 4];
        let _ = getrandom::fill(&mut bytes);
        Self {
            prefix: u32::from_le_bytes(bytes),
            next: std::sync::Arc::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        http::HeaderValue::from_str(&format!("{:08x}-{n:012x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// A JSON request body whose errors have the API's error shape.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                rejection.status(),
                "invalid_json",
                rejection.body_text(),
            )),
        }
    }
}

/// The span of one HTTP request: the root of its trace (or a child of the caller's, from its
/// `traceparent`), with the request id `SetRequestIdLayer` gave it.
fn request_span<B>(request: &http::Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format_args!("{} {}", request.method(), request.uri().path()),
        http.request.method = %request.method(),
        url.path = %request.uri().path(),
        request_id,
    );
    crate::telemetry::continue_trace(&span, request.headers());
    span
}
