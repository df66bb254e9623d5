//! A plugin ready to run: its invoker, its routes, and the kinds of call the host makes (HTTP,
//! events, lifecycle, hooks, schedule ticks).

use std::sync::Arc;
use std::time::Duration;

pub use ucms_manifest::RouteMiss;
use ucms_manifest::{Method, Route, RouteTable};
use wasmtime::component::{Component, Linker};

use crate::capabilities::events::{DeliveryOutcome, EventDelivery};
use crate::identity::Principal;
use crate::runtime::PluginContext;
use crate::runtime::invocation::{InvocationError, InvocationState, Invoker, Kind, Staging};
use crate::wit::latest::exports::ucms::plugin::{event_handler, hooks, http_handler};

/// How long lifecycle hooks (install, upgrade, uninstall) may run.
pub const LIFECYCLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A request routed to a plugin, after authentication and the permission check.
#[derive(Debug, Clone)]
pub struct HttpCall {
    pub route: usize,
    pub method: Method,
    pub path: String,
    pub params: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// On an upload route: the files the host stored in the plugin's blobs.
    pub uploads: Vec<http_handler::Upload>,
}

/// A plugin's response, checked.
#[derive(Debug, Clone)]
pub struct PluginResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

/// The route a request matched.
#[derive(Debug)]
pub struct RouteMatch<'a> {
    /// Index into the manifest's routes.
    pub index: usize,
    pub route: &'a Route,
    /// Parameter values, still percent-encoded.
    pub params: Vec<(String, String)>,
}

/// A lifecycle hook.
#[derive(Debug, Clone)]
pub enum Lifecycle {
    Install,
    Upgrade { previous: String },
    Uninstall,
}

impl Lifecycle {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Upgrade { .. } => "upgrade",
            Self::Uninstall => "uninstall",
        }
    }
}

/// Response headers a plugin may not set: the host frames the body, and cookies on the site's
/// origin belong to the host's sessions.
const RESERVED_RESPONSE_HEADERS: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "set-cookie",
    "x-request-id",
];

pub struct LoadedPlugin {
    invoker: Invoker,
    routes: RouteTable,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("plugin", &self.ctx().id)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    pub fn new(
        ctx: Arc<PluginContext>,
        component: &Component,
        linker: &Linker<InvocationState>,
        site: crate::runtime::SiteSlots,
    ) -> anyhow::Result<Self> {
        // The manifest validated these patterns with the same table.
        let routes = RouteTable::build(&ctx.manifest.routes).map_err(anyhow::Error::msg)?;
        Ok(Self {
            invoker: Invoker::new(ctx, component, linker, site)?,
            routes,
        })
    }

    pub fn ctx(&self) -> &PluginContext {
        &self.invoker.ctx
    }

