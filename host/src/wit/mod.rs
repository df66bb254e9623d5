//! Host bindings for every supported version of the UCMS WIT API.
//!
//! Each released `ucms:host` / `ucms:plugin` version has a frozen folder under `wit/` and a module
//! here. The newest one is [`latest`]; the capabilities implement its `Host` traits. An older
//! version keeps a module ([`v0_1_0`]) whose `Host` impls forward to `latest` through
//! conversions, so components built against an older SDK keep working: [`SUPPORTED_API`] lists
//! every version the host links, and [`Plugin`] calls a component's exports in whichever version
//! it was built for.
//!
//! Versions that are semver-compatible need no forwarding for their imports: wasmtime's linker
//! satisfies an import of `ucms:host/kv@0.2.0` with the definition of `ucms:host/kv@0.2.1`, so
//! the host links only the newest 0.2.x. Their exports still differ (0.2.1 adds `hooks` and
//! `scheduler`), so [`v0_2_0`] keeps the 0.2.0 bindings for the exports and converts their records.

pub mod v0_1_0;
pub mod v0_2_0;

use semver::Version;
use wasmtime::Store;
use wasmtime::component::InstancePre;

/// The `ucms:host` API versions this host can link, oldest first.
pub const SUPPORTED_API: &[Version] = &[
    Version::new(0, 1, 0),
    Version::new(0, 2, 0),
    Version::new(0, 2, 1),
];

/// The newest supported API version.
pub fn latest_api() -> &'static Version {
    SUPPORTED_API
        .last()
        .expect("at least one API version is supported")
}

/// Whether the host links `version` of `ucms:host`.
pub fn supports(version: &Version) -> bool {
    SUPPORTED_API.contains(version)
}

