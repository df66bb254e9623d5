//! Installing from a registry by name, upgrading, rolling back, and surviving a crash at every
//! step: the `ucms` binary against a registry running in the test, then the site reopened.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use http::StatusCode;
use ucms::config::{Config, DataDir};
use ucms::plugins::{ApplyOptions, PluginError, PluginSource};
use ucms_package::archive::{self, Contents};
use ucms_package::keys::SecretKey;
use ucms_package::signature::PackageSignature;
use ucms_registry::{Registry, RegistryConfig};
use ucms_test_components::{HELLO, MAILER, MISBEHAVE};

use crate::support::{TestSite, code, eventually};

const UCMS: &str = env!("CARGO_BIN_EXE_ucms");

/// A registry with hello 0.1.0 and 0.2.0 published, and a site configured to trust it.
struct Fixture {
    dir: tempfile::TempDir,
    registry: Arc<Registry>,
    url: String,
    token: String,
    key: SecretKey,
}

impl Fixture {
    async fn new() -> Self {
        ucms::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(RegistryConfig::new(
            dir.path().join("registry"),
            ucms::wit::SUPPORTED_API.to_vec(),
        ))
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = registry.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let token = registry.add_publisher("ucms").await.unwrap().token;
        let key = SecretKey::generate("ucms");
        registry.add_key("ucms", &key.public()).await.unwrap();
        let fixture = Self {
            dir,
            registry,
            url,
            token,
            key,
        };
        for version in ["0.1.0", "0.2.0"] {
            fixture.publish(&hello(version)).await;
        }
        std::fs::write(
            fixture.config_path(),
            format!(
                "[registry]\nurl = \"{}\"\n[trust]\nregistries = [\"{}\"]\n[runtime]\nmax-instances = 32\n",
                fixture.url,
                fixture.registry.public_key().public_key
            ),
        )
        .unwrap();
        fixture
    }

    async fn publish(&self, archive: &[u8]) {
        let signature = PackageSignature::sign(&self.key, archive);
        self.registry
            .publish("ucms", archive, &signature, None)
            .await
            .unwrap();
    }

    /// Writes `archive` as `hello-0.1.0.ucpkg` with a `.sig` by `key` beside it.
    fn package_file(&self, archive: &[u8], key: &SecretKey) -> PathBuf {
        let package = self.data("hello-0.1.0.ucpkg");
        std::fs::write(&package, archive).unwrap();
        std::fs::write(
            self.data("hello-0.1.0.ucpkg.sig"),
            PackageSignature::sign(key, archive).to_json(),
        )
        .unwrap();
        package
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("ucms.toml")
    }

