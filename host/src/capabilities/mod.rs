//! The `ucms:host` interfaces, one module each.
//!
//! Every capability module has the same shape: an `add_to_linker` that links its interface, a
//! small per-call view (`KvCtx`, `EventsCtx`, …) built from the invocation's state, the `Host`
//! implementation on that view, and, where data lives somewhere, a backend trait with one
//! implementation per database. [`link`] links exactly the capabilities a plugin's manifest grants;
//! an interface that isn't granted is not in the linker at all, so a component that imports it
//! can't even be instantiated (and is refused at install, naming the import).
//!
//! Adding a capability touches: the WIT, one module here, one arm in [`link`], one field of
//! [`PluginCapabilities`] if it keeps per-plugin state, one manifest key, and its tests.

pub mod auth;
pub mod blobs;
pub mod cache;
pub mod config;
pub mod documents;
pub mod events;
pub mod hooks;
pub mod http_client;
pub mod kv;
pub mod log;
pub mod rate;
mod since_v0_1_0;

use ucms_manifest::Capability;
use wasmtime::component::{HasData, Linker};

use crate::wit::latest::ucms::host::types;

/// Per-plugin state of the capabilities, built once when the plugin loads.
#[derive(Debug)]
pub struct PluginCapabilities {
    /// `limits.log-lines-per-minute`.
    pub log: rate::PerMinute,
    /// `limits.events-per-minute`.
    pub events: rate::PerMinute,
    pub settings: config::PluginSettings,
    /// Present when `http-client` is granted.
    pub http: Option<http_client::HttpClientState>,
    /// Present when `documents` is granted.
    pub documents: Option<documents::DocumentsState>,
    /// Present when `blobs` is granted.
    pub blobs: Option<blobs::BlobsState>,
    /// Present when `hooks` is granted.
    pub hooks: Option<hooks::HooksState>,
}

/// Store data that can give every capability its view (and WASI its context).
pub trait HostView:
    wasmtime_wasi::WasiView
    + kv::KvView
    + log::LogView
    + config::ConfigView
    + events::EventsView
    + auth::AuthView
    + http_client::HttpClientView
    + documents::DocumentsView
    + blobs::BlobsView
    + cache::CacheView
    + hooks::HooksView
    + 'static
{
}

impl<T> HostView for T where
    T: wasmtime_wasi::WasiView
        + kv::KvView
        + log::LogView
        + config::ConfigView
        + events::EventsView
        + auth::AuthView
        + http_client::HttpClientView
        + documents::DocumentsView
        + blobs::BlobsView
        + cache::CacheView
        + hooks::HooksView
        + 'static
{
}

/// Links WASI (no files, no environment, no network) and the granted `ucms:host` interfaces, in
/// every supported API version.
pub fn link<T: HostView>(linker: &mut Linker<T>, granted: &[Capability]) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    since_v0_1_0::link(linker, granted)?;
    // `types` declares only types; every plugin may import it.
    types::add_to_linker::<T, TypesOnly>(linker, |_| TypesOnly)?;
    for capability in granted {
        match capability {
            Capability::Kv => kv::add_to_linker(linker)?,
            Capability::Log => log::add_to_linker(linker)?,
            Capability::Config => config::add_to_linker(linker)?,
            Capability::Events => events::add_to_linker(linker)?,
            Capability::Auth => auth::add_to_linker(linker)?,
            Capability::HttpClient => http_client::add_to_linker(linker)?,
            Capability::Documents => documents::add_to_linker(linker)?,
            Capability::Blobs => blobs::add_to_linker(linker)?,
            Capability::Cache => cache::add_to_linker(linker)?,
            Capability::Hooks => hooks::add_to_linker(linker)?,
        }
    }
    Ok(())
}

struct TypesOnly;

impl HasData for TypesOnly {
    type Data<'a> = TypesOnly;
}

impl types::Host for TypesOnly {}
