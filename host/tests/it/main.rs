//! Integration tests of the host: real guest components (built from source by
//! `ucms-test-components`) run by the real runtime, HTTP through the real router or a socket,
//! storage on SQLite and on PostgreSQL.

mod cli;
mod data;
mod egress;
mod events;
mod install;
mod kv;
mod lifecycle;
mod routes;
#[path = "../../blobs/tests/suite/s3_server.rs"]
mod s3_server;
mod sandbox;
mod support;
