//! Site configuration: `ucms.toml`, overridden key by key by `UCMS_…` environment variables.
//!
//! Every key has a default, so a site runs with no file at all. An environment variable names a key
//! path with `__` between segments and `_` for `-`: `UCMS_SERVER__LISTEN=0.0.0.0:8080` sets
//! `[server] listen`, `UCMS_PLUGINS__HELLO__SETTINGS__GREETING=Hi` sets
//! `[plugins.hello.settings] greeting`. Values are read as TOML when they parse (`42`, `true`,
//! `["a"]`) and as plain strings otherwise.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::policy::{Policy, PolicyError, PolicyRules, PolicySource};

/// The whole configuration of a site.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub runtime: RuntimeConfig,
    pub limits: LimitsConfig,
    pub events: EventsConfig,
    pub log: LogConfig,
    pub registry: RegistrySettings,
    pub trust: TrustConfig,
    pub documents: DocumentsConfig,
    pub blobs: BlobsConfig,
    pub cache: CacheConfig,
    pub cluster: ClusterConfig,
    pub auth: AuthConfig,
    pub egress: EgressConfig,
    pub telemetry: TelemetryConfig,
    /// What plugins may be installed and run, and what they may consume (see docs/policy.md).
    pub policy: PolicyRules,
    /// Per-plugin settings and secrets, by plugin id.
    pub plugins: BTreeMap<String, PluginConfig>,
    /// The file this configuration was read from (the policy's rules are reloaded from it).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Seconds to let in-flight requests finish on shutdown.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://…`; defaults to `ucms.db` in the data directory.
    pub url: Option<String>,
    /// Connections in the pool (PostgreSQL; readers for SQLite).
    pub max_connections: Option<u32>,
}

/// The `documents` capability, site-wide. Quotas per plugin are the policy's
/// (`[policy.defaults]`/`[policy.ceilings]` `max-documents`, `documents-mib`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DocumentsConfig {
    /// Largest document, in KiB.
    pub max_document_kib: u32,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        Self {
            max_document_kib: 1024,
        }
    }
}

/// Where blobs live. How much each plugin may store is the policy's (`blobs-mib`, `max-blob-mib`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct BlobsConfig {
    /// `files` (a folder, `blobs/` in the data directory unless `path` says otherwise) or `s3`.
    pub backend: BlobBackendKind,
    pub path: Option<PathBuf>,
    pub s3: S3Settings,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlobBackendKind {
    #[default]
    Files,
    S3,
}

/// An S3-compatible object store. Credentials may come from `UCMS_BLOBS__S3__…` variables.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct S3Settings {
    pub bucket: Option<String>,
    pub region: Option<String>,
    /// For S3-compatible servers other than AWS: `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow a plain-HTTP endpoint (a local server).
    pub allow_http: bool,
    /// A key prefix inside the bucket, so several sites can share one.
    pub prefix: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// The `cache` capability: in memory unless `url` names a Redis server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CacheConfig {
    /// `redis://HOST:PORT/DB`; absent: an in-memory cache in each process.
    pub url: Option<String>,
    /// Size of the in-memory cache, in MiB.
    pub memory_mib: u64,
    /// Separates this site's keys from other sites sharing the Redis server.
    pub namespace: String,
}

/// Sign-in beyond passwords and sessions: JWT access tokens with refresh tokens for API clients,
/// and OpenID Connect providers (`[auth.oidc.NAME]`). See docs/authentication.md.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuthConfig {
    pub jwt: JwtConfig,
    /// OpenID Connect providers by name (`[a-z0-9-]+`), used in `/api/ucms/auth/oidc/NAME/start`.
    pub oidc: BTreeMap<String, OidcProviderConfig>,
    /// Browser sessions end after this many seconds without use. Default 7200 (2 hours).
    pub session_idle_secs: Option<u64>,
    /// Browser sessions end this many seconds after sign-in, used or not. Default 43200 (12 hours).
    pub session_absolute_secs: Option<u64>,
    /// When the session cookie is marked `Secure`: `auto` (the request came over TLS, as a trusted
    /// proxy's `X-Forwarded-Proto: https` says), `always` or `never`. See docs/identity.md.
    pub secure_cookies: SecureCookies,
    /// Addresses of reverse proxies whose `X-Forwarded-Proto` and `X-Forwarded-For` are believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Failed attempts per account within `lockout-window-secs` before it is locked. Default 10.
    pub max_failures_per_account: Option<u32>,
    /// Failed attempts per client address within the window before it is refused. Default 50.
    pub max_failures_per_address: Option<u32>,
    /// The window of the failure counters and the lock, in seconds. Default 900 (15 minutes).
    pub lockout_window_secs: Option<u64>,
    /// The site's public URL, for links in mail (`https://cms.example.com`). Default
    /// `http://` + the server's listen address.
    pub public_url: Option<String>,
    /// Where password-reset and invitation mail goes out; when absent, mail is logged.
    pub smtp: Option<SmtpConfig>,
}

