//! Tools for plugin authors: `ucms plugin new` (scaffolds in Rust, TypeScript or Python, from a
//! template) and `ucms plugin build`.
//!
//! Every language ends in the same place: `plugin.wasm` beside `ucms-plugin.toml`, stamped with
//! the `ucms:api-version` it was built for and checked against the manifest exactly as an install
//! would check it. Rust builds with cargo for `wasm32-wasip2` ([`rust`]); TypeScript with esbuild
//! and componentize-js ([`js`]); Python with componentize-py ([`python`]), whose socket imports
//! are then stubbed out ([`deny_sockets`]). JavaScript and Python build against the WIT this
//! binary carries, narrowed to what the manifest grants ([`wit`]).

mod deny_sockets;
pub mod js;
pub mod python;
mod rust;
pub mod templates;
pub mod wit;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ucms_manifest::{MANIFEST_FILE, Manifest};

use crate::plugins::{COMPONENT_FILE, inspect};

pub use deny_sockets::deny_sockets;
pub use templates::{NewOptions, Template, new_plugin};

/// The target Rust plugins build for.
pub const TARGET: &str = "wasm32-wasip2";

/// The languages a plugin can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    TypeScript,
    Python,
}

impl Lang {
    /// `rust`, `ts` (or `typescript`, `js`), `python` (or `py`).
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        match name {
            "rust" | "rs" => Ok(Self::Rust),
            "ts" | "typescript" | "js" | "javascript" => Ok(Self::TypeScript),
            "python" | "py" => Ok(Self::Python),
            other => bail!("'{other}' is not a plugin language\n  hint: use rust, ts or python"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::TypeScript => "ts",
            Self::Python => "python",
        }
    }

    /// The language of the plugin in `dir`, from its project file.
    pub fn detect(dir: &Path) -> anyhow::Result<Self> {
        if dir.join("Cargo.toml").is_file() {
            Ok(Self::Rust)
        } else if dir.join("package.json").is_file() {
            Ok(Self::TypeScript)
        } else if dir.join("pyproject.toml").is_file() || dir.join("src/app.py").is_file() {
            Ok(Self::Python)
        } else {
            bail!(
                "{} is not a plugin project: it has no Cargo.toml, package.json or pyproject.toml\n  hint: run this in a plugin's folder (`ucms plugin new NAME` makes one)",
                dir.display()
            )
        }
    }
}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The cargo profile (Rust only).
    pub profile: String,
    /// Ahead-of-time compile the JavaScript engine's interpreter with weval (TypeScript only).
    pub aot: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            profile: "release".into(),
            aot: false,
        }
    }
}

/// What `build_plugin` produced.
#[derive(Debug)]
pub struct Built {
    pub lang: Lang,
    pub manifest: Manifest,
    pub wasm_path: PathBuf,
    pub size: usize,
    pub imports: Vec<String>,
    /// Time spent in the language's tools, then in the host's checks.
    pub build_time: Duration,
    pub check_time: Duration,
}

/// Builds the plugin in `dir` (any language) into `dir/plugin.wasm`, stamps its API version, and
/// checks it against the manifest exactly as an install would.
pub async fn build_plugin(dir: &Path, options: &BuildOptions) -> anyhow::Result<Built> {
    let lang = Lang::detect(dir)?;
    let manifest = Manifest::load(dir)?;
    let started = Instant::now();
    let out = dir.join(COMPONENT_FILE);
    {
        let (dir, manifest, options, out) = (
            dir.to_path_buf(),
            manifest.clone(),
            options.clone(),
            out.clone(),
        );
        // The tools run for seconds to minutes: keep them off the async workers (`plugin dev`
        // serves requests meanwhile).
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            match lang {
                Lang::Rust => rust::build(&dir, &options, &out)?,
                Lang::TypeScript => js::build(&dir, &manifest, &options, &out)?,
                Lang::Python => python::build(&dir, &manifest, &out)?,
            }
            let bytes =
                std::fs::read(&out).with_context(|| format!("cannot read {}", out.display()))?;
            let stamped = stamp_api_version(bytes);
            std::fs::write(&out, stamped)
                .with_context(|| format!("cannot write {}", out.display()))?;
            Ok(())
        })
        .await
        .context("the build was interrupted")??;
    }
    let build_time = started.elapsed();
    let bytes = std::fs::read(&out)?;
    let started = Instant::now();
    let imports = check_component(&manifest, &bytes).await?;
    Ok(Built {
        lang,
        manifest,
        wasm_path: out,
        size: bytes.len(),
        imports,
        build_time,
        check_time: started.elapsed(),
    })
}

