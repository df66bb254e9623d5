//! The WIT a JavaScript or Python plugin is built against, written out from this binary's own
//! copy of `wit/v0.2.1`, with the `plugin` world narrowed to the interfaces the manifest grants.
//!
//! componentize-js and componentize-py import every interface of the world they target, used or
//! not; the host refuses an import the manifest doesn't grant. So the world they get imports
//! exactly the granted `ucms:host` interfaces (and exports all of `ucms:plugin`), the same
//! subset a Rust plugin ends up importing when it uses what it was granted.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ucms_manifest::{Capability, Manifest};

/// The API version the built components are stamped with.
pub const API_VERSION: &str = "0.2.1";

/// `ucms:host@0.2.1`, file by file.
const HOST_FILES: &[(&str, &str)] = &[
    (
        "auth.wit",
        include_str!("../../../wit/v0.2.1/host/auth.wit"),
    ),
    (
        "blobs.wit",
        include_str!("../../../wit/v0.2.1/host/blobs.wit"),
    ),
    (
        "cache.wit",
        include_str!("../../../wit/v0.2.1/host/cache.wit"),
    ),
    (
        "config.wit",
        include_str!("../../../wit/v0.2.1/host/config.wit"),
    ),
    (
        "documents.wit",
        include_str!("../../../wit/v0.2.1/host/documents.wit"),
    ),
    (
        "events.wit",
        include_str!("../../../wit/v0.2.1/host/events.wit"),
    ),
    (
        "hooks.wit",
        include_str!("../../../wit/v0.2.1/host/hooks.wit"),
    ),
    (
        "http-client.wit",
        include_str!("../../../wit/v0.2.1/host/http-client.wit"),
    ),
    ("kv.wit", include_str!("../../../wit/v0.2.1/host/kv.wit")),
    ("log.wit", include_str!("../../../wit/v0.2.1/host/log.wit")),
    (
        "types.wit",
        include_str!("../../../wit/v0.2.1/host/types.wit"),
    ),
];

/// `ucms:plugin@0.2.1`: its interfaces, then the `plugin` world (replaced when written out).
const PLUGIN_FILE: &str = include_str!("../../../wit/v0.2.1/plugin/plugin.wit");

/// The exports every plugin has.
const EXPORTS: [&str; 5] = [
    "http-handler",
    "event-handler",
    "lifecycle",
    "hooks",
    "scheduler",
];

/// The `plugin` world for `manifest`: the granted `ucms:host` interfaces, every export.
pub fn world(manifest: &Manifest) -> String {
    let mut out = String::from(
        "/// Written by `ucms plugin build`: the interfaces ucms-plugin.toml grants, and every export.\nworld plugin {\n",
    );
    for capability in Capability::ALL {
        if manifest.capabilities.grants(capability) {
            out.push_str(&format!(
                "    import ucms:host/{}@{API_VERSION};\n",
                capability.name()
            ));
        }
    }
    for export in EXPORTS {
        out.push_str(&format!("    export {export};\n"));
    }
    out.push_str("}\n");
    out
}

/// Writes the WIT package for `manifest` into `dir` (replacing what was there): `plugin.wit`
/// (the `ucms:plugin` interfaces and the narrowed world) and `deps/host/*.wit`. Returns `dir`.
pub fn write(dir: &Path, manifest: &Manifest) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let host = dir.join("deps").join("host");
    std::fs::create_dir_all(&host).with_context(|| format!("cannot create {}", host.display()))?;
    for (name, text) in HOST_FILES {
        std::fs::write(host.join(name), text)?;
    }
    std::fs::write(dir.join("plugin.wit"), plugin_package(manifest)?)?;
    Ok(dir.to_path_buf())
}

/// `plugin.wit` with its world narrowed to `manifest`'s grants.
fn plugin_package(manifest: &Manifest) -> anyhow::Result<String> {
    let start = PLUGIN_FILE
        .find("\nworld plugin {")
        .context("wit/v0.2.1/plugin/plugin.wit has no `world plugin`")?;
    // Keep the doc comment lines right above the world out, too.
    let head = PLUGIN_FILE[..start]
        .trim_end()
        .trim_end_matches(|c| c != '}')
        .to_string();
    Ok(format!("{head}\n\n{}", world(manifest)))
}

/// The `ucms:host` interfaces a bundled JavaScript file imports (`ucms:host/kv@0.2.1` → `kv`),
/// read from its `import … from "ucms:host/…"` statements.
pub fn host_imports(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for quote in ['"', '\''] {
        let needle = format!("{quote}ucms:host/");
        let mut rest = source;
        while let Some(at) = rest.find(&needle) {
            let tail = &rest[at + needle.len()..];
            let end = tail.find(quote).unwrap_or(tail.len());
            let name = tail[..end]
                .split('@')
                .next()
                .unwrap_or_default()
                .to_string();
            if !name.is_empty() && !found.contains(&name) {
                found.push(name);
            }
            rest = &tail[end..];
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
        id = "tt"
        version = "0.1.0"
        publisher = "me"
        description = "t"
        api = "^0.2"
        [capabilities]
        kv = true
        documents = {}
    "#;

    #[test]
    fn the_world_imports_only_what_the_manifest_grants() {
        let manifest = Manifest::parse(MANIFEST).unwrap();
        let text = plugin_package(&manifest).unwrap();
        assert!(text.starts_with("package ucms:plugin@0.2.1;"), "{text}");
        assert!(text.contains("import ucms:host/kv@0.2.1;"));
        assert!(text.contains("import ucms:host/documents@0.2.1;"));
        assert!(!text.contains("import ucms:host/log@0.2.1;"));
        assert!(text.contains("export scheduler;"));
        // The interfaces stay, the original world goes.
        assert!(text.contains("interface http-handler"));
        assert_eq!(text.matches("world plugin").count(), 1);
    }

    #[test]
    fn imports_are_read_from_a_bundle() {
        let bundle = r#"import { get } from "ucms:host/kv@0.2.1";
import { write as w } from 'ucms:host/log@0.2.1';
import { get as g2 } from "ucms:host/kv@0.2.1";"#;
        assert_eq!(host_imports(bundle), vec!["kv", "log"]);
    }
}