    /// The route for `method` and `path` (below `/api/{id}`), with its parameters.
    pub fn route(&self, method: Method, path: &str) -> Result<RouteMatch<'_>, RouteMiss> {
        let hit = self.routes.at(method, path)?;
        Ok(RouteMatch {
            index: hit.index,
            route: &self.ctx().manifest.routes[hit.index],
            params: hit.params,
        })
    }

    pub async fn handle_http(
        &self,
        principal: Principal,
        request_id: &str,
        call: HttpCall,
    ) -> Result<PluginResponse, InvocationError> {
        let ctx = self.ctx();
        let request = http_handler::Request {
            method: call.method.as_str().to_string(),
            path: call.path,
            route: ctx.manifest.routes[call.route].path.clone(),
            params: call.params,
            query: call.query,
            headers: call.headers,
            body: call.body,
            principal: crate::capabilities::auth::to_wit(&principal),
            request_id: request_id.to_string(),
            uploads: call.uploads,
        };
        let response = self
            .invoker
            .run(
                Kind::Http,
                principal,
                request_id,
                ctx.limits.timeout(),
                move |store, plugin| {
                    Box::pin(async move { plugin.handle_http(store, &request).await })
                },
            )
            .await?;
        self.check_response(response)
    }

    fn check_response(
        &self,
        response: http_handler::Response,
    ) -> Result<PluginResponse, InvocationError> {
        let plugin = self.ctx().id.to_string();
        let limit = self.ctx().limits.max_response_body();
        if response.body.len() > limit {
            let error = InvocationError::ResponseTooLarge {
                plugin,
                limit,
                size: response.body.len(),
            };
            self.ctx().metrics.refused("http", error.code());
            self.ctx()
                .health
                .breach("max-response-body-kib", error.code(), &error.to_string());
            return Err(error);
        }
        let invalid = |reason: String| InvocationError::InvalidResponse {
            plugin: self.ctx().id.to_string(),
            reason,
        };
        let status = http::StatusCode::from_u16(response.status)
            .ok()
            .filter(|s| (200..=599).contains(&s.as_u16()))
            .ok_or_else(|| {
                invalid(format!(
                    "status {} is not a final HTTP status",
                    response.status
                ))
            })?;
        let mut headers = http::HeaderMap::new();
        for (name, value) in response.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("'{name}' is not a header name")))?;
            if RESERVED_RESPONSE_HEADERS.contains(&name.as_str()) {
                continue;
            }
            let value = http::HeaderValue::from_str(&value)
                .map_err(|_| invalid(format!("the value of header '{name}' is not valid")))?;
            headers.append(name, value);
        }
        Ok(PluginResponse {
            status,
            headers,
            body: response.body,
        })
    }

    pub async fn handle_event(&self, event: EventDelivery) -> DeliveryOutcome {
        let request_id = format!("event:{}", event.id);
        let raw = event_handler::Event {
            id: event.id,
            topic: event.topic,
            key: event.key,
            payload: event.payload,
            source: event.source,
            published_at_ms: event.published_at_ms,
            attempt: event.attempt,
        };
        let result = self
            .invoker
            .run(
                Kind::Event,
                Principal::System,
                &request_id,
                self.ctx().limits.timeout(),
                move |store, plugin| {
                    Box::pin(async move { plugin.handle_event(store, &raw).await })
                },
            )
            .await;
        match result {
            Ok(Ok(())) => DeliveryOutcome::Delivered,
            Ok(Err(message)) => DeliveryOutcome::Failed(truncate(message)),
            Err(InvocationError::Busy { .. } | InvocationError::SiteBusy { .. }) => {
                DeliveryOutcome::NotNow
            }
            Err(error) => DeliveryOutcome::Failed(format!("{}: {error}", error.code())),
        }
    }

    /// Calls the plugin's `hooks.handle` for `point` within `timeout`, for `principal`; `depth` is
    /// the depth of this hook call (1 for a hook run by a route).
    pub async fn handle_hook(
        &self,
        point: &str,
        value: Vec<u8>,
        principal: Principal,
        timeout: Duration,
        depth: u8,
    ) -> Result<hooks::HookOutcome, InvocationError> {
        let request_id = format!("hook:{point}");
        let wit_principal = crate::capabilities::auth::to_wit(&principal);
        let point = point.to_string();
        self.invoker
            .run(
                Kind::Hook,
                principal,
                &request_id,
                timeout,
                move |store, plugin| {
                    store.data_mut().hook_depth = depth;
                    Box::pin(async move {
                        plugin
                            .handle_hook(store, &point, &value, &wit_principal)
                            .await
                    })
                },
            )
            .await
    }

    /// Runs one tick of the schedule `name` as the system principal, with the plugin's limits;
    /// `Ok(Err(message))` when the plugin reported an error.
    pub async fn tick(
        &self,
        name: &str,
        scheduled_at_ms: u64,
    ) -> Result<Result<(), String>, InvocationError> {
        let request_id = format!("schedule:{name}:{scheduled_at_ms}");
        let name = name.to_string();
        self.invoker
            .run(
                Kind::Schedule,
                Principal::System,
                &request_id,
                self.ctx().limits.timeout(),
                move |store, plugin| {
                    Box::pin(async move { plugin.tick(store, &name, scheduled_at_ms).await })
                },
            )
            .await
            .map(|r| r.map_err(truncate))
    }

    /// Runs a lifecycle hook; `Ok(Err(message))` when the plugin refused. With `staging`, the
    /// hook's kv writes and events are held there instead of reaching the database.
    pub async fn lifecycle(
        &self,
        hook: Lifecycle,
        staging: Option<Staging>,
    ) -> Result<Result<(), String>, InvocationError> {
        let request_id = format!("lifecycle:{}", hook.name());
        self.invoker
            .run(
                Kind::Lifecycle,
                Principal::System,
                &request_id,
                LIFECYCLE_TIMEOUT,
                move |store, plugin| {
                    store.data_mut().staging = staging;
                    Box::pin(async move {
                        match hook {
                            Lifecycle::Install => plugin.install(store).await,
                            Lifecycle::Upgrade { previous } => {
                                plugin.upgrade(store, &previous).await
                            }
                            Lifecycle::Uninstall => plugin.uninstall(store).await,
                        }
                    })
                },
            )
            .await
    }
}

fn truncate(mut message: String) -> String {
    const MAX: usize = 2000;
    if message.len() > MAX {
        let mut cut = MAX;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    message
}
