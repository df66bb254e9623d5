//! The UCMS plugin manifest, `ucms-plugin.toml`.
//!
//! A manifest says who a plugin is (id, version, publisher), which `ucms:host` API it targets, which
//! host capabilities it may use and with what scopes, what it serves (routes, event subscriptions),
//! which permissions it defines, its settings and secrets, and the limits it asks for.
//!
//! [`Manifest::parse`] reads the TOML into raw serde structs that keep source spans, then validates
//! every rule at once: a [`ManifestError`] lists each [`Problem`] with the key, the line and a hint,
//! so a plugin author fixes everything in one pass.
//!
//! ```
//! let manifest = ucms_manifest::Manifest::parse(r#"
//!     id = "hello"
//!     version = "0.1.0"
//!     publisher = "acme"
//!     description = "Says hello"
//!     api = "^0.1"
//!
//!     [capabilities]
//!     kv = true
//!
//!     [[routes]]
//!     method = "GET"
//!     path = "/greet"
//!     public = true
//! "#).unwrap();
//! assert_eq!(manifest.id.as_str(), "hello");
//! assert!(manifest.capabilities.grants(ucms_manifest::Capability::Kv));
//! ```

mod capability;
mod error;
mod limits;
mod patterns;
mod raw;
pub mod reference;
mod routes;
mod settings;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub use capability::{
    BlobsGrant, Capabilities, Capability, DeclaredIndex, DeclaredSearch, DocumentsGrant,
    EventsGrant, HttpClientGrant,
};
pub use error::{ManifestError, Problem};
pub use limits::LimitsRequest;
pub use patterns::{HostPattern, TopicPattern, is_valid_topic};
pub use routes::{MAX_ROUTE_PATH, RouteHit, RouteMiss, RouteTable};
pub use settings::{SettingKind, SettingSpec};

/// The file name of a manifest inside a plugin folder or package.
pub const MANIFEST_FILE: &str = "ucms-plugin.toml";

/// Plugin ids that no plugin may take: `ucms` is the host's own namespace under `/api/`.
pub const RESERVED_IDS: &[&str] = &["ucms", "admin", "api", "static", "assets"];

/// A validated plugin manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub id: PluginId,
    pub version: semver::Version,
    pub publisher: String,
    pub description: String,
    pub license: Option<String>,
    pub homepage: Option<String>,
    pub categories: Vec<String>,
    /// The `ucms:host` API versions the plugin works with.
    pub api: semver::VersionReq,
    /// Other plugins this one needs, by id.
    pub dependencies: BTreeMap<PluginId, semver::VersionReq>,
    pub capabilities: Capabilities,
    /// Permissions the plugin defines, by local name (`counter.increment`), with a description.
    pub permissions: BTreeMap<String, String>,
    pub routes: Vec<Route>,
    pub subscriptions: Vec<Subscription>,
    pub settings: BTreeMap<String, SettingSpec>,
    /// Secrets the plugin reads, by name, with a description.
    pub secrets: BTreeMap<String, String>,
    pub limits: LimitsRequest,
    /// Hook points the plugin joins (`content.before-save`), in priority order.
    pub hooks: Vec<Hook>,
    /// Recurring jobs.
    pub schedules: Vec<Schedule>,
    /// Pages the plugin adds to the admin UI.
    pub admin_pages: Vec<AdminPage>,
    /// Interfaces this plugin provides to others, with the version it implements.
    pub provides: BTreeMap<String, semver::Version>,
    /// Interfaces this plugin needs some installed plugin to provide.
    pub requires: BTreeMap<String, semver::VersionReq>,
}

impl Manifest {
    /// Parses and validates manifest text.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        validate::parse(text)
    }

    /// Reads and validates `path` (a manifest file, or a folder holding `ucms-plugin.toml`).
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let file = if path.is_dir() {
            path.join(MANIFEST_FILE)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|e| {
            ManifestError::single(Problem::new(
                "",
                format!("cannot read {}: {e}", file.display()),
            ))
        })?;
        Self::parse(&text).map_err(|e| e.in_file(&file))
    }

    /// The fully qualified name of one of this plugin's permissions: `hello.counter.increment`.
    pub fn qualified_permission(&self, local: &str) -> String {
        qualify_permission(&self.id, local)
    }

    /// Whether some subscription of this plugin matches `topic`.
    pub fn subscribes_to(&self, topic: &str) -> bool {
        self.subscriptions.iter().any(|s| s.topic.matches(topic))
    }
}

/// `plugin.local`: the site-wide name of a plugin-defined permission.
pub fn qualify_permission(plugin: &PluginId, local: &str) -> String {
    format!("{}.{local}", plugin.as_str())
}

/// A plugin id: 2–64 characters of lower-case letters, digits and single dashes, starting with a
/// letter; it is also the plugin's URL prefix (`/api/{id}/...`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PluginId(String);

impl PluginId {
    pub fn new(id: &str) -> Result<Self, String> {
        let valid_chars = id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !(2..=64).contains(&id.len())
            || !valid_chars
            || !id.starts_with(|c: char| c.is_ascii_lowercase())
            || id.ends_with('-')
            || id.contains("--")
        {
            return Err(format!(
                "'{id}' is not a valid plugin id: use 2 to 64 lower-case letters, digits and single \
                 dashes, starting with a letter (for example 'my-plugin')"
            ));
        }
        if RESERVED_IDS.contains(&id) {
            return Err(format!(
                "'{id}' is reserved for the host; choose another id"
            ));
        }
        Ok(Self(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for PluginId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::new(s)
    }
}

/// An HTTP method a route may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub const ALL: [Method; 5] = [Self::Get, Self::Post, Self::Put, Self::Patch, Self::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may call a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone, signed in or not.
    Public,
    /// Callers holding this plugin permission (local name, declared under `[permissions]`).
    Permission(String),
}

/// A route the plugin serves under `/api/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    /// Path pattern: `/items/{id}`, `/files/{*rest}`.
    pub path: String,
    pub access: Access,
    /// The host streams the body into the plugin's blobs and passes references (`upload = true`).
    pub upload: bool,
}

/// What the host does when a hook fails or misses its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// The operation the hook guards is refused.
    Reject,
    /// The hook is skipped (with a log line) and the value passes on unchanged.
    Skip,
}

/// A hook point the plugin joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// `content.before-save`, ...
    pub point: String,
    /// Lower runs first.
    pub priority: i32,
    pub on_failure: OnFailure,
    pub timeout_ms: u32,
}

/// A recurring job, run once per tick across all nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub name: String,
    /// A cron expression: 5 fields, or 6 with seconds first.
    pub cron: String,
}

/// A page the plugin adds to the admin UI, served from its package's assets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPage {
    /// Below the plugin's admin mount: `/orders`.
    pub path: String,
    pub title: String,
    /// The asset that is the page: `assets/admin/orders.html`.
    pub entry: String,
    /// Local permission needed to see it.
    pub permission: Option<String>,
}

/// A topic pattern whose events are delivered to the plugin's event handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub topic: TopicPattern,
}