    fn data(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ucms(&self, data: &Path) -> Command {
        let mut cmd = Command::new(UCMS);
        cmd.arg("--data")
            .arg(data)
            .arg("--config")
            .arg(self.config_path())
            .env("UCMS_LOG", "warn")
            .env_remove("UCMS_CRASH_AT");
        cmd
    }

    fn config(&self) -> Config {
        Config::load(&self.config_path(), true, []).unwrap()
    }

    /// Opens the site in `data` (running recovery) and returns what it serves.
    async fn open(&self, data: &Path) -> ucms::Site {
        ucms::Site::open(self.config(), DataDir::new(data))
            .await
            .unwrap()
    }
}

fn hello(version: &str) -> Vec<u8> {
    let manifest = HELLO
        .manifest()
        .replace(r#"version = "0.1.0""#, &format!(r#"version = "{version}""#));
    archive::pack(&Contents {
        manifest: ucms_manifest::Manifest::parse(&manifest).unwrap(),
        manifest_text: manifest,
        wasm: HELLO.wasm_bytes(),
        readme: None,
        changelog: None,
        assets: Default::default(),
    })
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "command failed ({:?}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn greet(site: &ucms::Site) -> StatusCode {
    let request = http::Request::get("/api/hello/greet?name=Ada")
        .body(axum::body::Body::empty())
        .unwrap();
    tower::ServiceExt::oneshot(site.router(), request)
        .await
        .unwrap()
        .status()
}

fn version_of(site: &ucms::Site, id: &str) -> Option<String> {
    site.plugins.get(id).map(|s| s.manifest.version.to_string())
}

/// No unfinished journal and no staging folder: the site is in a consistent state.
async fn assert_settled(site: &ucms::Site, data: &Path) {
    let open = ucms::plugins::journal::open_journals(&site.db)
        .await
        .unwrap();
    assert!(open.is_empty(), "unfinished operations remain: {open:?}");
    if let Ok(entries) = std::fs::read_dir(data.join("plugins/hello")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(".staging"),
                "a staging folder was left: {name}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_by_name_from_a_registry_and_serves() {
    let f = Fixture::new().await;
    let data = f.data("site");
    let out = ok(f
        .ucms(&data)
        .args(["plugin", "install", "hello@^0.1", "--yes"])
        .output()
        .unwrap());
    assert!(out.contains("install hello 0.1.0 (by ucms)"), "{out}");
    assert!(
        out.contains("asks to kv: store data in its own key-value space"),
        "the consent lists capabilities: {out}"
    );
    assert!(out.contains("verified: signed by ucms"), "{out}");

    let site = f.open(&data).await;
    assert_eq!(greet(&site).await, StatusCode::OK);
    let slot = site.plugins.get("hello").unwrap();
    assert_eq!(slot.source, format!("registry+{}", f.url));
    let lock = std::fs::read_to_string(data.join("ucms.lock")).unwrap();
    assert!(
        lock.contains("id = \"hello\"") && lock.contains("version = \"0.1.0\""),
        "{lock}"
    );
    assert!(
        lock.contains(&ucms_package::signature::digest(&hello("0.1.0"))),
        "the lockfile pins the package digest: {lock}"
    );
}

/// `ucms.lock` copied into a fresh site reproduces the install, byte for byte; a lockfile whose
/// digest the registry doesn't match (a registry that changed a published version) installs
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_lockfile_reproduces_the_install_and_checks_digests() {
    let f = Fixture::new().await;
    let first = f.data("first");
    ok(f.ucms(&first)
        .args(["plugin", "install", "hello@=0.1.0", "--yes"])
        .output()
        .unwrap());
    let lock = std::fs::read_to_string(first.join("ucms.lock")).unwrap();

    let second = f.data("second");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(second.join("ucms.lock"), &lock).unwrap();
    // Opening the fresh site keeps the copied lockfile.
    f.open(&second).await.db.close().await;
    assert_eq!(
        std::fs::read_to_string(second.join("ucms.lock")).unwrap(),
        lock
    );
    let out = ok(f
        .ucms(&second)
        .args(["plugin", "install", "--locked", "--yes"])
        .output()
        .unwrap());
    assert!(out.contains("install hello 0.1.0"), "{out}");
    assert_eq!(
        std::fs::read_to_string(second.join("ucms.lock")).unwrap(),
        lock,
        "the same versions, sources and digests"
    );
    let site = f.open(&second).await;
    assert_eq!(greet(&site).await, StatusCode::OK);
    site.db.close().await;
    let out = ok(f
        .ucms(&second)
        .args(["plugin", "install", "--locked", "--yes"])
        .output()
        .unwrap());
    assert!(out.contains("nothing to do"), "{out}");

    let third = f.data("third");
    std::fs::create_dir_all(&third).unwrap();
    let real = ucms_package::signature::digest(&hello("0.1.0"));
    let forged = format!("sha256:{}", "0".repeat(64));
    std::fs::write(third.join("ucms.lock"), lock.replace(&real, &forged)).unwrap();
    let out = f
        .ucms(&third)
        .args(["plugin", "install", "--locked", "--yes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "hello 0.1.0: the registry offers a package with digest {real}, but ucms.lock recorded {forged}"
        )),
        "{stderr}"
    );
    let site = f.open(&third).await;
    assert_eq!(version_of(&site, "hello"), None, "nothing was installed");
    site.db.close().await;
}

/// A package file signed by a publisher key the site's registry endorses installs from disk: the
/// site trusts the registry, and so the keys it endorses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_file_signed_by_an_endorsed_key_installs() {
    let f = Fixture::new().await;
    let bytes = hello("0.1.0");
    let package = f.package_file(&bytes, &f.key);
    let data = f.data("site");
    ok(f.ucms(&data)
        .args(["plugin", "install"])
        .arg(&package)
        .arg("--yes")
        .output()
        .unwrap());
    let site = f.open(&data).await;
    assert_eq!(version_of(&site, "hello").as_deref(), Some("0.1.0"));
    assert_eq!(greet(&site).await, StatusCode::OK);
    site.db.close().await;

    // A key the registry doesn't know is refused, naming it.
    let stranger = SecretKey::generate("ucms");
    f.package_file(&bytes, &stranger);
    let out = f
        .ucms(&f.data("other"))
        .args(["plugin", "install"])
        .arg(&package)
        .arg("--yes")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&stranger.public().id().to_string()),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_package_is_refused_naming_the_digest() {
    let f = Fixture::new().await;
    let bytes = hello("0.1.0");
    let package = f.package_file(&bytes, &f.key);
    let mut tampered = bytes.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    std::fs::write(&package, &tampered).unwrap();
    let out = f
        .ucms(&f.data("site"))
        .args(["plugin", "install"])
        .arg(&package)
        .arg("--yes")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the package's digest is sha256:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the archive was changed after it was signed"),
        "{stderr}"
    );
    assert!(!f.data("site/plugins/hello").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_rollback_and_yanks() {
    let f = Fixture::new().await;
    let data = f.data("site");
    ok(f.ucms(&data)
        .args(["plugin", "install", "hello@=0.1.0", "--yes"])
        .output()
        .unwrap());
    let out = ok(f
        .ucms(&data)
        .args(["plugin", "upgrade", "hello", "--yes"])
        .output()
        .unwrap());
    assert!(out.contains("upgrade hello 0.1.0 → 0.2.0"), "{out}");
    assert!(out.contains("(the same capabilities as before)"), "{out}");
    {
        let site = f.open(&data).await;
        assert_eq!(version_of(&site, "hello").as_deref(), Some("0.2.0"));
        assert_eq!(
            site.plugins
                .get("hello")
                .unwrap()
                .previous_version
                .as_deref(),
            Some("0.1.0")
        );
        site.db.close().await;
    }
    let out = ok(f
        .ucms(&data)
        .args(["plugin", "rollback", "hello"])
        .output()
        .unwrap());
    assert!(out.contains("rolled hello back to 0.1.0"), "{out}");
    let lock = std::fs::read_to_string(data.join("ucms.lock")).unwrap();
    assert!(
        lock.contains(&ucms_package::signature::digest(&hello("0.1.0"))),
        "after a rollback the lockfile pins the package it came from: {lock}"
    );
    let site = f.open(&data).await;
    assert_eq!(version_of(&site, "hello").as_deref(), Some("0.1.0"));
    assert_eq!(greet(&site).await, StatusCode::OK);
    site.db.close().await;

    // A yanked version is not chosen for new installs.
    let client = ucms_registry::client::RegistryClient::new(
        &f.url,
        &f.data("publisher-cache"),
        Default::default(),
    )
    .unwrap();
    client
        .set_yanked(&f.token, "hello", "0.2.0", true)
        .await
        .unwrap();
    let fresh = f.data("fresh");
    ok(f.ucms(&fresh)
        .args(["plugin", "install", "hello", "--yes"])
        .output()
        .unwrap());
    let site = f.open(&fresh).await;
    assert_eq!(version_of(&site, "hello").as_deref(), Some("0.1.0"));
    let out = f
        .ucms(&f.data("other"))
        .args(["plugin", "install", "hello@^0.2", "--yes"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("hello 0.2.0 is yanked"),
        "{stderr}"
    );
}

const STEPS: [&str; 7] = [
    "started",
    "downloaded",
    "verified",
    "staged",
    "compiled",
    "hook-ran",
    "switched",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_of_an_install_leaves_a_consistent_site() {
    let f = Fixture::new().await;
    for step in STEPS {
        let data = f.data(&format!("install-{step}"));
        let out = f
            .ucms(&data)
            .args(["plugin", "install", "hello@=0.1.0", "--yes"])
            .env("UCMS_CRASH_AT", step)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "killed at {step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let site = f.open(&data).await;
        assert_settled(&site, &data).await;
        if step == "switched" {
            assert_eq!(
                version_of(&site, "hello").as_deref(),
                Some("0.1.0"),
                "{step}: the switch committed"
            );
            assert_eq!(greet(&site).await, StatusCode::OK, "{step}");
        } else {
            assert_eq!(
                version_of(&site, "hello"),
                None,
                "{step}: nothing was installed"
            );
            assert!(
                !data.join("plugins/hello/0.1.0").exists(),
                "{step}: no files were left"
            );
            assert_eq!(greet(&site).await, StatusCode::NOT_FOUND, "{step}");
        }
        site.db.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_of_an_upgrade_keeps_a_working_version() {
    let f = Fixture::new().await;
    for step in STEPS {
        let data = f.data(&format!("upgrade-{step}"));
        ok(f.ucms(&data)
            .args(["plugin", "install", "hello@=0.1.0", "--yes"])
            .output()
            .unwrap());
        let out = f
            .ucms(&data)
            .args(["plugin", "upgrade", "hello", "--yes"])
            .env("UCMS_CRASH_AT", step)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "killed at {step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let site = f.open(&data).await;
        assert_settled(&site, &data).await;
        let expected = if step == "switched" { "0.2.0" } else { "0.1.0" };
        assert_eq!(
            version_of(&site, "hello").as_deref(),
            Some(expected),
            "killed at {step}"
        );
        assert_eq!(
            greet(&site).await,
            StatusCode::OK,
            "killed at {step}: a version serves"
        );
        assert!(
            data.join("plugins/hello")
                .join(expected)
                .join("plugin.wasm")
                .exists()
        );
        site.db.close().await;
    }
}

/// The upgrade hook half-migrates, then refuses: the old version keeps serving and its data is
/// exactly as the install hook left it. On SQLite and on PostgreSQL.
#[tokio::test]
async fn a_failing_upgrade_hook_leaves_the_old_version_serving() {
    for backend in crate::support::BACKENDS {
        let Some(t) = TestSite::open(backend, crate::support::test_config()).await else {
            continue;
        };
        t.install(MISBEHAVE).await;
        let kv = &t.site.services.kv;
        assert_eq!(
            kv.get("misbehave", "schema").await.unwrap().as_deref(),
            Some(&b"1"[..]),
            "the install hook's writes are stored at the switch"
        );
        let newer = MISBEHAVE
            .manifest()
            .replace(r#"version = "0.1.0""#, r#"version = "0.2.0""#);
        let err = t.install_with(MISBEHAVE, &newer).await.unwrap_err();
        assert!(
            matches!(
                err,
                PluginError::HookRefused {
                    hook: "upgrade",
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("refusing to upgrade from 0.1.0"),
            "{err}"
        );
        assert_eq!(version_of(&t.site, "misbehave").as_deref(), Some("0.1.0"));
        assert_eq!(
            kv.get("misbehave", "schema").await.unwrap().as_deref(),
            Some(&b"1"[..]),
            "the refused upgrade's writes never reach the data"
        );
        assert_eq!(kv.get("misbehave", "migrated").await.unwrap(), None);
        let (status, _) = t.get("/api/misbehave/ok").await;
        assert_eq!(status, StatusCode::OK);
        assert!(!t.site.data.plugin_dir("misbehave", "0.2.0").exists());
        let open = ucms::plugins::journal::open_journals(&t.site.db)
            .await
            .unwrap();
        assert!(open.is_empty());
        t.close().await;
    }
}

/// What a hook publishes goes out with the switch: the install hook's event reaches its
/// subscriber; the refused upgrade's event is never published. On SQLite and on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_hooks_wait_for_the_switch() {
    for backend in crate::support::BACKENDS {
        let Some(t) = TestSite::open(backend, crate::support::test_config()).await else {
            continue;
        };
        let listening = MAILER.manifest().replace(
            r#"topic = "orders.placed""#,
            "topic = \"misbehave.installed\"\n\n[[subscriptions]]\ntopic = \"misbehave.upgraded\"",
        );
        t.install_with(MAILER, &listening).await.unwrap();
        t.install(MISBEHAVE).await;
        let published = r#"ucms_events_published_total{plugin="misbehave"} 1"#;
        assert!(t.site.services.metrics.render().contains(published));
        // The event was stored with the switch, so the subscriber gets it.
        eventually(10, || async {
            t.site
                .services
                .metrics
                .render()
                .contains(r#"ucms_event_deliveries_total{plugin="mailer","#)
                .then_some(())
        })
        .await;

        let newer = MISBEHAVE
            .manifest()
            .replace(r#"version = "0.1.0""#, r#"version = "0.2.0""#);
        t.install_with(MISBEHAVE, &newer).await.unwrap_err();
        let metrics = t.site.services.metrics.render();
        assert!(
            metrics.contains(published),
            "the refused upgrade published nothing: {metrics}"
        );
        let letters = t
            .site
            .services
            .events
            .outbox
            .dead_letters(10)
            .await
            .unwrap();
        assert!(letters.iter().all(|l| l.topic != "misbehave.upgraded"));
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_installs_racing_for_one_plugin_let_one_through() {
    let t = TestSite::sqlite().await;
    let source = || PluginSource::new(HELLO.manifest(), HELLO.wasm_bytes(), HELLO.dir).unwrap();
    let (a, b) = tokio::join!(
        t.site.plugins.apply(source(), ApplyOptions::default()),
        t.site.plugins.apply(source(), ApplyOptions::default())
    );
    let outcomes = [a, b];
    assert_eq!(
        outcomes.iter().filter(|r| r.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    let err = outcomes.into_iter().find_map(Result::err).unwrap();
    assert!(
        matches!(err.code(), "operation_in_progress" | "already_installed"),
        "{err}"
    );
    assert_eq!(t.get("/api/hello/greet").await.0, StatusCode::OK);
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_picks_up_a_cli_install() {
    let f = Fixture::new().await;
    let data = f.data("live");
    let site = f.open(&data).await;
    let stop = tokio_util::sync::CancellationToken::new();
    site.start_background(stop.clone());
    assert_eq!(greet(&site).await, StatusCode::NOT_FOUND);
    ok(f.ucms(&data)
        .args(["plugin", "install", "hello@=0.1.0", "--yes"])
        .output()
        .unwrap());
    eventually(10, || async {
        (greet(&site).await == StatusCode::OK).then_some(())
    })
    .await;
    ok(f.ucms(&data)
        .args(["plugin", "disable", "hello"])
        .output()
        .unwrap());
    eventually(10, || async {
        let request = http::Request::get("/api/hello/greet")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = tower::ServiceExt::oneshot(site.router(), request)
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (code(&body) == "plugin_disabled").then_some(())
    })
    .await;
    stop.cancel();
}

/// The admin UI's way in: a plan to look at, then an explicit approval; then rollback, disable,
/// enable and remove over HTTP. On SQLite and on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_installs_only_an_approved_plan() {
    let f = Fixture::new().await;
    for backend in crate::support::BACKENDS {
        let Some(t) = TestSite::open(backend, f.config()).await else {
            continue;
        };
        let admin = t.admin_token().await;
        let editor = t
            .token("reader@example.com", &["admin"], &["ucms.plugins.read"])
            .await;
        let post = |uri: &'static str, token: String, body: serde_json::Value| {
            let t = &t;
            async move {
                t.request(http::Method::POST, uri, Some(&token), Some(body))
                    .await
            }
        };

        let (status, body) = post(
            "/api/ucms/plugins/plan",
            editor.clone(),
            serde_json::json!({"install": ["hello"]}),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(code(&body), "forbidden");

        let (status, body) = post(
            "/api/ucms/plugins/plan",
            admin.clone(),
            serde_json::json!({"install": ["hello@^0.1"]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let change = &body["changes"][0];
        assert_eq!(change["action"], "install");
        assert_eq!(change["to"], "0.1.0");
        assert!(
            change["capabilities"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c.as_str().unwrap().starts_with("kv:")),
            "the plan shows what the plugin asks for: {change}"
        );
        let plan_id = body["plan_id"].as_str().unwrap().to_string();
        assert_eq!(
            version_of(&t.site, "hello"),
            None,
            "planning changes nothing"
        );

        let (status, body) = post(
            "/api/ucms/plugins/apply",
            admin.clone(),
            serde_json::json!({"plan_id": plan_id}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("\"approve\": true")
        );
        let (status, body) = post(
            "/api/ucms/plugins/apply",
            editor.clone(),
            serde_json::json!({"plan_id": plan_id, "approve": true}),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(version_of(&t.site, "hello"), None);

        let (status, body) = post(
            "/api/ucms/plugins/apply",
            admin.clone(),
            serde_json::json!({"plan_id": plan_id, "approve": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["applied"][0]["version"], "0.1.0", "{body}");
        assert_eq!(greet(&t.site).await, StatusCode::OK);
        // A plan is used once.
        let (status, _) = post(
            "/api/ucms/plugins/apply",
            admin.clone(),
            serde_json::json!({"plan_id": plan_id, "approve": true}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Upgrade, then roll back.
        let (status, body) = post(
            "/api/ucms/plugins/plan",
            admin.clone(),
            serde_json::json!({"upgrade": ["hello"]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["changes"][0]["action"], "upgrade");
        assert_eq!(body["changes"][0]["from"], "0.1.0");
        assert_eq!(body["changes"][0]["to"], "0.2.0");
        assert_eq!(
            body["changes"][0]["added_capabilities"],
            serde_json::json!([])
        );
        let plan_id = body["plan_id"].as_str().unwrap().to_string();
        let (status, body) = post(
            "/api/ucms/plugins/apply",
            admin.clone(),
            serde_json::json!({"plan_id": plan_id, "approve": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(version_of(&t.site, "hello").as_deref(), Some("0.2.0"));
        let (status, body) = post(
            "/api/ucms/plugins/hello/rollback",
            admin.clone(),
            serde_json::json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(version_of(&t.site, "hello").as_deref(), Some("0.1.0"));

        // Disable and enable without uninstalling.
        let (status, body) = post(
            "/api/ucms/plugins/hello/disable",
            admin.clone(),
            serde_json::json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(greet(&t.site).await, StatusCode::SERVICE_UNAVAILABLE);
        let (status, body) = post(
            "/api/ucms/plugins/hello/enable",
            admin.clone(),
            serde_json::json!({}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(greet(&t.site).await, StatusCode::OK);

        let (status, body) = t
            .request(
                http::Method::DELETE,
                "/api/ucms/plugins/hello?purge=true",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(version_of(&t.site, "hello"), None);
        assert_eq!(greet(&t.site).await, StatusCode::NOT_FOUND);
        t.close().await;
    }
}
