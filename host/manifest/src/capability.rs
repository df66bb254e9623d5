//! The host capabilities a manifest can ask for, one per `ucms:host` interface.

use std::fmt;

use crate::{HostPattern, TopicPattern};

/// A `ucms:host` interface a plugin may import. The manifest key is [`Capability::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    Kv,
    Log,
    Config,
    Events,
    Auth,
    HttpClient,
    Documents,
    Blobs,
    Cache,
    Hooks,
}

impl Capability {
    pub const ALL: [Capability; 10] = [
        Self::Kv,
        Self::Log,
        Self::Config,
        Self::Events,
        Self::Auth,
        Self::HttpClient,
        Self::Documents,
        Self::Blobs,
        Self::Cache,
        Self::Hooks,
    ];

    /// The manifest key and the interface name inside `ucms:host`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kv => "kv",
            Self::Log => "log",
            Self::Config => "config",
            Self::Events => "events",
            Self::Auth => "auth",
            Self::HttpClient => "http-client",
            Self::Documents => "documents",
            Self::Blobs => "blobs",
            Self::Cache => "cache",
            Self::Hooks => "hooks",
        }
    }

    /// The first `ucms:host` version with this interface.
    pub fn since(self) -> semver::Version {
        match self {
            Self::Documents | Self::Blobs | Self::Cache => semver::Version::new(0, 2, 0),
            Self::Hooks => semver::Version::new(0, 2, 1),
            _ => semver::Version::new(0, 1, 0),
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// One line for consent screens and `ucms plugin list`.
    pub fn summary(self) -> &'static str {
        match self {
            Self::Kv => "store data in its own key-value space",
            Self::Log => "write log lines",
            Self::Config => "read its settings and secrets",
            Self::Events => "publish events",
            Self::Auth => "see who is calling and check permissions",
            Self::HttpClient => "make outbound HTTP requests",
            Self::Documents => "store JSON documents in its own collections",
            Self::Blobs => "store files in its own blob space",
            Self::Cache => "cache values in its own space",
            Self::Hooks => "run its own hook points, calling the plugins that join them",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The capabilities a manifest grants, with their scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub kv: bool,
    pub log: bool,
    pub config: bool,
    pub auth: bool,
    pub events: Option<EventsGrant>,
    pub http_client: Option<HttpClientGrant>,
    pub documents: Option<DocumentsGrant>,
    pub blobs: Option<BlobsGrant>,
    pub cache: bool,
    /// Running the plugin's own hook points (`ucms:host/hooks`).
    pub hooks: bool,
}

/// Scopes of the `documents` capability: quotas the plugin asks for (capped by the operator) and
/// the indexes and full-text search the host creates before the plugin first runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocumentsGrant {
    pub max_documents: Option<u64>,
    pub max_mib: Option<u64>,
    pub indexes: Vec<DeclaredIndex>,
    pub search: Vec<DeclaredSearch>,
}

/// `[[capabilities.documents.indexes]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredIndex {
    pub collection: String,
    pub name: String,
    pub fields: Vec<String>,
    pub unique: bool,
}

/// `[[capabilities.documents.search]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredSearch {
    pub collection: String,
    pub fields: Vec<String>,
    pub language: String,
}

/// Scopes of the `blobs` capability: the quota and the largest blob the plugin asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobsGrant {
    pub max_mib: Option<u64>,
    pub max_blob_mib: Option<u64>,
}

/// Scopes of the `events` capability.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsGrant {
    /// Topics the plugin may publish to.
    pub publish: Vec<TopicPattern>,
}

impl EventsGrant {
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|p| p.matches(topic))
    }
}

/// Scopes of the `http-client` capability.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpClientGrant {
    /// Destinations the plugin may call.
    pub hosts: Vec<HostPattern>,
    /// `site-hosts = true`: the site decides further destinations at run time, with the
    /// operator's `[policy.overrides.<id>] hosts` (a webhooks plugin, whose targets its users
    /// choose). The host adds them to `hosts` when it prepares the plugin.
    pub site_hosts: bool,
}

impl HttpClientGrant {
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.hosts.iter().any(|p| p.matches(host, port))
    }
}

impl Capabilities {
    pub fn grants(&self, capability: Capability) -> bool {
        match capability {
            Capability::Kv => self.kv,
            Capability::Log => self.log,
            Capability::Config => self.config,
            Capability::Auth => self.auth,
            Capability::Events => self.events.is_some(),
            Capability::HttpClient => self.http_client.is_some(),
            Capability::Documents => self.documents.is_some(),
            Capability::Blobs => self.blobs.is_some(),
            Capability::Cache => self.cache,
            Capability::Hooks => self.hooks,
        }
    }

    /// The granted capabilities, in a stable order.
    pub fn granted(&self) -> Vec<Capability> {
        Capability::ALL
            .into_iter()
            .filter(|c| self.grants(*c))
            .collect()
    }

    /// Human-readable lines: each capability with its scopes, for consent screens and listings.
    pub fn describe(&self) -> Vec<String> {
        self.granted()
            .into_iter()
            .map(|c| match c {
                Capability::Events => {
                    let topics = self
                        .events
                        .as_ref()
                        .map(|e| join(&e.publish))
                        .unwrap_or_default();
                    format!(
                        "events: {} ({})",
                        c.summary(),
                        if topics.is_empty() {
                            "no topics".into()
                        } else {
                            topics
                        }
                    )
                }
                Capability::HttpClient => {
                    let (hosts, site_hosts) = self
                        .http_client
                        .as_ref()
                        .map(|h| (join(&h.hosts), h.site_hosts))
                        .unwrap_or_default();
                    let to = match (hosts.is_empty(), site_hosts) {
                        (_, false) => hosts,
                        (true, true) => "the hosts the site's policy grants it".to_string(),
                        (false, true) => {
                            format!("{hosts} and the hosts the site's policy grants it")
                        }
                    };
                    format!("http-client: {} (to {})", c.summary(), to)
                }
                _ => format!("{c}: {}", c.summary()),
            })
            .collect()
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