/// `[auth] secure-cookies`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecureCookies {
    #[default]
    Auto,
    Always,
    Never,
}

/// `[auth.smtp]`: the SMTP server that sends the host's mail.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SmtpConfig {
    /// `smtps://HOST:PORT` (TLS), `smtp://HOST:PORT?tls=required` (STARTTLS) or `smtp://HOST:PORT`
    /// (plain, for a local relay).
    pub url: String,
    /// The `From` address, e.g. `UCMS <noreply@example.com>`.
    pub from: String,
    pub user: Option<String>,
    /// Or set `UCMS_AUTH__SMTP__PASSWORD`.
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("url", &self.url)
            .field("from", &self.from)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// JWT access tokens (EdDSA) and the refresh tokens that renew them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct JwtConfig {
    /// The `iss` claim. Default: `[auth] public-url`, else `ucms`.
    pub issuer: Option<String>,
    /// The `aud` claim tokens carry and verification requires. Default `ucms`.
    pub audience: String,
    /// Lifetime of an access token, in seconds. Default 900 (15 minutes).
    pub access_ttl_secs: u64,
    /// Clock skew tolerated on `exp`/`nbf`/`iat`, in seconds. Default 30.
    pub leeway_secs: u64,
    /// A new signing key after this many days; old keys keep verifying until their tokens expire.
    pub rotate_days: u64,
    /// Absolute lifetime of a refresh-token family, in seconds. Default 30 days.
    pub refresh_lifetime_secs: u64,
    /// A family unused for this long expires, in seconds. Default 7 days.
    pub refresh_idle_secs: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            audience: "ucms".into(),
            access_ttl_secs: 900,
            leeway_secs: 30,
            rotate_days: 30,
            refresh_lifetime_secs: 30 * 86_400,
            refresh_idle_secs: 7 * 86_400,
        }
    }
}

/// One OpenID Connect provider (authorization code flow with PKCE).
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct OidcProviderConfig {
    /// The issuer URL; discovery reads `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// The client secret, or set `UCMS_AUTH__OIDC__NAME__CLIENT_SECRET`.
    pub client_secret: Option<String>,
    /// Scopes requested; default `openid email profile`.
    pub scopes: Vec<String>,
    /// The callback URL registered at the provider; default derived from the request's host:
    /// `{scheme}://{host}/api/ucms/auth/oidc/NAME/callback`.
    pub redirect_url: Option<String>,
    /// Create an account for an unknown (verified) email. Default false.
    pub allow_signup: bool,
    /// Roles of accounts created by sign-up.
    pub default_roles: Vec<String>,
    /// When set, only emails in these domains may sign in.
    pub email_domains: Vec<String>,
}

impl std::fmt::Debug for OidcProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProviderConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("allow_signup", &self.allow_signup)
            .finish_non_exhaustive()
    }
}

