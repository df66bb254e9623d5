//! `ucms.lock`: the exact versions and digests a site has installed, for reproducible installs.
//!
//! The file lives in the data directory. It is written atomically (a temporary file renamed over
//! the old one) after every change, sorted by id, so diffs between two sites are readable.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file name in the data directory.
pub const FILE: &str = "ucms.lock";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPlugin {
    pub id: String,
    pub version: semver::Version,
    /// `sha256:<hex>` of the package archive (or of the component, for a local install).
    pub digest: String,
    /// `registry+URL`, or `local+PATH` for a plugin installed from a folder.
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    pub version: u32,
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<LockedPlugin>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockfileError {
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error(
        "{path} is not a valid lockfile: {message}\n  hint: delete it and it will be written again from what is installed"
    )]
    Invalid { path: String, message: String },
}

impl Lockfile {
    /// Reads the lockfile in `data_dir`; an absent file is an empty lockfile.
    pub fn load(data_dir: &Path) -> Result<Self, LockfileError> {
        let path = data_dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::empty()),
            Err(error) => {
                return Err(LockfileError::Io {
                    path: path.display().to_string(),
                    error,
                });
            }
        };
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses lockfile text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, LockfileError> {
        let invalid = |message: String| LockfileError::Invalid {
            path: path.to_string(),
            message,
        };
        let lock: Self = toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;
        if lock.version != FORMAT_VERSION {
            return Err(invalid(format!(
                "format version {} (this ucms reads {FORMAT_VERSION})",
                lock.version
            )));
        }
        Ok(lock)
    }

    /// The file's text, as [`save`](Self::save) writes it: sorted by id, with a header line.
    pub fn to_text(&self) -> String {
        let mut sorted = self.clone();
        sorted.plugins.sort_by(|a, b| a.id.cmp(&b.id));
        let body = toml::to_string(&sorted).expect("a lockfile serializes");
        format!(
            "# Written by ucms: the exact plugins this site has installed. Do not edit by hand.\n{body}"
        )
    }

    pub fn empty() -> Self {
        Self {
            version: FORMAT_VERSION,
            plugins: Vec::new(),
        }
    }

    /// Writes the lockfile into `data_dir`, atomically.
    pub fn save(&self, data_dir: &Path) -> Result<(), LockfileError> {
        let path = data_dir.join(FILE);
        let io = |error| LockfileError::Io {
            path: path.display().to_string(),
            error,
        };
        let text = self.to_text();
        let tmp = path.with_extension("lock.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    pub fn get(&self, id: &str) -> Option<&LockedPlugin> {
        self.plugins.iter().find(|p| p.id == id)
    }

    /// Records `plugin`, replacing any entry with its id.
    pub fn set(&mut self, plugin: LockedPlugin) {
        self.plugins.retain(|p| p.id != plugin.id);
        self.plugins.push(plugin);
    }

    pub fn remove(&mut self, id: &str) {
        self.plugins.retain(|p| p.id != id);
    }

    /// Locked versions by id, for resolution.
    pub fn versions(&self) -> std::collections::BTreeMap<String, semver::Version> {
        self.plugins
            .iter()
            .map(|p| (p.id.clone(), p.version.clone()))
            .collect()
    }
}