/// `0.1.0, 0.2.0, 0.2.1`: for error messages.
pub fn supported_list() -> String {
    SUPPORTED_API
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub mod v0_2_1 {
    wasmtime::component::bindgen!({
        world: "ucms:plugin/plugin@0.2.1",
        path: ["../wit/v0.2.1/host", "../wit/v0.2.1/plugin"],
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub use v0_2_1 as latest;

use latest::exports::ucms::plugin::{event_handler, hooks, http_handler};

/// A component pre-instantiated against the host API version it was built for.
pub enum PluginPre<T: 'static> {
    V0_1(v0_1_0::PluginPre<T>),
    V0_2(v0_2_0::PluginPre<T>),
    Latest(latest::PluginPre<T>),
}

impl<T: Send + 'static> PluginPre<T> {
    /// Recognises the version by the component's exports: the newest first.
    pub fn new(pre: InstancePre<T>) -> wasmtime::Result<Self> {
        match latest::PluginPre::new(pre.clone()) {
            Ok(pre) => Ok(Self::Latest(pre)),
            Err(latest_error) => {
                if let Ok(pre) = v0_2_0::PluginPre::new(pre.clone()) {
                    return Ok(Self::V0_2(pre));
                }
                match v0_1_0::PluginPre::new(pre) {
                    Ok(pre) => Ok(Self::V0_1(pre)),
                    // The newest version's error names what is missing for today's SDK.
                    Err(_) => Err(latest_error),
                }
            }
        }
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        match self {
            Self::V0_1(pre) => pre.engine(),
            Self::V0_2(pre) => pre.engine(),
            Self::Latest(pre) => pre.engine(),
        }
    }

    pub async fn instantiate_async(&self, store: &mut Store<T>) -> wasmtime::Result<Plugin> {
        Ok(match self {
            Self::V0_1(pre) => Plugin::V0_1(pre.instantiate_async(store).await?),
            Self::V0_2(pre) => Plugin::V0_2(pre.instantiate_async(store).await?),
            Self::Latest(pre) => Plugin::Latest(pre.instantiate_async(store).await?),
        })
    }
}

/// An instance of a plugin, whatever API version it was built for; its exports take and return
/// the newest version's types.
pub enum Plugin {
    V0_1(v0_1_0::Plugin),
    V0_2(v0_2_0::Plugin),
    Latest(latest::Plugin),
}

/// Why an export can't be called: the component was built for an API version without it (the
/// install checks refuse `[[hooks]]` and `[[schedules]]` for those, so this is a host bug).
#[derive(Debug, thiserror::Error)]
#[error("the component was built for an API version without the {0} export")]
pub struct MissingExport(pub &'static str);

impl Plugin {
    pub async fn handle_http<T: Send>(
        &self,
        store: &mut Store<T>,
        request: &http_handler::Request,
    ) -> wasmtime::Result<http_handler::Response> {
        match self {
            Self::Latest(plugin) => {
                plugin
                    .ucms_plugin_http_handler()
                    .call_handle(store, request)
                    .await
            }
            Self::V0_1(plugin) => {
                let request = v0_1_0::request(request);
                let response = plugin
                    .ucms_plugin_http_handler()
                    .call_handle(store, &request)
                    .await?;
                Ok(v0_1_0::response(response))
            }
            Self::V0_2(plugin) => {
                let request = v0_2_0::request(request);
                let response = plugin
                    .ucms_plugin_http_handler()
                    .call_handle(store, &request)
                    .await?;
                Ok(v0_2_0::response(response))
            }
        }
    }

    pub async fn handle_event<T: Send>(
        &self,
        store: &mut Store<T>,
        event: &event_handler::Event,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Self::Latest(plugin) => {
                plugin
                    .ucms_plugin_event_handler()
                    .call_handle(store, event)
                    .await
            }
            Self::V0_1(plugin) => {
                plugin
                    .ucms_plugin_event_handler()
                    .call_handle(store, &v0_1_0::event(event))
                    .await
            }
            Self::V0_2(plugin) => {
                plugin
                    .ucms_plugin_event_handler()
                    .call_handle(store, &v0_2_0::event(event))
                    .await
            }
        }
    }

    /// Calls the `hooks.handle` export (0.2.1 and later).
    pub async fn handle_hook<T: Send>(
        &self,
        store: &mut Store<T>,
        point: &str,
        value: &[u8],
        principal: &latest::ucms::host::types::Principal,
    ) -> wasmtime::Result<hooks::HookOutcome> {
        match self {
            Self::Latest(plugin) => {
                plugin
                    .ucms_plugin_hooks()
                    .call_handle(store, point, value, principal)
                    .await
            }
            Self::V0_1(_) | Self::V0_2(_) => Err(MissingExport("ucms:plugin/hooks").into()),
        }
    }

    /// Calls the `scheduler.tick` export (0.2.1 and later).
    pub async fn tick<T: Send>(
        &self,
        store: &mut Store<T>,
        name: &str,
        scheduled_at_ms: u64,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Self::Latest(plugin) => {
                plugin
                    .ucms_plugin_scheduler()
                    .call_tick(store, name, scheduled_at_ms)
                    .await
            }
            Self::V0_1(_) | Self::V0_2(_) => Err(MissingExport("ucms:plugin/scheduler").into()),
        }
    }

    pub async fn install<T: Send>(
        &self,
        store: &mut Store<T>,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Self::Latest(p) => p.ucms_plugin_lifecycle().call_install(store).await,
            Self::V0_2(p) => p.ucms_plugin_lifecycle().call_install(store).await,
            Self::V0_1(p) => p.ucms_plugin_lifecycle().call_install(store).await,
        }
    }

    pub async fn upgrade<T: Send>(
        &self,
        store: &mut Store<T>,
        previous: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Self::Latest(p) => {
                p.ucms_plugin_lifecycle()
                    .call_upgrade(store, previous)
                    .await
            }
            Self::V0_2(p) => {
                p.ucms_plugin_lifecycle()
                    .call_upgrade(store, previous)
                    .await
            }
            Self::V0_1(p) => {
                p.ucms_plugin_lifecycle()
                    .call_upgrade(store, previous)
                    .await
            }
        }
    }

    pub async fn uninstall<T: Send>(
        &self,
        store: &mut Store<T>,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Self::Latest(p) => p.ucms_plugin_lifecycle().call_uninstall(store).await,
            Self::V0_2(p) => p.ucms_plugin_lifecycle().call_uninstall(store).await,
            Self::V0_1(p) => p.ucms_plugin_lifecycle().call_uninstall(store).await,
        }
    }
}