/// Running several `ucms serve` nodes on one site (PostgreSQL shared by all of them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterConfig {
    /// `redis://HOST:PORT/DB`: pub/sub between nodes (plugin changes, event wake-ups) and shared
    /// rate limits. Absent: each node polls the database and keeps its own rate limits.
    pub redis_url: Option<String>,
    /// Separates this site's channels and counters from other sites on the same Redis server.
    pub namespace: Option<String>,
    /// This node's name in logs, claims and the install journal; default `HOST:PID`.
    pub node_id: Option<String>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            url: None,
            memory_mib: 64,
            namespace: "site".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuntimeConfig {
    /// Use wasmtime's pooling allocator when the address space allows it.
    pub pooling: bool,
    /// Instances (across all plugins) that can exist at once; sizes the pooling allocator and caps
    /// the instances in flight overall.
    pub max_instances: u32,
    /// Granularity of deadlines, in milliseconds.
    pub epoch_tick_ms: u64,
    /// Keep precompiled components on disk so restarts don't recompile.
    pub cache_compiled: bool,
    /// Memory per instance slot kept resident and reset in place after use (pooling allocator),
    /// in KiB: faster reuse for a little more resident memory.
    pub memory_keep_resident_kib: u32,
    /// Long-running guests (past `long-running-after-ms` of CPU in one call) computing at once,
    /// across all plugins; they take turns every epoch tick. 0: half the cores, at least one.
    pub long_running_lanes: u32,
    /// CPU time after which an invocation counts as long-running.
    pub long_running_after_ms: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            pooling: true,
            max_instances: 1000,
            epoch_tick_ms: 10,
            cache_compiled: true,
            memory_keep_resident_kib: 4096,
            long_running_lanes: 0,
            long_running_after_ms: 20,
        }
    }
}

/// Site-wide caps that apply to every plugin alike. What each plugin may consume (memory, time,
/// bodies, outbound calls, rates, quotas) is the policy's: `[policy.defaults]`, `[policy.ceilings]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsConfig {
    /// Largest kv value, in KiB.
    pub kv_max_value_kib: Option<u32>,
    /// Largest event payload, in KiB.
    pub event_max_payload_kib: Option<u32>,
    /// Per-request timeout of outbound HTTP calls, in milliseconds.
    pub outbound_timeout_ms: Option<u32>,
    /// Largest outbound response body, in KiB.
    pub outbound_max_response_kib: Option<u32>,
}

/// How plugins' outbound requests find their destinations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EgressConfig {
    /// DNS servers (`IP:PORT`) that resolve plugins' destinations; empty: the system's resolver.
    pub nameservers: Vec<SocketAddr>,
}

