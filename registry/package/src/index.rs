//! The registry index: one file per package, one JSON line per published version (the sparse
//! format crates.io uses), read by clients and the resolver.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::archive::Contents;
use crate::signature::PackageSignature;

/// One published version of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub id: String,
    pub version: semver::Version,
    pub publisher: String,
    #[serde(default)]
    pub description: String,
    /// The `ucms:host` versions it works with (a semver requirement).
    pub api: String,
    /// Plugin id → semver requirement.
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    /// Interface → version provided.
    #[serde(default)]
    pub provides: BTreeMap<String, String>,
    /// Interface → version requirement.
    #[serde(default)]
    pub requires: BTreeMap<String, String>,
    /// Capability summary lines, for consent screens and search.
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    /// `sha256:<hex>` of the archive.
    pub digest: String,
    /// Archive size in bytes.
    pub size: u64,
    pub signature: PackageSignature,
    #[serde(default)]
    pub yanked: bool,
    /// Unix seconds.
    pub published_at: i64,
}

impl IndexEntry {
    /// The index line for a package about to be published.
    pub fn for_package(
        contents: &Contents,
        archive: &[u8],
        signature: PackageSignature,
        published_at: i64,
    ) -> Self {
        let m = &contents.manifest;
        Self {
            id: m.id.to_string(),
            version: m.version.clone(),
            publisher: m.publisher.clone(),
            description: m.description.clone(),
            api: m.api.to_string(),
            dependencies: m
                .dependencies
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            provides: m
                .provides
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            requires: m
                .requires
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            capabilities: m.capabilities.describe(),
            categories: m.categories.clone(),
            digest: crate::signature::digest(archive),
            size: archive.len() as u64,
            signature,
            yanked: false,
            published_at,
        }
    }

    /// One line of an index file.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("an index entry serializes")
    }

    /// Every line of an index file, oldest first.
    pub fn parse_file(text: &str) -> Result<Vec<Self>, serde_json::Error> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect()
    }

    pub fn api_req(&self) -> Option<semver::VersionReq> {
        semver::VersionReq::parse(&self.api).ok()
    }
}
