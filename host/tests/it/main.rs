//! Integration tests of the host: real guest components (built from source by
//! `ucms-test-components`) run by the real runtime, HTTP through the real router or a socket,
//! storage on SQLite and on PostgreSQL.

mod cli;
mod egress;
mod events;
mod install;
mod kv;
mod lifecycle;
mod routes;
mod sandbox;
mod support;
