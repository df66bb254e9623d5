//! Write UCMS plugins in Rust.
//!
//! A UCMS plugin is a WebAssembly component that the UCMS host runs in a sandbox, one fresh instance
//! per request or event. This crate wraps the generated `ucms:plugin@0.2.1` bindings in a small,
//! typed API:
//!
//! - [`Router`], [`Request`], [`Response`] and [`Error`] serve the routes your manifest declares;
//! - [`kv`] stores typed values (serde) in the plugin's private key-value store;
//! - [`documents`] stores typed JSON documents in collections, with revisions, filters, sorting,
//!   cursors, full-text search and all-or-nothing batches;
//! - [`blobs`] stores files (uploads, exports) in chunks, and [`Request::uploads`] hands over the
//!   ones the host streamed in on an `upload = true` route;
//! - [`cache`] keeps expensive results for a while, with tags to drop groups of them at once;
//! - [`events`] publishes events, and [`Plugin::on_event`] receives the ones you subscribe to;
//! - [`auth`] tells who is calling and checks your plugin's permissions (with conditions such as
//!   `own`: [`auth::access`]);
//! - [`hooks`] runs the hook points you own and, with [`Plugin::hooks`], joins other plugins' ones;
//! - [`schedules`] runs the cron schedules your manifest declares ([`Plugin::schedules`]);
//! - [`config`] reads the settings and secrets the site owner set;
//! - [`log`] writes structured log lines attributed to your plugin;
//! - [`http`] makes outbound HTTP requests to the hosts your manifest lists.
//!
//! One call to [`export!`] turns a type implementing [`Plugin`] into the component's exports and
//! stamps the API version into the component, so the host can check compatibility before it runs
//! anything.
//!
//! # Example
//!
//! ```no_run
//! use ucms_sdk::{Plugin, Request, Response, Result, Router, kv};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn router() -> Router {
//!         Router::new()
//!             .get("/greet", greet)
//!             .post("/counter", count)
//!     }
//! }
//!
//! fn greet(req: Request) -> Result<Response> {
//!     let name = req.query("name").unwrap_or("world");
//!     Ok(Response::json(&serde_json::json!({ "greeting": format!("Hello, {name}!") })))
//! }
//!
//! fn count(_req: Request) -> Result<Response> {
//!     let value = kv::increment("counter", 1)?;
//!     Ok(Response::json(&serde_json::json!({ "value": value })))
//! }
//!
//! ucms_sdk::export!(Hello);
//! ```
//!
//! The matching manifest (`ucms-plugin.toml`) declares the routes, who may call them and the
//! capabilities the plugin uses; see `docs/plugin-guide.md` in the UCMS repository.

// The generated bindings and the export glue need `unsafe`; the API on top of them does not.
#![allow(unsafe_code)]

pub mod auth;
pub mod blobs;
pub mod cache;
pub mod config;
pub mod documents;
mod error;
pub mod events;
pub mod hooks;
pub mod http;
pub mod kv;
pub mod log;
mod request;
mod response;
mod router;
pub mod schedules;

pub use auth::Principal;
pub use error::{Error, Result};
pub use events::Event;
pub use request::{Request, RequestBuilder, Upload};
pub use response::Response;
pub use router::Router;

/// The `ucms:host` API version this SDK targets, stamped into every component it exports.
pub const API_VERSION: &str = "0.2.1";

/// The raw bindings generated from the UCMS WIT files. Prefer the typed API of this crate; these are
/// here for what it does not cover yet.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "ucms:plugin/plugin@0.2.1",
        path: ["../../wit/v0.2.1/host", "../../wit/v0.2.1/plugin"],
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "ucms_sdk::bindings",
        generate_all,
    });
}

/// What a plugin provides. Every method has a default, so implement only what your manifest uses.
pub trait Plugin {
    /// The routes this plugin serves. Each must also be declared under `[[routes]]` in the manifest,
    /// with the same method and path pattern.
    fn router() -> Router {
        Router::new()
    }

    /// Handles one event of a subscribed topic. Returning an error asks the host to deliver it again
    /// later; after the last attempt it becomes a dead letter.
    fn on_event(event: Event) -> Result<()> {
        Err(Error::internal(format!(
            "this plugin subscribes to '{}' but does not implement Plugin::on_event",
            event.topic
        )))
    }

    /// The hook points this plugin joins (each also under `[[hooks]]` in the manifest).
    fn hooks() -> hooks::Hooks {
        hooks::Hooks::new()
    }