/// Exporting traces.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TelemetryConfig {
    /// An OTLP/HTTP collector (`http://127.0.0.1:4318`): spans of requests, plugin invocations and
    /// host calls are exported to `{endpoint}/v1/traces`. Absent: nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of exported spans.
    pub service_name: String,
    /// The share of traces exported, 0.0 to 1.0.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "ucms".into(),
            sample_ratio: 1.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EventsConfig {
    /// Delivery attempts before an event becomes a dead letter.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub base_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// How often the dispatcher looks for due deliveries when nothing wakes it.
    pub poll_interval_ms: u64,
    /// Deliveries handled at once.
    pub concurrency: usize,
    /// How long a claimed delivery stays leased before another claim (another node) may take it;
    /// default: the longest handler time the limits allow, plus 30 s.
    pub lease_ms: Option<u64>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_backoff_ms: 500,
            max_backoff_ms: 300_000,
            poll_interval_ms: 500,
            concurrency: 16,
            lease_ms: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `ucms=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info,pubgrub=warn,sqlx=warn".into(),
            format: "text".into(),
        }
    }
}

/// Where plugins are installed from by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegistrySettings {
    /// The registry's base URL, for `ucms plugin install NAME` without `--registry`.
    pub url: Option<String>,
}

/// The keys this site trusts to sign plugins. (Whether unsigned plugins may run, and which
/// trusted publishers are allowed, is the policy's.)
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrustConfig {
    /// Registry keys (base64 Ed25519, as in the registry's `/keys/registry.json`): packages
    /// signed by publisher keys these registries endorse are trusted.
    pub registries: Vec<String>,
    /// Publisher keys trusted directly.
    pub publishers: Vec<TrustedPublisherKey>,
    /// Keys this site refuses, whatever anyone says.
    pub revoked: Vec<RevokedKey>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrustedPublisherKey {
    pub publisher: String,
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RevokedKey {
    pub key_id: String,
    pub reason: String,
}

impl TrustConfig {
    /// The trust store these settings describe.
    pub fn store(&self) -> anyhow::Result<ucms_package::trust::TrustStore> {
        use ucms_package::keys::{KeyId, PublicKey};
        let mut store = ucms_package::trust::TrustStore::new();
        for (i, key) in self.registries.iter().enumerate() {
            let key = PublicKey::from_base64(key)
                .map_err(|e| anyhow::anyhow!("[trust] registries[{i}]: {e}"))?;
            store.trust_registry(key);
        }
        for (i, p) in self.publishers.iter().enumerate() {
            let key = PublicKey::from_base64(&p.key)
                .map_err(|e| anyhow::anyhow!("[trust] publishers[{i}]: {e}"))?;
            store.trust_publisher(&p.publisher, key);
        }
        for r in &self.revoked {
            store.add_revocation(ucms_package::trust::Revocation::local(
                &KeyId(r.key_id.clone()),
                0,
                &r.reason,
            ));
        }
        Ok(store)
    }
}

/// What the site owner sets for one plugin. (Its ceilings and internal networks are the
/// policy's: `[policy.overrides.<id>]`.)
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginConfig {
    /// Values of the settings the manifest declares.
    pub settings: toml::Table,
    /// Values of the secrets the manifest declares.
    pub secrets: BTreeMap<String, String>,
}

impl Config {
    /// Reads `path` (when it exists, or when `required`), then applies `UCMS_…` variables from
    /// `env`.
    pub fn load(
        path: &Path,
        required: bool,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut table = match std::fs::read_to_string(path) {
            Ok(text) => text
                .parse::<toml::Table>()
                .with_context(|| format!("{} is not valid TOML", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => toml::Table::new(),
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot read the configuration file {}", path.display())
                });
            }
        };
        apply_env(&mut table, env)?;
        let mut config: Config = toml::Value::Table(table).try_into().with_context(|| {
            format!(
                "the configuration ({} and UCMS_ variables) is not valid",
                path.display()
            )
        })?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// The database URL, defaulting to SQLite in `data_dir`.
    pub fn database_url(&self, data_dir: &Path) -> String {
        self.database
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("ucms.db").display()))
    }

    pub fn plugin(&self, id: &str) -> PluginConfig {
        self.plugins.get(id).cloned().unwrap_or_default()
    }

    /// The policy this configuration describes, and where a reload will read it: `[policy]`
    /// itself, or the file `[policy] file` names (relative to the configuration file's folder).
    pub fn policy_source(&self) -> Result<(Policy, PolicySource), PolicyError> {
        let rules = &self.policy;
        let config_path = self.path.as_deref();
        match &rules.file {
            Some(file) => {
                let origin = config_path
                    .map(|p| format!("{} [policy]", p.display()))
                    .unwrap_or_else(|| "[policy]".into());
                if rules.has_rules() {
                    return Err(PolicyError {
                        origin,
                        key: "policy".into(),
                        message: format!(
                            "rules are set beside `file = \"{}\"`; move them into that file",
                            file.display()
                        ),
                    });
                }
                let path = match config_path.and_then(Path::parent) {
                    Some(dir) if file.is_relative() => dir.join(file),
                    _ => file.clone(),
                };
                Ok((crate::policy::read_file(&path)?, PolicySource::File(path)))
            }
            None => match config_path {
                Some(path) if path.exists() => Ok((
                    Policy::compile(rules.clone(), &format!("{} [policy]", path.display()))?,
                    PolicySource::ConfigFile(path.to_path_buf()),
                )),
                _ => Ok((
                    Policy::compile(rules.clone(), "[policy] of the configuration")?,
                    PolicySource::Fixed,
                )),
            },
        }
    }
}

