//! What a component asks for, checked against its manifest before anything runs.
//!
//! Every import is classified: a `ucms:host` interface must be supported by this host and granted
//! by the manifest; WASI interfaces that Rust's standard library pulls in are allowed (the host
//! gives them no files, environment or network); sockets and anything unknown are refused. The API
//! version the SDK stamped into the component must be one this host supports and satisfy the
//! manifest's `api` requirement.

use std::collections::BTreeSet;

use semver::Version;
use ucms_manifest::{Capability, Manifest};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::PluginError;
use crate::wit;

/// The custom section the SDK writes the API version into.
pub const API_SECTION: &str = "ucms:api-version";

/// The exports a plugin component must have.
const REQUIRED_EXPORTS: [&str; 3] = ["http-handler", "event-handler", "lifecycle"];

/// WASI packages a guest may import: the parts Rust's standard library uses.
const ALLOWED_WASI: [&str; 5] = [
    "wasi:io",
    "wasi:cli",
    "wasi:clocks",
    "wasi:random",
    "wasi:filesystem",
];

/// What inspection found.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Capabilities the component imports (all granted).
    pub imported: Vec<Capability>,
    /// The API version stamped by the SDK, if any.
    pub api_stamp: Option<Version>,
    /// Every import name, for listings.
    pub imports: Vec<String>,
}

/// Splits `ns:pkg/iface@1.2.3` into (`ns:pkg`, `iface`, version).
fn parse_interface(name: &str) -> Option<(&str, &str, Option<Version>)> {
    let (pkg, rest) = name.split_once('/')?;
    let (iface, version) = match rest.split_once('@') {
        Some((i, v)) => (i, Version::parse(v).ok()),
        None => (rest, None),
    };
    Some((pkg, iface, version))
}

pub fn inspect(
    engine: &Engine,
    component: &Component,
    wasm: &[u8],
    manifest: &Manifest,
) -> Result<Inspection, PluginError> {
    let ty = component.component_type();
    let mut imported = BTreeSet::new();
    let mut imports = Vec::new();
    for (name, _) in ty.imports(engine) {
        imports.push(name.to_string());
        let Some((package, iface, version)) = parse_interface(name) else {
            return Err(PluginError::ForbiddenImport {
                interface: name.to_string(),
                reason: "plugins may import only ucms:host and a few wasi interfaces".into(),
            });
        };
        match package {
            "ucms:host" => {
                let version = version.unwrap_or(Version::new(0, 0, 0));
                if !wit::supports(&version) {
                    return Err(PluginError::UnsupportedImport {
                        interface: name.to_string(),
                        supported: wit::supported_list(),
                        hint: if &version > wit::latest_api() {
                            "the plugin was built with a newer SDK than this host supports; upgrade UCMS, or build the plugin with an SDK for this host".into()
                        } else {
                            "rebuild the plugin with a current SDK".into()
                        },
                    });
                }
                if iface == "types" {
                    continue;
                }
                let Some(capability) = Capability::from_name(iface) else {
                    return Err(PluginError::UnsupportedImport {
                        interface: name.to_string(),
                        supported: wit::supported_list(),
                        hint: format!("ucms:host has no interface '{iface}'"),
                    });
                };
                if !manifest.capabilities.grants(capability) {
                    return Err(PluginError::UndeclaredImport {
                        interface: name.to_string(),
                        capability,
                    });
                }
                imported.insert(capability);
            }
            "wasi:sockets" | "wasi:http" => {
                return Err(PluginError::ForbiddenImport {
                    interface: name.to_string(),
                    reason: "plugins reach the network only through ucms:host/http-client".into(),
                });
            }
            p if ALLOWED_WASI.contains(&p) => {}
            _ => {
                return Err(PluginError::ForbiddenImport {
                    interface: name.to_string(),
                    reason: "plugins may import only ucms:host and the wasi interfaces of Rust's standard library".into(),
                });
            }
        }
    }
    for required in REQUIRED_EXPORTS {
        let found = ty.exports(engine).any(|(name, item)| {
            matches!(item.ty, ComponentItem::ComponentInstance(_))
                && parse_interface(name).is_some_and(|(p, i, v)| {
                    p == "ucms:plugin" && i == required && v.as_ref().is_some_and(wit::supports)
                })
        });
        if !found {
            return Err(PluginError::MissingExport(format!(
                "ucms:plugin/{required}@{}",
                wit::latest_api()
            )));
        }
    }
    // Declared in the manifest format already; run by later API versions.
    if !manifest.hooks.is_empty() {
        let points: Vec<&str> = manifest.hooks.iter().map(|h| h.point.as_str()).collect();
        return Err(PluginError::Unsupported(format!(
            "the manifest joins hook points ({}), but ucms:plugin {} has no hooks export to run them\n  hint: remove [[hooks]] until the plugin targets an API version with hooks",
            points.join(", "),
            wit::latest_api()
        )));
    }
    if !manifest.schedules.is_empty() {
        return Err(PluginError::Unsupported(format!(
            "the manifest declares schedules, but ucms:plugin {} has no scheduled-task export to run them\n  hint: remove [[schedules]] until the plugin targets an API version with schedules",
            wit::latest_api()
        )));
    }
    let api_stamp = read_api_stamp(wasm)?;
    check_api(manifest, api_stamp.as_ref())?;
    let granted_unused: Vec<Capability> = manifest
        .capabilities
        .granted()
        .into_iter()
        .filter(|c| !imported.contains(c))
        .collect();
    if !granted_unused.is_empty() {
        let names: Vec<&str> = granted_unused.iter().map(|c| c.name()).collect();
        tracing::info!(plugin = %manifest.id, unused = ?names, "the manifest grants capabilities the component doesn't import; they are not linked");
    }
    Ok(Inspection {
        imported: imported.into_iter().collect(),
        api_stamp,
        imports,
    })
}

/// The version in the SDK's custom section, wherever it sits in the component.
fn read_api_stamp(wasm: &[u8]) -> Result<Option<Version>, PluginError> {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| PluginError::Compile(anyhow::anyhow!("{e}")))?;
        if let wasmparser::Payload::CustomSection(section) = payload
            && section.name() == API_SECTION
        {
            let text = std::str::from_utf8(section.data()).unwrap_or_default();
            let version = Version::parse(text.trim()).map_err(|_| {
                PluginError::ApiMismatch(format!(
                    "the component's {API_SECTION} section holds '{text}', which is not a version"
                ))
            })?;
            return Ok(Some(version));
        }
    }
    Ok(None)
}

fn check_api(manifest: &Manifest, stamp: Option<&Version>) -> Result<(), PluginError> {
    if !wit::SUPPORTED_API.iter().any(|v| manifest.api.matches(v)) {
        return Err(PluginError::ApiMismatch(format!(
            "the manifest asks for ucms:host {}, but this host provides {}\n  hint: set `api` to a requirement this host meets, for example \"^{}\"",
            manifest.api,
            wit::supported_list(),
            wit::latest_api()
        )));
    }
    if let Some(stamp) = stamp {
        if !wit::supports(stamp) {
            return Err(PluginError::ApiMismatch(format!(
                "the component was built with the SDK for ucms:host {stamp}, but this host provides {}\n  hint: rebuild the plugin with an SDK this host supports",
                wit::supported_list()
            )));
        }
        if !manifest.api.matches(stamp) {
            return Err(PluginError::ApiMismatch(format!(
                "the component was built for ucms:host {stamp}, outside the manifest's api = \"{}\"\n  hint: make `api` match the SDK the plugin is built with",
                manifest.api
            )));
        }
    }
    Ok(())
}