    /// The schedules this plugin runs (each also under `[[schedules]]` in the manifest).
    fn schedules() -> schedules::Schedules {
        schedules::Schedules::new()
    }

    /// Runs once when the plugin is installed, before it serves anything.
    fn install() -> Result<()> {
        Ok(())
    }

    /// Runs when a newer version replaces `previous_version`; migrate stored data here.
    fn upgrade(previous_version: &str) -> Result<()> {
        let _ = previous_version;
        Ok(())
    }

    /// Runs when the plugin is removed.
    fn uninstall() -> Result<()> {
        Ok(())
    }
}

/// Exports a [`Plugin`] implementation as the component's `ucms:plugin` exports and stamps the API
/// version into the component.
///
/// Call it once, at the top level of your crate: `ucms_sdk::export!(MyPlugin);`
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        const _: () = {
            struct UcmsExports;

            impl $crate::bindings::exports::ucms::plugin::http_handler::Guest for UcmsExports {
                fn handle(
                    request: $crate::bindings::exports::ucms::plugin::http_handler::Request,
                ) -> $crate::bindings::exports::ucms::plugin::http_handler::Response {
                    $crate::__private::handle_http::<$plugin>(request)
                }
            }

            impl $crate::bindings::exports::ucms::plugin::event_handler::Guest for UcmsExports {
                fn handle(
                    event: $crate::bindings::exports::ucms::plugin::event_handler::Event,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::handle_event::<$plugin>(event)
                }
            }

            impl $crate::bindings::exports::ucms::plugin::lifecycle::Guest for UcmsExports {
                fn install() -> ::core::result::Result<(), ::std::string::String> {
                    <$plugin as $crate::Plugin>::install().map_err(|e| e.to_string())
                }
                fn upgrade(
                    previous_version: ::std::string::String,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    <$plugin as $crate::Plugin>::upgrade(&previous_version)
                        .map_err(|e| e.to_string())
                }
                fn uninstall() -> ::core::result::Result<(), ::std::string::String> {
                    <$plugin as $crate::Plugin>::uninstall().map_err(|e| e.to_string())
                }
            }

            impl $crate::bindings::exports::ucms::plugin::hooks::Guest for UcmsExports {
                fn handle(
                    point: ::std::string::String,
                    value: ::std::vec::Vec<u8>,
                    principal: $crate::bindings::ucms::host::types::Principal,
                ) -> $crate::bindings::exports::ucms::plugin::hooks::HookOutcome {
                    $crate::__private::handle_hook::<$plugin>(point, value, principal)
                }
            }

            impl $crate::bindings::exports::ucms::plugin::scheduler::Guest for UcmsExports {
                fn tick(
                    name: ::std::string::String,
                    scheduled_at_ms: u64,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::handle_tick::<$plugin>(name, scheduled_at_ms)
                }
            }

    $crate::bindings::__export_plugin_world!(UcmsExports with_types_in $crate::bindings);

            // The host reads this custom section before it instantiates anything.
            #[used]
            #[unsafe(link_section = "ucms:api-version")]
            static UCMS_API_VERSION: [u8; $crate::API_VERSION.len()] =
                $crate::__private::api_version_bytes();
        };
    };
}

#[doc(hidden)]
pub mod __private {
    use crate::bindings::exports::ucms::plugin::{event_handler, http_handler};
    use crate::{Event, Plugin, Request, Response};

    pub const fn api_version_bytes<const N: usize>() -> [u8; N] {
        let src = crate::API_VERSION.as_bytes();
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N {
            out[i] = src[i];
            i += 1;
        }
        out
    }

    pub fn handle_http<P: Plugin>(raw: http_handler::Request) -> http_handler::Response {
        let request = Request::from_raw(raw);
        let response = match P::router().dispatch(request) {
            Ok(response) => response,
            Err(error) => Response::from(error),
        };
        response.into_raw()
    }

    pub fn handle_event<P: Plugin>(raw: event_handler::Event) -> Result<(), String> {
        P::on_event(Event::from_raw(raw)).map_err(|e| e.to_string())
    }

    pub fn handle_hook<P: Plugin>(
        point: String,
        value: Vec<u8>,
        principal: crate::bindings::ucms::host::types::Principal,
    ) -> crate::bindings::exports::ucms::plugin::hooks::HookOutcome {
        P::hooks().dispatch(point, value, crate::Principal::from_raw(principal))
    }

    pub fn handle_tick<P: Plugin>(name: String, scheduled_at_ms: u64) -> Result<(), String> {
        P::schedules()
            .dispatch(name, scheduled_at_ms)
            .map_err(|e| e.to_string())
    }
}