/// Reads the policy again from where it was read before (`Config::policy_source`): the policy
/// file, or `[policy]` of the configuration file with `UCMS_POLICY__…` variables applied.
pub fn read_policy(source: &PolicySource) -> Result<Policy, PolicyError> {
    match source {
        PolicySource::Fixed => Err(PolicyError {
            origin: "[policy]".into(),
            key: "policy".into(),
            message: "this policy was given directly and can't be read again".into(),
        }),
        PolicySource::File(path) => crate::policy::read_file(path),
        PolicySource::ConfigFile(path) => {
            let origin = format!("{} [policy]", path.display());
            let config = Config::load(path, true, std::env::vars()).map_err(|e| PolicyError {
                origin: origin.clone(),
                key: "policy".into(),
                message: format!("{e:#}"),
            })?;
            if config.policy.file.is_some() {
                return Err(PolicyError {
                    origin,
                    key: "policy.file".into(),
                    message: "the policy moved to a file; restart the site to follow it".into(),
                });
            }
            Policy::compile(config.policy, &origin)
        }
    }
}

/// Variables the CLI reads itself, not configuration keys.
const CLI_VARIABLES: &[&str] = &[
    "UCMS_DATA",
    "UCMS_CONFIG",
    "UCMS_LOG",
    "UCMS_REGISTRY_TOKEN",
    "UCMS_REGISTRY_DATA",
    "UCMS_REGISTRY_DATABASE",
    // The install journal's crash test hook.
    "UCMS_CRASH_AT",
    // The plugin author's tools: the `ucms` binary the test kits start, whether `ucms plugin
    // test` built the plugin already, the Node.js and componentize-py the builds run.
    "UCMS_BIN",
    "UCMS_PLUGIN_BUILT",
    "UCMS_NODE",
    "UCMS_COMPONENTIZE_PY",
];

fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    for (name, raw) in env {
        let Some(path) = name.strip_prefix("UCMS_") else {
            continue;
        };
        if CLI_VARIABLES.contains(&name.as_str()) || name.starts_with("UCMS_TEST_") {
            continue;
        }
        let segments: Vec<String> = path
            .split("__")
            .map(|s| s.to_ascii_lowercase().replace('_', "-"))
            .collect();
        if segments.iter().any(String::is_empty) {
            bail!(
                "environment variable {name} has an empty key segment; separate keys with exactly two underscores"
            );
        }
        let value = parse_env_value(&raw);
        let mut node = &mut *table;
        for segment in &segments[..segments.len() - 1] {
            let entry = node
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(t) => t,
                _ => bail!(
                    "environment variable {name} sets a key below '{segment}', which is not a table"
                ),
            };
        }
        node.insert(segments[segments.len() - 1].clone(), value);
    }
    Ok(())
}

fn parse_env_value(raw: &str) -> toml::Value {
    // Parse as the right-hand side of a TOML assignment; fall back to a plain string.
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// The data directory's layout.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Installed plugin files: `plugins/<id>/<version>/`.
    pub fn plugin_dir(&self, id: &str, version: &str) -> PathBuf {
        self.root.join("plugins").join(id).join(version)
    }

    /// Precompiled components.
    pub fn compiled_cache(&self) -> PathBuf {
        self.root.join("cache").join("compiled")
    }

    /// Registry index files and downloaded packages.
    pub fn registry_cache(&self) -> PathBuf {
        self.root.join("cache").join("registries")
    }

    pub fn create(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create the data directory {}", self.root.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ucms.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(
            &path,
            true,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_without_a_file() {
        let config = Config::load(Path::new("/nonexistent/ucms.toml"), false, []).unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert!(Config::load(Path::new("/nonexistent/ucms.toml"), true, []).is_err());
    }

    #[test]
    fn environment_overrides_file() {
        let config = load(
            "[server]\nlisten = \"127.0.0.1:1\"\n[plugins.my-plugin.settings]\ngreeting = \"Hi\"\n",
            &[
                ("UCMS_SERVER__LISTEN", "0.0.0.0:9000"),
                ("UCMS_RUNTIME__MAX_INSTANCES", "64"),
                ("UCMS_PLUGINS__MY_PLUGIN__SETTINGS__GREETING", "Hello there"),
                ("UCMS_POLICY__PACKAGES__ALLOW_UNSIGNED", "false"),
                ("UCMS_DATA", "/ignored"),
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.runtime.max_instances, 64);
        let plugin = config.plugin("my-plugin");
        assert_eq!(plugin.settings["greeting"].as_str(), Some("Hello there"));
        assert!(!config.policy.packages.allow_unsigned);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = load("[server]\nlisen = \"x\"\n", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    }
}
