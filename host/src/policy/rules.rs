//! The policy as the operator writes it: serde types for the `[policy]` section of `ucms.toml`
//! or the policy file it names. [`super::Policy::compile`] validates them into the form the checks use.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[policy]`: what plugins may be installed and run on this site, and what they may consume.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyRules {
    /// The rules live in this file (relative to the configuration file) instead of here; it is
    /// reloaded when it changes. Only this key may be set beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    pub publishers: PublisherRules,
    pub plugins: PluginRules,
    pub packages: PackageRules,
    pub capabilities: CapabilityRules,
    /// What a plugin gets when its manifest asks for nothing.
    pub defaults: LimitValues,
    /// The most a manifest may ask for; above it, install (and loading) is refused.
    pub ceilings: LimitValues,
    pub quarantine: QuarantineRules,
    /// Rules for one plugin, by id: its own ceilings, and internal networks it may reach.
    pub overrides: BTreeMap<String, PluginOverride>,
}

/// `[policy.publishers]`: entries are publisher names (`acme`) or key ids (`ed25519:…`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PublisherRules {
    /// When not empty, only these publishers' plugins may be installed and run.
    pub allow: Vec<String>,
    /// These publishers' plugins are refused, whatever `allow` says.
    pub deny: Vec<String>,
}

/// `[policy.plugins]`: entries are plugin ids (`seo`) or ids with a version requirement
/// (`content@<2.0.0`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginRules {
    /// When not empty, only these plugins (and versions) may be installed and run.
    pub allow: Vec<String>,
    /// These plugins (or versions) are refused, whatever `allow` says.
    pub deny: Vec<String>,
}

/// `[policy.packages]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PackageRules {
    /// Unsigned plugins from a local folder or `.ucpkg` may be installed and run (development).
    /// Plugins from a registry are always verified.
    pub allow_unsigned: bool,
}

impl Default for PackageRules {
    fn default() -> Self {
        Self {
            allow_unsigned: true,
        }
    }
}

/// `[policy.capabilities]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CapabilityRules {
    /// When set, only these capabilities may be granted (`["kv", "log", "documents"]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// These capabilities may not be granted to any plugin.
    pub deny: Vec<String>,
    pub http_client: HttpClientRules,
    pub events: EventRules,
}

/// `[policy.capabilities.http-client]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpClientRules {
    /// When set, every host a manifest grants must be covered by one of these patterns
    /// (`api.stripe.com`, `*.example.com`, optionally with `:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
}

/// `[policy.capabilities.events]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EventRules {
    /// When set, every topic pattern a manifest may publish to must be covered by one of these.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<Vec<String>>,
}

/// `[policy.quarantine]`: when a misbehaving plugin is stopped automatically.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct QuarantineRules {
    pub enabled: bool,
    /// Failures (traps and limit breaches) within the window that quarantine a plugin...
    pub failures: u32,
    pub window_secs: u64,
    /// ...when they are also at least this share of its invocations in the window.
    pub min_failure_ratio: f64,
}

impl Default for QuarantineRules {
    fn default() -> Self {
        Self {
            enabled: true,
            failures: 20,
            window_secs: 60,
            min_failure_ratio: 0.5,
        }
    }
}

/// `[policy.overrides.<id>]`: the operator's rules for one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginOverride {
    /// This plugin's ceilings, replacing the site's key by key (up or down).
    pub ceilings: LimitValues,
    /// Internal networks this plugin's outbound requests may reach (`127.0.0.1/32`,
    /// `10.0.0.0/8`): loopback, private and link-local addresses are refused unless listed here.
    /// Never for plugins you don't trust.
    pub internal_networks: Vec<String>,
    /// Hosts this plugin may be granted beyond `[capabilities.http-client] hosts`; and, when its
    /// manifest says `site-hosts = true` (webhooks), hosts it may call on top of its manifest's.
    pub hosts: Vec<String>,
}

/// A value for each limit, each optional: `[policy.defaults]`, `[policy.ceilings]` and a
/// plugin's override. The keys are the manifest's `[limits]` keys plus the quotas of its
/// capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitValues {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_body_kib: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_response_body_kib: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_outbound_requests: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_outbound_kib: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_lines_per_minute: Option<u32>,
    /// A hook's deadline (`[[hooks]] timeout-ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_timeout_ms: Option<u32>,
    /// `[capabilities.documents] max-documents`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_documents: Option<u64>,
    /// `[capabilities.documents] max-mib`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents_mib: Option<u64>,
    /// `[capabilities.blobs] max-mib`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs_mib: Option<u64>,
    /// `[capabilities.blobs] max-blob-mib`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_blob_mib: Option<u64>,
}

impl PolicyRules {
    /// Whether any rule is set besides `file`.
    pub fn has_rules(&self) -> bool {
        let mut bare = self.clone();
        bare.file = None;
        bare != Self::default()
    }
}
