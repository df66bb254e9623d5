//! What a plugin component asks for, read from its bytes without compiling it, and checked
//! against its manifest. The host runs this before installing; the registry before accepting a
//! publish.
//!
//! Every top-level import is classified: a `ucms:host` interface must be one of the API versions
//! this side supports and be granted by the manifest; WASI interfaces that Rust's standard library
//! pulls in are allowed (the host gives them no files, environment or network); sockets and
//! anything unknown are refused. The `ucms:plugin` exports must be there, and the API version the
//! SDK stamped into the component must be supported and satisfy the manifest's `api`.

use std::collections::BTreeSet;

use semver::Version;
use ucms_manifest::{Capability, Manifest};

/// The custom section the SDK writes the API version into.
pub const API_SECTION: &str = "ucms:api-version";

/// The exports a plugin component must have.
pub const REQUIRED_EXPORTS: [&str; 3] = ["http-handler", "event-handler", "lifecycle"];

/// WASI packages a guest may import: the parts Rust's standard library uses.
const ALLOWED_WASI: [&str; 5] = [
    "wasi:io",
    "wasi:cli",
    "wasi:clocks",
    "wasi:random",
    "wasi:filesystem",
];

/// What a component declares about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// The API version stamped by the SDK, if any.
    pub api_stamp: Option<Version>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ComponentError {
    #[error("the file is not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error(
        "the component imports {interface}, but ucms-plugin.toml does not grant `{capability}`\n  hint: add `{capability} = true` (with its scopes) under [capabilities], or stop using that interface"
    )]
    UndeclaredImport {
        interface: String,
        capability: Capability,
    },
    #[error(
        "the component imports {interface}, which this host doesn't provide (it provides ucms:host {supported})\n  hint: {hint}"
    )]
    UnsupportedImport {
        interface: String,
        supported: String,
        hint: String,
    },
    #[error("the component imports {interface}: {reason}")]
    ForbiddenImport { interface: String, reason: String },
    #[error(
        "the component does not export {0}\n  hint: build it with the UCMS SDK (ucms_sdk::export!) or implement the ucms:plugin world"
    )]
    MissingExport(String),
    #[error("{0}")]
    ApiMismatch(String),
    #[error("{0}")]
    Unsupported(String),
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

/// Reads a component's top-level imports, exports and API stamp.
pub fn read(wasm: &[u8]) -> Result<ComponentInfo, ComponentError> {
    let mut info = ComponentInfo {
        imports: Vec::new(),
        exports: Vec::new(),
        api_stamp: None,
    };
    let mut depth = 0usize;
    let mut is_component = false;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| ComponentError::NotAComponent(e.to_string()))?;
        match payload {
            wasmparser::Payload::Version { encoding, .. } if depth == 0 => {
                is_component = encoding == wasmparser::Encoding::Component;
            }
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import =
                        import.map_err(|e| ComponentError::NotAComponent(e.to_string()))?;
                    info.imports.push(import.name.name.to_string());
                }
            }
            wasmparser::Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export =
                        export.map_err(|e| ComponentError::NotAComponent(e.to_string()))?;
                    info.exports.push(export.name.name.to_string());
                }
            }
            wasmparser::Payload::CustomSection(section) if section.name() == API_SECTION => {
                let text = std::str::from_utf8(section.data()).unwrap_or_default();
                info.api_stamp = Some(Version::parse(text.trim()).map_err(|_| {
                    ComponentError::ApiMismatch(format!("the component's {API_SECTION} section holds '{text}', which is not a version"))
                })?);
            }
            _ => {}
        }
    }
    if !is_component {
        return Err(ComponentError::NotAComponent(
            "it is a core module; build for wasm32-wasip2 (or run it through wasm-tools component new)".into(),
        ));
    }
    Ok(info)
}

