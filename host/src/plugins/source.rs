//! Where a plugin comes from before it is installed: a folder (`ucms-plugin.toml` +
//! `plugin.wasm`), a `.ucpkg` package file, or a package downloaded from a registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ucms_manifest::{MANIFEST_FILE, Manifest};
use ucms_package::archive::{self, Contents, Limits};
use ucms_package::signature::PackageSignature;
use ucms_package::trust::TrustStore;

use super::PluginError;
use crate::policy::Signer;

/// The component's file name beside the manifest (as in a package).
pub use ucms_package::archive::COMPONENT_FILE;

/// Largest component accepted.
pub const MAX_COMPONENT_BYTES: u64 = 64 * 1024 * 1024;

/// Where an installed plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A folder or package file on this machine.
    Local(String),
    /// A registry, with the digest of the package downloaded from it.
    Registry { url: String, digest: String },
}

impl Origin {
    /// `local+PATH` or `registry+URL`, as stored and written to `ucms.lock`.
    pub fn to_source(&self) -> String {
        match self {
            Self::Local(path) => format!("local+{path}"),
            Self::Registry { url, .. } => format!("registry+{url}"),
        }
    }

    pub fn package_digest(&self) -> Option<&str> {
        match self {
            Self::Registry { digest, .. } => Some(digest),
            Self::Local(_) => None,
        }
    }
}

/// A plugin ready to be validated and installed.
#[derive(Debug, Clone)]
pub struct PluginSource {
    /// The manifest text as written (stored as installed).
    pub manifest_text: String,
    pub manifest: Manifest,
    pub wasm: Vec<u8>,
    /// Files under `assets/` (admin pages, static files), by path below it.
    pub assets: BTreeMap<String, Vec<u8>>,
    pub origin: Origin,
    /// Who signed it, as verified against the site's trust; none when unsigned.
    pub signer: Option<Signer>,
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
            assets: BTreeMap::new(),
            origin: Origin::Local(origin.into()),
            signer: None,
        })
    }

    /// From unpacked package contents.
    pub fn from_contents(contents: Contents, origin: Origin) -> Self {
        Self {
            manifest_text: contents.manifest_text,
            manifest: contents.manifest,
            wasm: contents.wasm,
            assets: contents.assets,
            origin,
            signer: None,
        }
    }

    /// Reads a plugin folder, a manifest file with `plugin.wasm` beside it, or a `.ucpkg`
    /// package file. A package's signature (`FILE.ucpkg.sig` beside it) is checked against
    /// `trust` when present; an unsigned one is accepted only when `allow_unsigned` (the
    /// policy's `[policy.packages] allow-unsigned`).
    pub fn from_path(
        path: &Path,
        trust: &TrustStore,
        allow_unsigned: bool,
    ) -> Result<Self, PluginError> {
        if path.is_file() && path.extension().is_some_and(|e| e == "ucpkg") {
            return Self::from_package_file(path, trust, allow_unsigned);
        }
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
        if !allow_unsigned {
            return Err(source_err(
                "installing unsigned plugins from folders is refused by this site's policy ([policy.packages] allow-unsigned = false)".into(),
                "install a signed .ucpkg package, or install from a registry",
            ));
        }
        let manifest_text = std::fs::read_to_string(&manifest_path).map_err(|e| {
            source_err(
                format!("{}: {e}", manifest_path.display()),
                "point at a folder holding ucms-plugin.toml and plugin.wasm (`ucms plugin build` makes one), or at a .ucpkg file",
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
            assets: BTreeMap::new(),
            origin: Origin::Local(path.display().to_string()),
            signer: None,
        })
    }

    fn from_package_file(
        path: &Path,
        trust: &TrustStore,
        allow_unsigned: bool,
    ) -> Result<Self, PluginError> {
        let source_err = |reason: String, hint: &str| PluginError::Source {
            path: path.display().to_string(),
            reason,
            hint: hint.to_string(),
        };
        let bytes = std::fs::read(path).map_err(|e| source_err(e.to_string(), "check the path"))?;
        let sig_path = PathBuf::from(format!("{}.sig", path.display()));
        let signature = match std::fs::read_to_string(&sig_path) {
            Ok(text) => Some(PackageSignature::from_json(&text).map_err(|e| {
                source_err(
                    format!("{}: {e}", sig_path.display()),
                    "the signature file is not valid",
                )
            })?),
            Err(_) => None,
        };
        // The digest first: a changed byte is reported as what it is, before the archive is read.
        if let Some(signature) = &signature {
            let actual = ucms_package::signature::digest(&bytes);
            if actual != signature.digest {
                return Err(ucms_package::trust::TrustError::DigestMismatch {
                    expected: signature.digest.clone(),
                    actual,
                }
                .into());
            }
        }
        let contents = archive::unpack(&bytes, &Limits::default()).map_err(|e| {
            source_err(
                e.to_string(),
                "the package is damaged or hostile; get it again from its publisher",
            )
        })?;
        let mut signer = None;
        match &signature {
            Some(signature) => {
                let key = trust.verify_package(
                    &bytes,
                    Some(signature),
                    &contents.manifest.publisher,
                    ucms_package::unix_now(),
                )?;
                signer = Some(Signer {
                    publisher: key.publisher,
                    key_id: key.key_id.to_string(),
                });
            }
            None if allow_unsigned => {
                tracing::warn!(package = %path.display(), "installing an unsigned package (allowed by [policy.packages] allow-unsigned)");
            }
            None => {
                trust.verify_package(
                    &bytes,
                    None,
                    &contents.manifest.publisher,
                    ucms_package::unix_now(),
                )?;
            }
        }
        let mut source = Self::from_contents(contents, Origin::Local(path.display().to_string()));
        source.signer = signer;
        Ok(source)
    }
}
