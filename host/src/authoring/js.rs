//! Building a TypeScript (or JavaScript) plugin: type-check with `tsc` (when the project has a
//! `tsconfig.json`), bundle into one ES module with esbuild (the `ucms:host/*` imports left
//! external), check those imports against the manifest, then `componentize-js` against the
//! narrowed world ([`super::wit`]).
//!
//! The tools are found in the plugin's `node_modules`, or beside the `@ucms/sdk` it depends on
//! (a checkout linked with `file:` keeps its own `node_modules`, installed there with `npm ci`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use ucms_manifest::{Capability, Manifest};

use super::{BuildOptions, run_tool};

/// Where the build's intermediate files go, inside the plugin folder.
pub const BUILD_DIR: &str = ".ucms-build";

/// The entry module: `"ucms": {"entry": …}` in package.json, else `src/index.ts` or `src/index.js`.
fn entry(dir: &Path) -> anyhow::Result<PathBuf> {
    let package: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("package.json")).context("cannot read package.json")?,
    )
    .context("package.json is not valid JSON")?;
    if let Some(entry) = package["ucms"]["entry"].as_str() {
        let path = dir.join(entry);
        if !path.is_file() {
            bail!(
                "package.json names the entry {entry}, which does not exist\n  hint: set \"ucms\": {{\"entry\": \"src/index.ts\"}} to the plugin's main module"
            );
        }
        return Ok(path);
    }
    for candidate in ["src/index.ts", "src/index.js", "src/index.mjs"] {
        if dir.join(candidate).is_file() {
            return Ok(dir.join(candidate));
        }
    }
    bail!(
        "found no entry module (src/index.ts)\n  hint: create src/index.ts, or name it in package.json: \"ucms\": {{\"entry\": \"…\"}}"
    )
}

/// The folders holding `node_modules` to look for tools in: the plugin's, then the SDK's.
fn module_roots(dir: &Path) -> Vec<PathBuf> {
    let mut roots = vec![dir.join("node_modules")];
    if let Ok(sdk) = dir.join("node_modules/@ucms/sdk").canonicalize() {
        roots.push(sdk.join("node_modules"));
    }
    roots
}

fn find_tool(dir: &Path, relative: &str) -> Option<PathBuf> {
    module_roots(dir)
        .into_iter()
        .map(|root| root.join(relative))
        .find(|p| p.is_file())
}

fn node() -> anyhow::Result<PathBuf> {
    let node = PathBuf::from(std::env::var("UCMS_NODE").unwrap_or_else(|_| "node".into()));
    match Command::new(&node).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(node),
        _ => bail!(
            "cannot run `{}`\n  hint: install Node.js 20 or later (https://nodejs.org), or point UCMS_NODE at it",
            node.display()
        ),
    }
}

/// Builds the plugin in `dir` into `out`.
pub fn build(
    dir: &Path,
    manifest: &Manifest,
    options: &BuildOptions,
    out: &Path,
) -> anyhow::Result<()> {
    let node = node()?;
    if !dir.join("node_modules").is_dir() {
        bail!(
            "{} has no node_modules\n  hint: run `npm install` in the plugin's folder first",
            dir.display()
        );
    }
    let missing = |what: &str| {
        anyhow::anyhow!(
            "cannot find {what} in the plugin's node_modules nor beside @ucms/sdk\n  hint: run `npm install` (the SDK depends on @bytecodealliance/componentize-js, esbuild and typescript)"
        )
    };
    let componentize = find_tool(dir, "@bytecodealliance/componentize-js/src/cli.js")
        .ok_or_else(|| missing("@bytecodealliance/componentize-js"))?;
    let esbuild = find_tool(dir, "esbuild/bin/esbuild").ok_or_else(|| missing("esbuild"))?;
    let entry = entry(dir)?;
    let build = dir.join(BUILD_DIR);
    std::fs::create_dir_all(&build)?;

    if dir.join("tsconfig.json").is_file() {
        let tsc = find_tool(dir, "typescript/bin/tsc").ok_or_else(|| missing("typescript"))?;
        run_tool(
            Command::new(&node)
                .arg(tsc)
                .args(["--noEmit", "--pretty", "false", "-p"])
                .arg(dir),
            "the type check (tsc) failed; fix the errors above",
        )?;
    }

    let bundle = build.join("plugin.js");
    // esbuild's launcher is its native binary or a script with a shebang: run it as it is.
    run_tool(
        Command::new(esbuild)
            .arg(&entry)
            .args([
                "--bundle",
                "--format=esm",
                "--platform=neutral",
                "--main-fields=module,main",
                "--external:ucms:*",
                "--log-level=warning",
                "--target=es2022",
            ])
            .arg(format!("--outfile={}", bundle.display()))
            .current_dir(dir),
        "bundling (esbuild) failed; fix the errors above",
    )?;
    let source = std::fs::read_to_string(&bundle)?;
    for name in super::wit::host_imports(&source) {
        let Some(capability) = Capability::from_name(&name) else {
            bail!(
                "the plugin imports ucms:host/{name}, which does not exist\n  hint: the interfaces are {}",
                Capability::ALL.map(|c| c.name()).join(", ")
            );
        };
        if !manifest.capabilities.grants(capability) {
            bail!(
                "the plugin uses ucms:host/{name} (through the SDK's `{}` module), but ucms-plugin.toml does not grant `{name}`\n  hint: add `{name} = true` (with its scopes) under [capabilities], or stop using it",
                sdk_module(capability)
            );
        }
    }

    let wit = super::wit::write(&build.join("wit"), manifest)?;
    let mut cmd = Command::new(&node);
    cmd.arg(componentize)
        .arg(&bundle)
        .arg("--wit")
        .arg(&wit)
        .args(["--world-name", "plugin", "-o"])
        .arg(out)
        // No fetch(): plugins call out through ucms:host/http-client only, and wasi:http would
        // be refused by the host.
        .args(["--disable", "http", "fetch-event"]);
    if options.aot {
        cmd.arg("--aot");
    }
    run_tool(
        &mut cmd,
        "componentize-js failed; see its message above (an error thrown while the module is first evaluated is reported here)",
    )?;
    Ok(())
}

/// The SDK module that wraps a capability's interface.
fn sdk_module(capability: Capability) -> &'static str {
    match capability {
        Capability::HttpClient => "http",
        other => other.name(),
    }
}
