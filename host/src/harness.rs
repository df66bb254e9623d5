//! `ucms plugin harness`: one plugin in a real, throw-away site, driven by JSON lines on stdin.
//!
//! This is what the plugin test kits (`ucms-testing` for Rust, `@ucms/sdk/testing` for
//! TypeScript, `ucms_sdk.testing` for Python) run: the plugin's compiled component, installed
//! unsigned under the development policy ([`crate::dev::source`]) into a site in a temporary
//! folder (SQLite, the files blob store, the memory cache), with event delivery and a single
//! attempt per event so a failing handler is reported at once. Requests go through the site's
//! real router: authentication, the permission check, limits and error mapping included.
//!
//! One JSON object per line in, one per line out, in order. Every answer carries `"ok"` and the
//! plugin's log lines produced meanwhile (`"logs"`). Commands (`"op"`):
//!
//! | op | fields | answer |
//! |---|---|---|
//! | `request` | `method`, `path` (below `/api/{id}`, or a full `/api/...` path), `headers` (`[[name, value]]`), `body` (text), `as` (principal) | `status`, `headers` (object), `body` (text) |
//! | `kv.get` | `key` | `value`: the stored bytes as JSON if they parse, else as text; `null` when absent |
//! | `kv.set` | `key`, `value` (JSON, stored as its text) | |
//! | `kv.keys` | `prefix` | `keys` |
//! | `documents.get` | `collection`, `id` | `document`: `{id, revision, data, ...}` or `null` |
//! | `documents.list` | `collection` | `documents`: up to 1000, by id |
//! | `event.publish` | `topic`, `payload` (JSON), `key` | `deliveries`: `[{subscriber, delivered, error}]`, once each has been handled |
//! | `schedule.tick` | `name` | `error` when the plugin reported one |
//! | `logs` | | |
//!
//! A principal (`as`) is `{"kind": "anonymous"}` (the default), or `{"kind": "user",
//! "permissions": [...]}`: a user holding those grants (the plugin's own permissions may be named
//! without its id: `notes.write`), calling with an API token of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::Site;
use crate::capabilities::events::NewEvent;
use crate::config::{Config, DataDir, PluginConfig};
use crate::identity::TokenKind;

/// What the plugin gets from the operator in the harness's site.
#[derive(Debug, Clone, Default)]
pub struct HarnessOptions {
    /// `[plugins.ID.settings]`.
    pub settings: toml::Table,
    /// `[plugins.ID.secrets]`.
    pub secrets: std::collections::BTreeMap<String, String>,
    /// `[policy.overrides.ID] internal-networks` = loopback.
    pub allow_private_egress: bool,
}

/// A site in a temporary folder with one plugin installed.
pub struct Harness {
    site: Site,
    id: String,
    stop: CancellationToken,
    /// Tokens of the users made for `as`, by their sorted grants.
    tokens: tokio::sync::Mutex<HashMap<Vec<String>, String>>,
    _dir: tempfile::TempDir,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "op")]
enum Command {
    #[serde(rename = "request")]
    Request {
        #[serde(default = "get")]
        method: String,
        path: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
        #[serde(default)]
        body: Option<String>,
        #[serde(default, rename = "as")]
        principal: Option<PrincipalSpec>,
    },
    #[serde(rename = "kv.get")]
    KvGet { key: String },
    #[serde(rename = "kv.set")]
    KvSet { key: String, value: Value },
    #[serde(rename = "kv.keys")]
    KvKeys {
        #[serde(default)]
        prefix: String,
    },
    #[serde(rename = "documents.get")]
    DocumentsGet { collection: String, id: String },
    #[serde(rename = "documents.list")]
    DocumentsList { collection: String },
    #[serde(rename = "event.publish")]
    EventPublish {
        topic: String,
        #[serde(default)]
        payload: Value,
        #[serde(default)]
        key: Option<String>,
    },
    #[serde(rename = "schedule.tick")]
    ScheduleTick { name: String },
    #[serde(rename = "logs")]
    Logs,
}

