//! What a component asks for, checked against its manifest before anything runs: the rules live
//! in [`ucms_package::component`], shared with the registry, which applies them at publish.

use ucms_manifest::{Capability, Manifest};
use ucms_package::component;

use super::PluginError;
use crate::wit;

/// What inspection found.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Capabilities the component imports (all granted).
    pub imported: Vec<Capability>,
    /// The API version stamped by the SDK, if any.
    pub api_stamp: Option<semver::Version>,
    /// Every import name, for listings.
    pub imports: Vec<String>,
}

pub fn inspect(wasm: &[u8], manifest: &Manifest) -> Result<Inspection, PluginError> {
    let info = component::read(wasm)?;
    let imported = component::check(&info, manifest, wit::SUPPORTED_API)?;
    let unused: Vec<&str> = manifest
        .capabilities
        .granted()
        .into_iter()
        .filter(|c| !imported.contains(c))
        .map(|c| c.name())
        .collect();
    if !unused.is_empty() {
        tracing::info!(plugin = %manifest.id, ?unused, "the manifest grants capabilities the component doesn't import; they are not linked");
    }
    Ok(Inspection {
        imported,
        api_stamp: info.api_stamp,
        imports: info.imports,
    })
}