/// Checks a component against its manifest for a host providing `supported` API versions.
/// Returns the capabilities it imports (all granted).
pub fn check(
    info: &ComponentInfo,
    manifest: &Manifest,
    supported: &[Version],
) -> Result<Vec<Capability>, ComponentError> {
    let supported_list = supported
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let newest = supported
        .iter()
        .max()
        .cloned()
        .unwrap_or(Version::new(0, 0, 0));
    let mut imported = BTreeSet::new();
    for name in &info.imports {
        let Some((package, iface, version)) = parse_interface(name) else {
            return Err(ComponentError::ForbiddenImport {
                interface: name.clone(),
                reason: "plugins may import only ucms:host and a few wasi interfaces".into(),
            });
        };
        match package {
            "ucms:host" => {
                let version = version.unwrap_or(Version::new(0, 0, 0));
                if !supported.contains(&version) {
                    return Err(ComponentError::UnsupportedImport {
                        interface: name.clone(),
                        supported: supported_list,
                        hint: if version > newest {
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
                    return Err(ComponentError::UnsupportedImport {
                        interface: name.clone(),
                        supported: supported_list,
                        hint: format!("ucms:host has no interface '{iface}'"),
                    });
                };
                if version < capability.since() {
                    return Err(ComponentError::UnsupportedImport {
                        interface: name.clone(),
                        supported: supported_list,
                        hint: format!(
                            "ucms:host/{iface} exists since ucms:host {}; rebuild the plugin with a current SDK",
                            capability.since()
                        ),
                    });
                }
                if !manifest.capabilities.grants(capability) {
                    return Err(ComponentError::UndeclaredImport {
                        interface: name.clone(),
                        capability,
                    });
                }
                imported.insert(capability);
            }
            "wasi:sockets" | "wasi:http" => {
                return Err(ComponentError::ForbiddenImport {
                    interface: name.clone(),
                    reason: "plugins reach the network only through ucms:host/http-client".into(),
                });
            }
            p if ALLOWED_WASI.contains(&p) => {}
            _ => {
                return Err(ComponentError::ForbiddenImport {
                    interface: name.clone(),
                    reason: "plugins may import only ucms:host and the wasi interfaces of Rust's standard library".into(),
                });
            }
        }
    }
    for required in REQUIRED_EXPORTS {
        let found = info.exports.iter().any(|name| {
            parse_interface(name).is_some_and(|(p, i, v)| {
                p == "ucms:plugin"
                    && i == required
                    && v.as_ref().is_some_and(|v| supported.contains(v))
            })
        });
        if !found {
            return Err(ComponentError::MissingExport(format!(
                "ucms:plugin/{required}@{newest}"
            )));
        }
    }
    // Upload routes hand the plugin `uploads`, which a 0.1.0 handler has no field for.
    let uploads_since = Version::new(0, 2, 0);
    if let Some(route) = manifest.routes.iter().find(|r| r.upload) {
        let handler = info.exports.iter().find_map(|name| {
            parse_interface(name)
                .filter(|(p, i, _)| *p == "ucms:plugin" && *i == "http-handler")
                .and_then(|(_, _, v)| v)
        });
        if handler.is_some_and(|v| v < uploads_since) {
            return Err(ComponentError::Unsupported(format!(
                "route {} {} is an upload route, which needs ucms:plugin {uploads_since} or later, but the component was built for an older API\n  hint: rebuild the plugin with a current SDK",
                route.method, route.path
            )));
        }
    }
    // Hooks and schedules are run through exports that exist since 0.2.1.
    let exports_since = Version::new(0, 2, 1);
    let exported = |iface: &str| {
        info.exports.iter().find_map(|name| {
            parse_interface(name)
                .filter(|(p, i, _)| *p == "ucms:plugin" && *i == iface)
                .and_then(|(_, _, v)| v)
        })
    };
    if !manifest.hooks.is_empty() && exported("hooks").is_none_or(|v| v < exports_since) {
        let points: Vec<&str> = manifest.hooks.iter().map(|h| h.point.as_str()).collect();
        return Err(ComponentError::Unsupported(format!(
            "the manifest joins hook points ({}), but the component has no ucms:plugin/hooks export (it exists since ucms:plugin {exports_since})\n  hint: rebuild the plugin with an SDK for ucms:host {exports_since} or later, or remove [[hooks]]",
            points.join(", ")
        )));
    }
    if !manifest.schedules.is_empty() && exported("scheduler").is_none_or(|v| v < exports_since) {
        let names: Vec<&str> = manifest.schedules.iter().map(|s| s.name.as_str()).collect();
        return Err(ComponentError::Unsupported(format!(
            "the manifest declares schedules ({}), but the component has no ucms:plugin/scheduler export (it exists since ucms:plugin {exports_since})\n  hint: rebuild the plugin with an SDK for ucms:host {exports_since} or later, or remove [[schedules]]",
            names.join(", ")
        )));
    }
    check_api(
        manifest,
        info.api_stamp.as_ref(),
        supported,
        &supported_list,
        &newest,
    )?;
    Ok(imported.into_iter().collect())
}

fn check_api(
    manifest: &Manifest,
    stamp: Option<&Version>,
    supported: &[Version],
    list: &str,
    newest: &Version,
) -> Result<(), ComponentError> {
    if !supported.iter().any(|v| manifest.api.matches(v)) {
        return Err(ComponentError::ApiMismatch(format!(
            "the manifest asks for ucms:host {}, but this host provides {list}\n  hint: set `api` to a requirement this host meets, for example \"^{newest}\"",
            manifest.api
        )));
    }
    if let Some(stamp) = stamp {
        if !supported.contains(stamp) {
            return Err(ComponentError::ApiMismatch(format!(
                "the component was built with the SDK for ucms:host {stamp}, but this host provides {list}\n  hint: rebuild the plugin with an SDK this host supports"
            )));
        }
        if !manifest.api.matches(stamp) {
            return Err(ComponentError::ApiMismatch(format!(
                "the component was built for ucms:host {stamp}, outside the manifest's api = \"{}\"\n  hint: make `api` match the SDK the plugin is built with",
                manifest.api
            )));
        }
    }
    Ok(())
}
