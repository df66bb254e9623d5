//! The operator's policy: which plugins may be installed and run on this site, and what they may
//! consume.
//!
//! The rules are written in `[policy]` of `ucms.toml`, or in a file it names (`[policy] file`),
//! as [`PolicyRules`]; [`Policy::compile`] validates them once, and every check then works on the
//! compiled form. A plugin is checked — as a [`Subject`]: its manifest and who signed it — when it
//! is planned, installed, upgraded, rolled back and loaded, and again whenever the policy is
//! reloaded ([`PolicyStore`]), so a plugin the new rules refuse stops running. A refusal is a
//! [`PolicyRefusal`] that names the rule, where it was written, and what to do.
//!
//! [`Policy::explain`] lists every rule's verdict on a subject; `ucms policy check PACKAGE`
//! prints it before anything is installed.

pub mod limits;
mod rules;
mod store;

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use semver::VersionReq;
use serde::Serialize;
use ucms_manifest::{Capability, HostPattern, Manifest, TopicPattern};

pub use rules::{
    CapabilityRules, EventRules, HttpClientRules, LimitValues, PackageRules, PluginOverride,
    PluginRules, PolicyRules, PublisherRules, QuarantineRules,
};
pub use store::{PolicySource, PolicyStore, Reloaded, read_file};

use self::limits::{CeilingExceeded, Limits, Quotas};

/// Who signed a plugin, as verified against the site's trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Signer {
    pub publisher: String,
    /// `ed25519:` and 16 hex digits.
    pub key_id: String,
}

/// What the policy judges: a plugin's manifest, and its verified signer (none when unsigned).
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub manifest: &'a Manifest,
    pub signer: Option<&'a Signer>,
}

/// The policy refuses a plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (policy rule {rule} in {origin})\n  hint: {hint}")]
pub struct PolicyRefusal {
    /// The rule, as written: `[policy.capabilities] deny`.
    pub rule: String,
    pub message: String,
    /// Where the rule is written: the policy file, or `ucms.toml [policy]`.
    pub origin: String,
    pub hint: String,
}

/// The policy as written can't be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the policy in {origin} is not valid: {key}: {message}")]
pub struct PolicyError {
    pub origin: String,
    pub key: String,
    pub message: String,
}

/// One rule's verdict on a subject, for `ucms policy check` and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: String,
    /// What the rule was applied to: `capability http-client`, `host api.example.com`...
    pub subject: String,
    pub allowed: bool,
    pub message: String,
}

/// A publisher or key entry of `[policy.publishers]`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PublisherEntry {
    Name(String),
    Key(String),
}

impl PublisherEntry {
    fn parse(entry: &str) -> Self {
        if entry.starts_with("ed25519:") {
            Self::Key(entry.to_ascii_lowercase())
        } else {
            Self::Name(entry.to_string())
        }
    }

    fn matches(&self, publisher: &str, key_id: Option<&str>) -> bool {
        match self {
            Self::Name(name) => name == publisher,
            Self::Key(key) => key_id.is_some_and(|k| k.eq_ignore_ascii_case(key)),
        }
    }
}

/// A plugin entry of `[policy.plugins]`: an id, with an optional version requirement.
#[derive(Debug, Clone)]
struct PluginEntry {
    text: String,
    id: String,
    versions: Option<VersionReq>,
}

impl PluginEntry {
    fn parse(entry: &str) -> Result<Self, String> {
        let (id, versions) = match entry.split_once('@') {
            Some((id, req)) => (
                id,
                Some(VersionReq::parse(req).map_err(|e| {
                    format!("'{entry}': '{req}' is not a version requirement ({e})")
                })?),
            ),
            None => (entry, None),
        };
        ucms_manifest::PluginId::new(id).map_err(|e| format!("'{entry}': {e}"))?;
        Ok(Self {
            text: entry.to_string(),
            id: id.to_string(),
            versions,
        })
    }

    fn matches(&self, id: &str, version: &semver::Version) -> bool {
        self.id == id && self.versions.as_ref().is_none_or(|r| r.matches(version))
    }
}

