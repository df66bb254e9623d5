//! Integration tests of the host: real guest components (built from source by
//! `ucms-test-components`) run by the real runtime, HTTP through the real router or a socket,
//! storage on SQLite and on PostgreSQL.

mod admin_browser;
mod auth_flows;
mod authoring;
mod cli;
mod cluster;
mod content;
mod data;
mod dev;
mod dns_server;
mod docs;
mod egress;
mod events;
mod fuzz_host;
mod hooks;
mod identity;
mod install;
mod kv;
mod lifecycle;
mod oidc_provider;
mod plugin_settings;
mod policy;
mod quarantine;
mod routes;
#[path = "../../blobs/tests/suite/s3_server.rs"]
mod s3_server;
mod sandbox;
mod schedules;
mod support;
mod webhooks;
