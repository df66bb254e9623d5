//! Building a Rust plugin: `cargo build --target wasm32-wasip2`, the `.wasm` of this crate read
//! from cargo's JSON messages. The SDK's `export!` stamps the API version itself.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::{BuildOptions, TARGET, check_target};

/// Builds the crate in `dir` and copies its component to `out`.
pub fn build(dir: &Path, options: &BuildOptions, out: &Path) -> anyhow::Result<()> {
    let cargo_toml = dir.join("Cargo.toml");
    check_target()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .args([
            "build",
            "--profile",
            &options.profile,
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&cargo_toml)
        // The settings of a cargo that runs us (`cargo test` of the plugin, say) are not for
        // the guest.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run cargo\n  hint: install Rust with rustup (https://rustup.rs)")?;
    let wanted = cargo_toml.canonicalize()?;
    let mut wasm = None;
    for line in BufReader::new(child.stdout.take().context("no cargo output")?).lines() {
        let line = line?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let from_this_crate = message["manifest_path"]
            .as_str()
            .and_then(|p| Path::new(p).canonicalize().ok())
            .is_some_and(|p| p == wanted);
        if !from_this_crate {
            continue;
        }
        if let Some(files) = message["filenames"].as_array() {
            wasm = files
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
                .or(wasm);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build failed (see its errors above)");
    }
    let built = wasm.context(
        "cargo built no .wasm for this crate\n  hint: the crate needs `[lib] crate-type = [\"cdylib\"]` in Cargo.toml",
    )?;
    std::fs::copy(&built, out)
        .with_context(|| format!("cannot copy {} to {}", built.display(), out.display()))?;
    Ok(())
}
