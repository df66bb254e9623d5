//! Where a plugin comes from before it is installed: a folder (or a manifest file) with
//! `ucms-plugin.toml` and `plugin.wasm`.

use std::path::{Path, PathBuf};

use ucms_manifest::{MANIFEST_FILE, Manifest};

use super::PluginError;

/// The component's file name beside the manifest.
pub const COMPONENT_FILE: &str = "plugin.wasm";

/// Largest component accepted.
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// A plugin ready to be validated and installed.
#[derive(Debug, Clone)]
pub struct PluginSource {
    /// The manifest text as written (stored as installed).
    pub manifest_text: String,
    pub manifest: Manifest,
    pub wasm: Vec<u8>,
    /// Where it came from, for messages and the audit log.
    pub origin: String,
}

impl PluginSource {
    /// Builds a source from manifest text and component bytes.
    pub fn new(
        manifest_text: String,
        wasm: Vec<u8>,
        origin: impl Into<String>,
    ) -> Result<Self, PluginError> {
        let manifest = Manifest::parse(&manifest_text)?;
        Ok(Self {
            manifest_text,
            manifest,
            wasm,
            origin: origin.into(),
        })
    }

    /// Reads a plugin folder, or a manifest file with `plugin.wasm` beside it.
    pub fn from_path(path: &Path) -> Result<Self, PluginError> {
        let (dir, manifest_path) = if path.is_dir() {
            (path.to_path_buf(), path.join(MANIFEST_FILE))
        } else {
            (
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
                path.to_path_buf(),
            )
        };
        let source_err = |reason: String, hint: &str| PluginError::Source {
            path: path.display().to_string(),
            reason,
            hint: hint.to_string(),
        };
        let manifest_text = std::fs::read_to_string(&manifest_path).map_err(|e| {
            source_err(
                format!("{}: {e}", manifest_path.display()),
                "point at a folder holding ucms-plugin.toml and plugin.wasm (`ucms plugin build` makes one)",
            )
        })?;
        let wasm_path: PathBuf = dir.join(COMPONENT_FILE);
        let size = std::fs::metadata(&wasm_path)
            .map_err(|e| {
                source_err(
                    format!("{}: {e}", wasm_path.display()),
                    "build the component first: `ucms plugin build` in the plugin's folder writes plugin.wasm",
                )
            })?
            .len();
        if size > MAX_COMPONENT_BYTES {
            return Err(source_err(
                format!(
                    "plugin.wasm is {size} bytes; components are at most {MAX_COMPONENT_BYTES} bytes"
                ),
                "build in release mode and strip debug info",
            ));
        }
        let wasm = std::fs::read(&wasm_path).map_err(|e| {
            source_err(
                format!("{}: {e}", wasm_path.display()),
                "check the file's permissions",
            )
        })?;
        let manifest = Manifest::parse(&manifest_text)
            .map_err(|e| PluginError::Manifest(e.in_file(&manifest_path)))?;
        Ok(Self {
            manifest_text,
            manifest,
            wasm,
            origin: path.display().to_string(),
        })
    }
}