/// `bytes` with a `ucms:api-version` custom section, unless it has one: the Rust SDK writes it
/// from `export!`; componentize-js and componentize-py components get it here.
pub fn stamp_api_version(mut bytes: Vec<u8>) -> Vec<u8> {
    let stamped = ucms_package::component::read(&bytes).is_ok_and(|info| info.api_stamp.is_some());
    if stamped {
        return bytes;
    }
    let name = ucms_package::component::API_SECTION.as_bytes();
    let data = wit::API_VERSION.as_bytes();
    let mut payload = Vec::new();
    leb128(&mut payload, name.len() as u64);
    payload.extend_from_slice(name);
    payload.extend_from_slice(data);
    // A custom section (id 0) may follow any section of a component.
    bytes.push(0);
    leb128(&mut bytes, payload.len() as u64);
    bytes.extend_from_slice(&payload);
    bytes
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Runs a build tool with inherited output; fails with `failure` (which says where to look).
pub(crate) fn run_tool(cmd: &mut Command, failure: &str) -> anyhow::Result<()> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    // What the tools print is for the developer: stdout may be a protocol (`ucms plugin harness
    // --build` answers on it).
    let status = cmd
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("{failure}");
    }
    Ok(())
}

/// The folder of the plugin `dir` names or contains: `dir` itself, or the parent of a manifest.
pub fn plugin_dir(dir: &Path) -> PathBuf {
    if dir.file_name().is_some_and(|n| n == MANIFEST_FILE) {
        dir.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        dir.to_path_buf()
    }
}

/// Validates `wasm` and checks its imports and API stamp against `manifest`; returns the imports.
///
/// Validation (wasmparser, every proposal wasmtime may enable) is quick even for the 12–20 MB
/// components of TypeScript and Python plugins, which take Cranelift the better part of a minute
/// to compile; the install compiles (and caches) the component anyway.
pub async fn check_component(manifest: &Manifest, wasm: &[u8]) -> anyhow::Result<Vec<String>> {
    let bytes = wasm.to_vec();
    tokio::task::spawn_blocking(move || {
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&bytes)
            .map(drop)
    })
    .await?
    .context("the component is not valid WebAssembly")?;
    let inspection = inspect::inspect(wasm, manifest)?;
    Ok(inspection.imports)
}

/// Fails with the fix when the wasm32-wasip2 target is missing.
pub fn check_target() -> anyhow::Result<()> {
    let Ok(output) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        // No rustup: let cargo report what is missing.
        return Ok(());
    };
    let installed = String::from_utf8_lossy(&output.stdout);
    if !installed.lines().any(|l| l.trim() == TARGET) {
        bail!("the {TARGET} target is not installed\n  hint: run `rustup target add {TARGET}`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_is_read_back() {
        // The smallest component: the preamble only.
        let empty = vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
        let stamped = stamp_api_version(empty);
        let info = ucms_package::component::read(&stamped).unwrap();
        assert_eq!(info.api_stamp, Some(semver::Version::new(0, 2, 1)));
        // Stamping twice adds nothing.
        assert_eq!(stamp_api_version(stamped.clone()), stamped);
    }
}