/// One plugin's compiled override.
#[derive(Debug, Clone, Default)]
struct Override {
    ceilings: LimitValues,
    internal_networks: Vec<IpNet>,
    hosts: Vec<HostPattern>,
}

/// The operator's policy, validated. Cheap to share: [`PolicyStore`] hands out `Arc<Policy>`.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The rules as written.
    pub rules: PolicyRules,
    /// Where they were written: a file path, `ucms.toml [policy]` or `built-in defaults`.
    pub origin: String,
    /// SHA-256 of the rules, to tell versions apart.
    pub digest: String,
    publishers_allow: Vec<PublisherEntry>,
    publishers_deny: Vec<PublisherEntry>,
    plugins_allow: Vec<PluginEntry>,
    plugins_deny: Vec<PluginEntry>,
    capabilities_allow: Option<Vec<Capability>>,
    capabilities_deny: Vec<Capability>,
    http_hosts: Option<Vec<HostPattern>>,
    event_topics: Option<Vec<TopicPattern>>,
    overrides: BTreeMap<String, Override>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::compile(PolicyRules::default(), "built-in defaults")
            .expect("the default policy is valid")
    }
}

impl Policy {
    /// Validates `rules`, written in `origin`. Every error names the key.
    pub fn compile(rules: PolicyRules, origin: &str) -> Result<Self, PolicyError> {
        let err = |key: String, message: String| PolicyError {
            origin: origin.to_string(),
            key,
            message,
        };
        let capabilities = |key: &str, names: &[String]| {
            names
                .iter()
                .map(|name| {
                    Capability::from_name(name).ok_or_else(|| {
                        let known: Vec<_> = Capability::ALL.iter().map(|c| c.name()).collect();
                        err(
                            key.to_string(),
                            format!(
                                "'{name}' is not a capability; the capabilities are {}",
                                known.join(", ")
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let plugins = |key: &str, entries: &[String]| {
            entries
                .iter()
                .map(|e| PluginEntry::parse(e).map_err(|m| err(key.to_string(), m)))
                .collect::<Result<Vec<_>, _>>()
        };
        let hosts = |key: &str, entries: &[String]| {
            entries
                .iter()
                .map(|h| HostPattern::new(h).map_err(|m| err(key.to_string(), m)))
                .collect::<Result<Vec<_>, _>>()
        };
        for (key, entries) in [
            ("publishers.allow", &rules.publishers.allow),
            ("publishers.deny", &rules.publishers.deny),
        ] {
            for entry in entries {
                if let Some(hex) = entry.strip_prefix("ed25519:")
                    && (hex.len() != 16 || !hex.chars().all(|c| c.is_ascii_hexdigit()))
                {
                    return Err(err(
                        key.into(),
                        format!(
                            "'{entry}' is not a key id: write 'ed25519:' and 16 hex digits, as `ucms plugin keygen` prints"
                        ),
                    ));
                }
                if entry.is_empty() {
                    return Err(err(key.into(), "an entry is empty".into()));
                }
            }
        }
        let quarantine = &rules.quarantine;
        if quarantine.enabled
            && (quarantine.failures == 0
                || quarantine.window_secs == 0
                || !(0.0..=1.0).contains(&quarantine.min_failure_ratio))
        {
            return Err(err(
                "quarantine".into(),
                "failures and window-secs must be above 0, and min-failure-ratio between 0 and 1"
                    .into(),
            ));
        }
        let mut overrides = BTreeMap::new();
        for (id, o) in &rules.overrides {
            ucms_manifest::PluginId::new(id).map_err(|m| err(format!("overrides.{id}"), m))?;
            let internal_networks = o
                .internal_networks
                .iter()
                .map(|n| {
                    n.parse::<IpNet>()
                        .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|_| {
                            err(
                                format!("overrides.{id}.internal-networks"),
                                format!(
                                    "'{n}' is not a network: write an address with a prefix length, such as 10.0.0.0/8 or 127.0.0.1/32"
                                ),
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            overrides.insert(
                id.clone(),
                Override {
                    ceilings: o.ceilings,
                    internal_networks,
                    hosts: hosts(&format!("overrides.{id}.hosts"), &o.hosts)?,
                },
            );
        }
        let event_topics = match &rules.capabilities.events.publish {
            Some(topics) => Some(
                topics
                    .iter()
                    .map(|t| {
                        TopicPattern::new(t)
                            .map_err(|m| err("capabilities.events.publish".into(), m))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let digest = crate::digest::sha256_hex(
            serde_json::to_string(&rules)
                .expect("policy rules serialize")
                .as_bytes(),
        );
        Ok(Self {
            publishers_allow: rules
                .publishers
                .allow
                .iter()
                .map(|e| PublisherEntry::parse(e))
                .collect(),
            publishers_deny: rules
                .publishers
                .deny
                .iter()
                .map(|e| PublisherEntry::parse(e))
                .collect(),
            plugins_allow: plugins("plugins.allow", &rules.plugins.allow)?,
            plugins_deny: plugins("plugins.deny", &rules.plugins.deny)?,
            capabilities_allow: match &rules.capabilities.allow {
                Some(names) => Some(capabilities("capabilities.allow", names)?),
                None => None,
            },
            capabilities_deny: capabilities("capabilities.deny", &rules.capabilities.deny)?,
            http_hosts: match &rules.capabilities.http_client.hosts {
                Some(h) => Some(hosts("capabilities.http-client.hosts", h)?),
                None => None,
            },
            event_topics,
            overrides,
            origin: origin.to_string(),
            digest,
            rules,
        })
    }

    fn refusal(&self, finding: &Finding, hint: String) -> PolicyRefusal {
        PolicyRefusal {
            rule: finding.rule.clone(),
            message: finding.message.clone(),
            origin: self.origin.clone(),
            hint,
        }
    }

    /// The first rule that refuses `subject`, if any; limits are checked by
    /// [`Policy::resolve_limits`].
    pub fn check(&self, subject: Subject<'_>) -> Result<(), PolicyRefusal> {
        match self.rule_findings(subject).into_iter().find(|f| !f.allowed) {
            None => Ok(()),
            Some(finding) => {
                let hint = format!(
                    "change the rule in {} if this plugin should run here; the policy is reloaded when it changes",
                    self.origin
                );
                Err(self.refusal(&finding, hint))
            }
        }
    }

    /// Every rule's verdict on `subject`, in the order they are checked: plugin, package,
    /// publisher, capabilities and their scopes, limits.
    pub fn explain(&self, subject: Subject<'_>) -> Vec<Finding> {
        let mut out = self.rule_findings(subject);
        let m = subject.manifest;
        match self.resolve_limits(m) {
            Ok((limits, quotas)) => out.push(Finding {
                rule: "[policy.ceilings]".into(),
                subject: "limits".into(),
                allowed: true,
                message: format!(
                    "within the ceilings: memory {} MiB, timeout {} ms, CPU {} ms per call, {} instances, {} outbound requests and {} KiB per call, {} events and {} log lines per minute, {} documents, {} MiB of blobs",
                    limits.memory_mib,
                    limits.timeout_ms,
                    limits.cpu_ms,
                    limits.max_concurrency,
                    limits.max_outbound_requests,
                    limits.max_outbound_kib,
                    limits.events_per_minute,
                    limits.log_lines_per_minute,
                    quotas.max_documents,
                    quotas.blobs_mib,
                ),
            }),
            Err(e) => out.push(Finding {
                rule: e.rule.clone(),
                subject: format!("limit {}", e.key),
                allowed: false,
                message: format!(
                    "the manifest asks for {} = {}, over the ceiling of {}",
                    e.key, e.asked, e.ceiling
                ),
            }),
        }
        out
    }

    /// The rules a registry listing can be judged by before anything is downloaded: the
    /// plugin's id and version, its publisher and signing key. Capabilities and limits are
    /// judged once the package is verified and unpacked.
    pub fn check_listing(
        &self,
        id: &str,
        version: &semver::Version,
        publisher: &str,
        key_id: &str,
    ) -> Result<(), PolicyRefusal> {
        let mut out = Vec::new();
        self.plugin_findings(id, version, &mut out);
        self.publisher_findings(publisher, Some(key_id), &mut out);
        match out.into_iter().find(|f| !f.allowed) {
            None => Ok(()),
            Some(finding) => Err(self.refusal(
                &finding,
                format!(
                    "change the rule in {} if this plugin should run here",
                    self.origin
                ),
            )),
        }
    }

    fn plugin_findings(&self, id: &str, version: &semver::Version, out: &mut Vec<Finding>) {
        let this = format!("{id} {version}");
        if let Some(entry) = self.plugins_deny.iter().find(|e| e.matches(id, version)) {
            out.push(Finding {
                rule: "[policy.plugins] deny".into(),
                subject: format!("plugin {this}"),
                allowed: false,
                message: format!("plugin {this} is refused by the entry '{}'", entry.text),
            });
        } else if !self.plugins_allow.is_empty() {
            let allowed = self.plugins_allow.iter().any(|e| e.matches(id, version));
            out.push(Finding {
                rule: "[policy.plugins] allow".into(),
                subject: format!("plugin {this}"),
                allowed,
                message: if allowed {
                    format!("plugin {this} is allowed")
                } else {
                    format!("plugin {this} is not among the plugins the policy allows")
                },
            });
        }
    }

    fn publisher_findings(&self, publisher: &str, key_id: Option<&str>, out: &mut Vec<Finding>) {
        let who = match key_id {
            Some(key) => format!("publisher {publisher} (key {key})"),
            None => format!("publisher {publisher} (unverified: unsigned)"),
        };
        if let Some(entry) = self
            .publishers_deny
            .iter()
            .find(|e| e.matches(publisher, key_id))
        {
            let which = match entry {
                PublisherEntry::Name(n) => format!("publisher '{n}'"),
                PublisherEntry::Key(k) => format!("key '{k}'"),
            };
            out.push(Finding {
                rule: "[policy.publishers] deny".into(),
                subject: who.clone(),
                allowed: false,
                message: format!("{who} is refused: the policy denies {which}"),
            });
        } else if !self.publishers_allow.is_empty() {
            let allowed = self
                .publishers_allow
                .iter()
                .any(|e| e.matches(publisher, key_id));
            out.push(Finding {
                rule: "[policy.publishers] allow".into(),
                subject: who.clone(),
                allowed,
                message: if allowed {
                    format!("{who} is allowed")
                } else {
                    format!(
                        "{who} is not among the publishers the policy allows (an unknown publisher)"
                    )
                },
            });
        }
    }

    fn rule_findings(&self, subject: Subject<'_>) -> Vec<Finding> {
        let m = subject.manifest;
        let id = m.id.as_str();
        let mut out = Vec::new();
        self.plugin_findings(id, &m.version, &mut out);

        // Signed or not.
        if subject.signer.is_none() {
            let allowed = self.rules.packages.allow_unsigned;
            out.push(Finding {
                rule: "[policy.packages] allow-unsigned".into(),
                subject: "signature".into(),
                allowed,
                message: if allowed {
                    "the plugin is unsigned; unsigned local plugins are allowed (development)"
                        .into()
                } else {
                    "the plugin is unsigned, and this site runs only signed plugins".into()
                },
            });
        }

        // Publishers: the verified signer, or the manifest's claim when unsigned.
        match subject.signer {
            Some(s) => self.publisher_findings(&s.publisher, Some(&s.key_id), &mut out),
            None => self.publisher_findings(&m.publisher, None, &mut out),
        }

        let mut push = |rule: &str, subject: String, allowed: bool, message: String| {
            out.push(Finding {
                rule: rule.to_string(),
                subject,
                allowed,
                message,
            })
        };

        // Capabilities.
        for capability in m.capabilities.granted() {
            let name = capability.name();
            if self.capabilities_deny.contains(&capability) {
                push(
                    "[policy.capabilities] deny",
                    format!("capability {name}"),
                    false,
                    format!("the capability '{name}' is forbidden on this site"),
                );
            } else if let Some(allow) = &self.capabilities_allow {
                let allowed = allow.contains(&capability);
                push(
                    "[policy.capabilities] allow",
                    format!("capability {name}"),
                    allowed,
                    if allowed {
                        format!("the capability '{name}' is allowed")
                    } else {
                        format!("the capability '{name}' is not among those the policy allows")
                    },
                );
            }
        }
        if let Some(grant) = &m.capabilities.http_client {
            let extra = self
                .overrides
                .get(id)
                .map(|o| o.hosts.as_slice())
                .unwrap_or_default();
            for host in &grant.hosts {
                let listed = self
                    .http_hosts
                    .as_ref()
                    .is_none_or(|allowed| allowed.iter().any(|a| a.covers(host)));
                let allowed = listed || extra.iter().any(|a| a.covers(host));
                if self.http_hosts.is_some() || !extra.is_empty() {
                    push(
                        "[policy.capabilities.http-client] hosts",
                        format!("host {host}"),
                        allowed,
                        if allowed {
                            format!("outbound requests to {host} are allowed")
                        } else {
                            format!(
                                "the manifest grants outbound requests to {host}, outside the policy's allow-list ({})",
                                self.http_hosts
                                    .iter()
                                    .flatten()
                                    .chain(extra)
                                    .map(ToString::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        },
                    );
                }
            }
        }
        if let (Some(grant), Some(allowed_topics)) = (&m.capabilities.events, &self.event_topics) {
            for topic in &grant.publish {
                let allowed = allowed_topics.iter().any(|a| a.covers(topic));
                push(
                    "[policy.capabilities.events] publish",
                    format!("topic {topic}"),
                    allowed,
                    if allowed {
                        format!("publishing to {topic} is allowed")
                    } else {
                        format!("the manifest publishes to {topic}, outside the policy's topics")
                    },
                );
            }
        }
        out
    }

    /// The site's ceilings with `id`'s overrides applied key by key, and the rule each came from.
    pub fn ceilings_for(&self, id: &str) -> (LimitValues, LimitValues) {
        let site = self.rules.ceilings;
        let plugin = self
            .overrides
            .get(id)
            .map(|o| o.ceilings)
            .unwrap_or_default();
        (site, plugin)
    }

    /// The limits and quotas `manifest` runs under, or the ceiling it asks to exceed.
    pub fn resolve_limits(&self, manifest: &Manifest) -> Result<(Limits, Quotas), CeilingExceeded> {
        let (site, plugin) = self.ceilings_for(manifest.id.as_str());
        let limits = Limits::resolve(manifest, &self.rules.defaults, &site, &plugin)?;
        let quotas = Quotas::resolve(manifest, &self.rules.defaults, &site, &plugin)?;
        Ok((limits, quotas))
    }

    /// The hosts `[policy.overrides.<id>] hosts` lists for plugin `id`. A plugin whose manifest
    /// says `site-hosts = true` may call them on top of its manifest's hosts.
    pub fn site_hosts(&self, id: &str) -> &[HostPattern] {
        self.overrides
            .get(id)
            .map(|o| o.hosts.as_slice())
            .unwrap_or_default()
    }

    /// Internal networks `id`'s outbound requests may reach (none unless the operator lists them).
    pub fn internal_networks(&self, id: &str) -> &[IpNet] {
        self.overrides
            .get(id)
            .map(|o| o.internal_networks.as_slice())
            .unwrap_or_default()
    }

    /// The highest memory ceiling any plugin can get, which sizes the engine's memory slots.
    pub fn max_memory_ceiling_mib(&self) -> u32 {
        let site = self
            .rules
            .ceilings
            .memory_mib
            .unwrap_or(limits::HOST_CEILINGS.memory_mib);
        self.overrides
            .values()
            .filter_map(|o| o.ceilings.memory_mib)
            .fold(site, u32::max)
    }

    /// The longest a handler may run under this policy (event leases are sized from it).
    pub fn max_timeout_ms(&self) -> u32 {
        let site = self
            .rules
            .ceilings
            .timeout_ms
            .unwrap_or(limits::HOST_CEILINGS.timeout_ms);
        self.overrides
            .values()
            .filter_map(|o| o.ceilings.timeout_ms)
            .fold(site, u32::max)
    }

    pub fn quarantine(&self) -> &QuarantineRules {
        &self.rules.quarantine
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.allowed { "allowed" } else { "REFUSED" };
        write!(
            f,
            "{mark:8} {}: {} ({})",
            self.subject, self.message, self.rule
        )
    }
}
