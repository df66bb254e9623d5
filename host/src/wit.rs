//! Host bindings for every supported version of the UCMS WIT API.
//!
//! Each released `ucms:host` / `ucms:plugin` version has a frozen folder under `wit/` and a module
//! here. The newest one is [`latest`]; the host implements its `Host` traits. When a new version is
//! released, the previous module stays, its `Host` traits forward to `latest` through conversions,
//! and [`SUPPORTED_API`] widens, so components built against an older SDK keep working.

use semver::Version;

/// The `ucms:host` API versions this host can link, oldest first.
pub const SUPPORTED_API: &[Version] = &[Version::new(0, 1, 0)];

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

/// `0.1.0, 0.2.0`: for error messages.
pub fn supported_list() -> String {
    SUPPORTED_API
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        world: "ucms:plugin/plugin@0.1.0",
        path: ["../wit/v0.1.0/host", "../wit/v0.1.0/plugin"],
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub use v0_1_0 as latest;
