//! Test a UCMS plugin the way it will really run: its compiled component in the real host, with a
//! temporary site (SQLite, files, memory cache) made for each test.
//!
//! [`TestPlugin::start`] builds the plugin of the crate under test (once per test binary, with
//! `ucms plugin build`) and starts `ucms plugin harness` on it; the methods send it requests with
//! a principal, read its key-value store and documents, publish events to it and run its
//! schedules. The `ucms` binary is `UCMS_BIN`, or `ucms` on the `PATH`; `ucms plugin test` sets
//! it and builds beforehand.
//!
//! ```no_run
//! use serde_json::json;
//! use ucms_testing::TestPlugin;
//!
//! let plugin = TestPlugin::start();
//! let response = plugin.post("/notes").as_user(&["notes.write"]).json(json!({"text": "hi"})).send();
//! assert_eq!(response.status, 201);
//! assert_eq!(plugin.kv("notes"), Some(json!([{ "text": "hi" }])));
//! let delivery = plugin.publish("content.published", json!({ "id": 1 }));
//! assert!(delivery.delivered());
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

/// The `ucms` binary the harness runs.
fn ucms_bin() -> PathBuf {
    std::env::var_os("UCMS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("ucms"))
}

/// The plugin under test: the crate `cargo test` runs in.
fn plugin_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds the plugin once per test binary (unless `ucms plugin test` already did).
fn ensure_built(dir: &Path) {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        if std::env::var_os("UCMS_PLUGIN_BUILT").is_some() {
            return Ok(());
        }
        let status = Command::new(ucms_bin())
            .args(["plugin", "build"])
            .arg(dir)
            .status()
            .map_err(|e| not_found(&e))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "`ucms plugin build {}` failed ({status}); see above",
                dir.display()
            ))
        }
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

fn not_found(error: &std::io::Error) -> String {
    format!(
        "cannot run {} ({error})\n  hint: install ucms, or set UCMS_BIN to its path (`ucms plugin test` does)",
        ucms_bin().display()
    )
}

/// How to start a [`TestPlugin`]: the operator's settings and secrets for it.
#[derive(Debug, Default, Clone)]
pub struct Builder {
    dir: Option<PathBuf>,
    settings: Vec<(String, Value)>,
    secrets: Vec<(String, String)>,
    allow_private_egress: bool,
}

impl Builder {
    /// Test the plugin in `dir` instead of the crate under test.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// A value for a setting the manifest declares (`[plugins.ID.settings]`).
    pub fn setting(mut self, key: &str, value: Value) -> Self {
        self.settings.push((key.to_string(), value));
        self
    }

    /// A secret the manifest declares.
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.push((name.to_string(), value.to_string()));
        self
    }

    /// Let the plugin's outbound requests reach 127.0.0.1 (a receiver the test runs).
    pub fn allow_private_egress(mut self) -> Self {
        self.allow_private_egress = true;
        self
    }

    /// Builds the plugin (once per test binary) and starts it in a fresh site.
    pub fn start(self) -> TestPlugin {
        let dir = self.dir.unwrap_or_else(plugin_dir);
        ensure_built(&dir);
        let mut cmd = Command::new(ucms_bin());
        cmd.args(["plugin", "harness"]).arg(&dir);
        for (key, value) in &self.settings {
            cmd.arg("--setting").arg(format!("{key}={value}"));
        }
        for (name, value) in &self.secrets {
            cmd.arg("--secret").arg(format!("{name}={value}"));
        }
        if self.allow_private_egress {
            cmd.arg("--allow-private-egress");
        }
        let mut child = cmd
            .env(
                "UCMS_LOG",
                std::env::var("UCMS_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{}", not_found(&e)));
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the harness");
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            let status = child.wait().ok();
            panic!(
                "the harness did not start (exit {status:?}); its error is above\n  hint: build the plugin with `ucms plugin build` and check ucms-plugin.toml"
            )
        });
        let id = ready["plugin"].as_str().unwrap_or_default().to_string();
        TestPlugin {
            id,
            io: Mutex::new(Io {
                child,
                stdin: Some(stdin),
                stdout,
            }),
        }
    }
}

