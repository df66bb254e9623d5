//! The benchmark harness's reusable parts. The `ucms-bench` binary (`src/main.rs`) runs them from
//! the command line; `faultload` also runs short in this crate's tests.

pub mod faultload;
