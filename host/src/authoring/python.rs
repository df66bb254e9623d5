//! Building a Python plugin: `componentize-py` against the narrowed world ([`super::wit`]), with
//! the plugin's `src/` and the `ucms_sdk` package on the Python path; then its `wasi:sockets`
//! imports are replaced by trapping stubs ([`super::deny_sockets`]).
//!
//! The app module is `src/app.py` (componentize-py's app must not be named like the world,
//! `plugin`). `componentize-py` is found in the plugin's `.venv`, the active `$VIRTUAL_ENV`, or
//! on `PATH`; `ucms_sdk` in `src/`, in that virtual environment, or in this binary's checkout.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use ucms_manifest::Manifest;

use super::run_tool;

/// The version of componentize-py the SDK is tested with (`pip install componentize-py==…`).
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// The app module inside `src/`.
pub const APP_MODULE: &str = "app";

/// Where this binary's Python SDK sources were, when it was built from a checkout.
const SDK_CHECKOUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/python/src");

fn venvs(dir: &Path) -> Vec<PathBuf> {
    let mut venvs = vec![dir.join(".venv")];
    if let Some(active) = std::env::var_os("VIRTUAL_ENV") {
        venvs.push(PathBuf::from(active));
    }
    venvs
}

fn componentize_py(dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("UCMS_COMPONENTIZE_PY") {
        return Ok(PathBuf::from(path));
    }
    for venv in venvs(dir) {
        let bin = venv.join("bin").join("componentize-py");
        if bin.is_file() {
            return Ok(bin);
        }
    }
    match Command::new("componentize-py").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(PathBuf::from("componentize-py")),
        _ => bail!(
            "cannot find componentize-py\n  hint: install it into the plugin's virtual environment: python3 -m venv .venv && .venv/bin/pip install componentize-py=={COMPONENTIZE_PY}"
        ),
    }
}

/// The folder holding the `ucms_sdk` package, if it is not somewhere componentize-py already
/// looks (the plugin's `src/`, the virtual environment).
pub fn sdk_path(dir: &Path) -> Option<PathBuf> {
    if dir.join("src/ucms_sdk").is_dir() {
        return None;
    }
    for venv in venvs(dir) {
        if let Ok(entries) = std::fs::read_dir(venv.join("lib")) {
            for entry in entries.flatten() {
                let site = entry.path().join("site-packages");
                if site.join("ucms_sdk").is_dir() {
                    return Some(site);
                }
            }
        }
    }
    Path::new(SDK_CHECKOUT).canonicalize().ok()
}

/// Builds the plugin in `dir` into `out`.
pub fn build(dir: &Path, manifest: &Manifest, out: &Path) -> anyhow::Result<()> {
    let src = dir.join("src");
    if !src.join(format!("{APP_MODULE}.py")).is_file() {
        bail!(
            "{} has no src/app.py\n  hint: a Python plugin's routes and exports live in src/app.py (`ucms plugin new NAME --lang python` makes one)",
            dir.display()
        );
    }
    let tool = componentize_py(dir)?;
    let build = dir.join(super::js::BUILD_DIR);
    std::fs::create_dir_all(&build)?;
    let wit = super::wit::write(&build.join("wit"), manifest)?;
    let raw = build.join("raw.wasm");
    let mut cmd = Command::new(&tool);
    cmd.arg("-d")
        .arg(&wit)
        .args(["-w", "plugin", "componentize", "-p"])
        .arg(&src);
    if let Some(sdk) = sdk_path(dir) {
        cmd.arg("-p").arg(sdk);
    }
    cmd.arg(APP_MODULE).arg("-o").arg(&raw).current_dir(dir);
    run_tool(
        &mut cmd,
        "componentize-py failed; see its message above (an exception raised while src/app.py is imported is reported here)",
    )?;
    let bytes = std::fs::read(&raw).with_context(|| format!("cannot read {}", raw.display()))?;
    let (bytes, _) = super::deny_sockets::deny_sockets(&bytes)?;
    std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