struct Io {
    child: Child,
    /// Closed when the plugin is dropped: the harness then removes its site and exits.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// The plugin running in a throw-away site. Dropping it stops the site.
pub struct TestPlugin {
    id: String,
    io: Mutex<Io>,
}

impl std::fmt::Debug for TestPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPlugin")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl TestPlugin {
    /// The plugin of the crate under test, with no settings beyond the manifest's defaults.
    pub fn start() -> Self {
        Builder::default().start()
    }

    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The plugin's id (its routes are under `/api/{id}`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends one harness command and returns its answer; panics on a harness error.
    pub fn command(&self, command: Value) -> Value {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let stdin = io.stdin.as_mut().expect("the harness is running");
        writeln!(stdin, "{command}").expect("write to the harness");
        stdin.flush().expect("write to the harness");
        let mut line = String::new();
        io.stdout.read_line(&mut line).expect("read the harness");
        if line.is_empty() {
            panic!("the harness stopped; its error is above");
        }
        let answer: Value = serde_json::from_str(&line).expect("the harness answers JSON");
        if answer["ok"] != true {
            panic!(
                "harness command {command} failed: {}",
                answer["error"]["message"]
            );
        }
        answer
    }

    pub fn request(&self, method: &str, path: &str) -> RequestBuilder<'_> {
        RequestBuilder {
            plugin: self,
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
            principal: json!({ "kind": "anonymous" }),
        }
    }

    /// A request to one of the plugin's routes: `path` below `/api/{id}`, with its query.
    pub fn get(&self, path: &str) -> RequestBuilder<'_> {
        self.request("GET", path)
    }
    pub fn post(&self, path: &str) -> RequestBuilder<'_> {
        self.request("POST", path)
    }
    pub fn put(&self, path: &str) -> RequestBuilder<'_> {
        self.request("PUT", path)
    }
    pub fn patch(&self, path: &str) -> RequestBuilder<'_> {
        self.request("PATCH", path)
    }
    pub fn delete(&self, path: &str) -> RequestBuilder<'_> {
        self.request("DELETE", path)
    }

    /// The value at `key` in the plugin's key-value store, as JSON (text that isn't JSON comes
    /// back as a string).
    pub fn kv(&self, key: &str) -> Option<Value> {
        let answer = self.command(json!({ "op": "kv.get", "key": key }));
        match &answer["value"] {
            Value::Null => None,
            value => Some(value.clone()),
        }
    }

    /// Stores `value` (as JSON) at `key`, as if the plugin had.
    pub fn set_kv(&self, key: &str, value: Value) {
        self.command(json!({ "op": "kv.set", "key": key, "value": value }));
    }

    /// The plugin's keys starting with `prefix`.
    pub fn kv_keys(&self, prefix: &str) -> Vec<String> {
        let answer = self.command(json!({ "op": "kv.keys", "prefix": prefix }));
        serde_json::from_value(answer["keys"].clone()).unwrap_or_default()
    }

    /// A document: `{"id", "revision", "data", ...}`.
    pub fn document(&self, collection: &str, id: &str) -> Option<Value> {
        let answer =
            self.command(json!({ "op": "documents.get", "collection": collection, "id": id }));
        match &answer["document"] {
            Value::Null => None,
            document => Some(document.clone()),
        }
    }

    /// Every document of a collection (up to 1000), by id.
    pub fn documents(&self, collection: &str) -> Vec<Value> {
        let answer = self.command(json!({ "op": "documents.list", "collection": collection }));
        answer["documents"].as_array().cloned().unwrap_or_default()
    }

    /// Publishes an event (as the source `harness`) and waits until the plugin has handled it.
    pub fn publish(&self, topic: &str, payload: Value) -> Delivery {
        let answer =
            self.command(json!({ "op": "event.publish", "topic": topic, "payload": payload }));
        let mine = answer["deliveries"]
            .as_array()
            .and_then(|all| all.iter().find(|d| d["subscriber"] == self.id.as_str()))
            .cloned();
        Delivery {
            subscribed: mine.is_some(),
            delivered: mine.as_ref().is_some_and(|d| d["delivered"] == true),
            error: mine.and_then(|d| d["error"].as_str().map(str::to_string)),
            logs: logs(&answer),
        }
    }

    /// Runs one tick of a schedule the manifest declares; the plugin's error if it reported one.
    pub fn tick(&self, schedule: &str) -> Result<(), String> {
        let answer = self.command(json!({ "op": "schedule.tick", "name": schedule }));
        match answer["error"].as_str() {
            Some(error) => Err(error.to_string()),
            None => Ok(()),
        }
    }

    /// The plugin's log lines since the last command.
    pub fn logs(&self) -> Vec<String> {
        logs(&self.command(json!({ "op": "logs" })))
    }
}