fn get() -> String {
    "GET".into()
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum PrincipalSpec {
    Anonymous,
    User {
        #[serde(default)]
        permissions: Vec<String>,
    },
}

/// A failed command's answer.
fn failure(code: &str, message: impl std::fmt::Display) -> Value {
    json!({ "ok": false, "error": { "code": code, "message": message.to_string() } })
}

impl Harness {
    /// Opens a fresh site and installs the built plugin in `dir` (its `plugin.wasm` must exist).
    pub async fn open(dir: &Path, options: HarnessOptions) -> anyhow::Result<Self> {
        let dir = &dir
            .canonicalize()
            .with_context(|| format!("no plugin folder at {}", dir.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix("ucms-harness-")
            .tempdir()
            .context("cannot create a temporary folder")?;
        let data = DataDir::new(tmp.path().join("data"));
        // Compiled components are kept beside the plugin, so the next run (and every test of
        // this one) loads them instead of compiling again.
        share_compiled_cache(dir, &data);
        // The manifest's id, for the operator's settings; the source itself is read once the
        // site (and its policy) is open.
        let id = ucms_manifest::Manifest::load(dir)?.id.to_string();
        let mut config = Config::default();
        config.runtime.max_instances = 32;
        config.events.max_attempts = 1;
        config.events.base_backoff_ms = 10;
        config.events.max_backoff_ms = 10;
        config.events.poll_interval_ms = 20;
        config.plugins.insert(
            id.clone(),
            PluginConfig {
                settings: options.settings,
                secrets: options.secrets,
            },
        );
        if options.allow_private_egress {
            // The policy's override for this plugin: its outbound requests may reach this
            // machine (a receiver the test runs on 127.0.0.1).
            config.policy.overrides.insert(
                id.clone(),
                crate::policy::PluginOverride {
                    internal_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
                    ..Default::default()
                },
            );
        }
        let site = Site::open(config, data).await?;
        let source = crate::dev::source(dir, &site)?;
        site.plugins
            .apply(
                source,
                crate::plugins::ApplyOptions {
                    actor: Some("harness".into()),
                    allow_downgrade: false,
                },
            )
            .await?;
        let stop = CancellationToken::new();
        site.start_background(stop.clone());
        Ok(Self {
            site,
            id,
            stop,
            tokens: Default::default(),
            _dir: tmp,
        })
    }

    pub fn plugin_id(&self) -> &str {
        &self.id
    }

    /// Runs one command line; always answers.
    pub async fn handle(&self, line: &str) -> Value {
        let command: Command = match serde_json::from_str(line) {
            Ok(c) => c,
            Err(e) => return failure("bad_command", format!("not a harness command: {e}")),
        };
        let mut answer = match self.run(command).await {
            Ok(value) => value,
            Err(e) => failure("failed", format!("{e:#}")),
        };
        if let Some(object) = answer.as_object_mut() {
            object.entry("ok").or_insert(Value::Bool(true));
            object.insert("logs".into(), json!(crate::devlog::drain()));
        }
        answer
    }

    async fn run(&self, command: Command) -> anyhow::Result<Value> {
        let services = &self.site.services;
        match command {
            Command::Request {
                method,
                path,
                headers,
                body,
                principal,
            } => {
                let uri = if path.starts_with("/api/") {
                    path
                } else {
                    format!("/api/{}{}", self.id, path)
                };
                let mut request = http::Request::builder().method(method.as_str()).uri(&uri);
                for (name, value) in &headers {
                    request = request.header(name, value);
                }
                if let Some(PrincipalSpec::User { permissions }) = principal {
                    let token = self.token(permissions).await?;
                    request = request.header("authorization", format!("Bearer {token}"));
                }
                let request = request
                    .body(Body::from(body.unwrap_or_default()))
                    .context("the request is not valid")?;
                let response = self.site.router().oneshot(request).await?;
                let status = response.status().as_u16();
                let headers: serde_json::Map<String, Value> = response
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            Value::String(v.to_str().unwrap_or_default().to_string()),
                        )
                    })
                    .collect();
                let body = response.into_body().collect().await?.to_bytes();
                Ok(json!({
                    "status": status,
                    "headers": headers,
                    "body": String::from_utf8_lossy(&body),
                }))
            }
            Command::KvGet { key } => {
                let value = services.kv.get(&self.id, &key).await?;
                Ok(json!({ "value": value.map(|v| bytes_to_json(&v)) }))
            }
            Command::KvSet { key, value } => {
                let bytes = serde_json::to_vec(&value)?;
                services.kv.set(&self.id, &key, &bytes).await?;
                Ok(json!({}))
            }
            Command::KvKeys { prefix } => {
                use crate::capabilities::kv::Start;
                let mut keys: Vec<String> = Vec::new();
                loop {
                    let start = match keys.last() {
                        Some(last) => Start::After(last),
                        None => Start::AtOrAfter(&prefix),
                    };
                    let page = services.kv.keys(&self.id, start, 1000).await?;
                    let done = page.len() < 1000;
                    let before = keys.len();
                    keys.extend(page.into_iter().take_while(|k| k.starts_with(&prefix)));
                    if done || keys.len() - before < 1000 {
                        break;
                    }
                }
                Ok(json!({ "keys": keys }))
            }
            Command::DocumentsGet { collection, id } => {
                let scope = ucms_documents::Scope {
                    plugin: &self.id,
                    collection: &collection,
                };
                let document = services.documents.get(scope, &id).await?;
                Ok(json!({ "document": document.map(document_json) }))
            }
            Command::DocumentsList { collection } => {
                let scope = ucms_documents::Scope {
                    plugin: &self.id,
                    collection: &collection,
                };
                let query = ucms_documents::Query {
                    filter: None,
                    sort: Vec::new(),
                    limit: 1000,
                    offset: 0,
                    cursor: None,
                    fields: None,
                    with_total: false,
                };
                let page = services.documents.query(scope, &query).await?;
                let documents: Vec<Value> = page.documents.into_iter().map(document_json).collect();
                Ok(json!({ "documents": documents }))
            }
            Command::EventPublish {
                topic,
                payload,
                key,
            } => self.publish(topic, payload, key).await,
            Command::ScheduleTick { name } => {
                let slot = self
                    .site
                    .plugins
                    .get(&self.id)
                    .context("the plugin is gone")?;
                let plugin = slot
                    .runnable()
                    .context("the plugin is not running")?
                    .clone();
                if !slot.manifest.schedules.iter().any(|s| s.name == name) {
                    anyhow::bail!(
                        "ucms-plugin.toml declares no schedule '{name}' under [[schedules]]"
                    );
                }
                let now = u64::try_from(crate::db::now_ms()).unwrap_or_default();
                match plugin.tick(&name, now).await {
                    Ok(Ok(())) => Ok(json!({})),
                    Ok(Err(message)) => Ok(json!({ "error": message })),
                    Err(error) => Ok(json!({ "error": format!("{}: {error}", error.code()) })),
                }
            }
            Command::Logs => Ok(json!({})),
        }
    }

    /// Publishes as the source `harness`, then waits until every subscriber's delivery has been
    /// handled (delivered, or failed: with one attempt per event, a failure is final).
    async fn publish(
        &self,
        topic: String,
        payload: Value,
        key: Option<String>,
    ) -> anyhow::Result<Value> {
        if !ucms_manifest::is_valid_topic(&topic) {
            anyhow::bail!(
                "'{topic}' is not a topic: use dot-separated lower-case segments such as 'orders.placed'"
            );
        }
        let bus = &self.site.services.events;
        let subscribers = bus.subscriptions.subscribers(&topic);
        let event = NewEvent {
            id: uuid::Uuid::now_v7().to_string(),
            topic,
            key,
            payload: serde_json::to_vec(&payload)?,
            source: "harness".into(),
            published_at: crate::db::now_ms(),
        };
        bus.outbox
            .publish(&event, &subscribers, crate::db::now_ms())
            .await?;
        bus.published();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let backlog = bus.outbox.backlog().await?;
            let pending: i64 = backlog
                .iter()
                .filter(|b| subscribers.contains(&b.subscriber))
                .map(|b| b.pending)
                .sum();
            if pending == 0 {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the event was not handled within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let dead = bus.outbox.dead_letters(1000).await?;
        let deliveries: Vec<Value> = subscribers
            .iter()
            .map(|subscriber| {
                let letter = dead
                    .iter()
                    .find(|d| d.event_id == event.id && &d.subscriber == subscriber);
                json!({
                    "subscriber": subscriber,
                    "delivered": letter.is_none(),
                    "error": letter.and_then(|l| l.last_error.clone()),
                })
            })
            .collect();
        Ok(json!({ "event_id": event.id, "deliveries": deliveries }))
    }

    /// An API token of a user holding `permissions` (the plugin's own may be named without its
    /// id), made once per set of grants.
    async fn token(&self, permissions: Vec<String>) -> anyhow::Result<String> {
        let mut grants: Vec<String> = permissions
            .into_iter()
            .map(|p| {
                let own = self.site.plugins.get(&self.id).is_some_and(|s| {
                    s.manifest
                        .permissions
                        .keys()
                        .any(|k| p == *k || p.starts_with(&format!("{k}:")))
                });
                if own { format!("{}.{p}", self.id) } else { p }
            })
            .collect();
        grants.sort();
        let mut tokens = self.tokens.lock().await;
        if let Some(token) = tokens.get(&grants) {
            return Ok(token.clone());
        }
        let identity = &self.site.services.identity;
        let n = tokens.len() + 1;
        let role = format!("harness-{n}");
        identity
            .create_role(&role, "made by the test harness", &grants, Some("harness"))
            .await
            .map_err(|e| anyhow::anyhow!("cannot make a role with {grants:?}: {e}"))?;
        let user = identity
            .create_user(
                &format!("user{n}@harness.test"),
                "harness-password-not-secret",
                &[role],
            )
            .await?;
        let token = identity
            .issue_token(&user, TokenKind::Api, "harness", &["*".to_string()], None)
            .await?
            .token;
        tokens.insert(grants, token.clone());
        Ok(token)
    }

    /// Stops the background work and closes the database.
    pub async fn close(self) {
        self.stop.cancel();
        // Let the background loops see the cancellation before the pool goes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.site.db.close().await;
    }
}

fn bytes_to_json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn document_json(d: ucms_documents::Document) -> Value {
    json!({
        "id": d.id,
        "revision": d.revision,
        "data": d.data,
        "created_at_ms": d.created_at_ms,
        "updated_at_ms": d.updated_at_ms,
    })
}

/// Points the site's compiled-component cache at `<plugin>/.ucms-build/compiled`.
fn share_compiled_cache(dir: &Path, data: &DataDir) {
    let shared: PathBuf = dir.join(crate::authoring::js::BUILD_DIR).join("compiled");
    let target = data.compiled_cache();
    let linked = std::fs::create_dir_all(&shared).is_ok()
        && target
            .parent()
            .is_some_and(|p| std::fs::create_dir_all(p).is_ok())
        && std::os::unix::fs::symlink(&shared, &target).is_ok();
    if !linked {
        tracing::debug!("cannot share the compiled cache; components are compiled again");
    }
}

/// Serves commands from stdin until it closes: prints `{"ready": true, "plugin": ID}`, then one
/// answer line per command line.
pub async fn serve_stdio(harness: Harness) -> anyhow::Result<()> {
    let mut out = tokio::io::stdout();
    let ready =
        json!({ "ready": true, "plugin": harness.plugin_id(), "logs": crate::devlog::drain() });
    out.write_all(format!("{ready}\n").as_bytes()).await?;
    out.flush().await?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let answer = harness.handle(&line).await;
        out.write_all(format!("{answer}\n").as_bytes()).await?;
        out.flush().await?;
    }
    harness.close().await;
    Ok(())
}
