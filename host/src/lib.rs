//! The UCMS host: a small HTTP server that runs sandboxed WebAssembly plugins.
//!
//! A request flows one way: [`server`] (axum) authenticates the caller ([`identity`]), finds the
//! plugin and route ([`plugins`]), checks the route's permission, and hands the request to
//! [`runtime::invocation`], which instantiates the plugin's component afresh under its limits.
//! The component reaches the outside world only through the `ucms:host` interfaces in
//! [`capabilities`], each linked only when the plugin's manifest grants it. [`site::Site`] wires
//! it all together; [`cli`] is the `ucms` command;
//! [`authoring`], [`dev`] and [`harness`] are the plugin author's tools (`ucms plugin new|build|dev|test`). `docs/ARCHITECTURE.md` has the map.

pub mod authoring;
pub mod capabilities;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod db;
pub mod dev;
pub mod devlog;
pub mod digest;
pub mod harness;
pub mod identity;
pub mod metrics;
pub mod plugins;
pub mod policy;
pub mod runtime;
pub mod schedules;
pub mod server;
pub mod services;
pub mod site;
pub mod telemetry;
pub mod wit;

pub use site::Site;

pub use ucms_registry::client::install_crypto_provider;