impl Drop for TestPlugin {
    fn drop(&mut self) {
        let io = self.io.get_mut().unwrap_or_else(|e| e.into_inner());
        // Closing stdin ends the harness, which removes its temporary site; kill it only when
        // it doesn't stop in time.
        io.stdin.take();
        for _ in 0..100 {
            if matches!(io.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = io.child.kill();
        let _ = io.child.wait();
    }
}

fn logs(answer: &Value) -> Vec<String> {
    serde_json::from_value(answer["logs"].clone()).unwrap_or_default()
}

/// What happened to a published event.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The plugin subscribes to the topic.
    pub subscribed: bool,
    delivered: bool,
    error: Option<String>,
    /// The plugin's log lines while it handled the event.
    pub logs: Vec<String>,
}

impl Delivery {
    /// The plugin's handler ran and succeeded.
    pub fn delivered(&self) -> bool {
        self.delivered
    }

    /// The handler's error, when it failed.
    pub fn error(&self) -> Option<String> {
        self.error.clone()
    }
}

/// A request being put together; [`RequestBuilder::send`] sends it.
#[derive(Debug)]
pub struct RequestBuilder<'a> {
    plugin: &'a TestPlugin,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    principal: Value,
}

impl RequestBuilder<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// A JSON body (and its content type).
    pub fn json(mut self, value: Value) -> Self {
        self.body = Some(value.to_string());
        self.header("content-type", "application/json")
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = Some(body.to_string());
        self
    }

    /// Sent by a signed-in user holding these grants: the plugin's own permissions by their
    /// short names (`notes.write`), or any grant pattern (`other.read`, `*`).
    pub fn as_user(mut self, permissions: &[&str]) -> Self {
        self.principal = json!({ "kind": "user", "permissions": permissions });
        self
    }

    /// Sent without credentials (the default).
    pub fn anonymous(mut self) -> Self {
        self.principal = json!({ "kind": "anonymous" });
        self
    }

    pub fn send(self) -> TestResponse {
        let answer = self.plugin.command(json!({
            "op": "request",
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body,
            "as": self.principal,
        }));
        TestResponse {
            status: answer["status"].as_u64().unwrap_or_default() as u16,
            headers: answer["headers"].clone(),
            body: answer["body"].as_str().unwrap_or_default().to_string(),
            logs: logs(&answer),
        }
    }
}

/// The site's answer.
#[derive(Debug, Clone)]
pub struct TestResponse {
    pub status: u16,
    /// Header names (lower-case) to values.
    pub headers: Value,
    pub body: String,
    /// The plugin's log lines while it handled the request.
    pub logs: Vec<String>,
}

impl TestResponse {
    /// The body as JSON; panics with the body when it isn't.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {}", self.body))
    }

    pub fn text(&self) -> &str {
        &self.body
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers[name.to_ascii_lowercase()].as_str()
    }
}
