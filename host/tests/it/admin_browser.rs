//! The admin UI in a real browser: Debian's Chromium driven by `playwright-core` (a node script,
//! `web/admin/tests/browser.mjs`) against a real site on a loopback socket, with a registry
//! running in the test that offers signed `hello` 0.1.0 and 0.2.0 (the newer one asks for one
//! more capability, and both add an admin page). Screenshots go to `target/test-output/admin/`.
//!
//! Without Chromium, the admin's node_modules or the built admin assets the test says so and
//! skips; under `CI=true` it fails instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{Method, StatusCode};
use ucms_package::archive::{self, Contents};
use ucms_package::keys::SecretKey;
use ucms_package::signature::PackageSignature;
use ucms_registry::{Registry, RegistryConfig};
use ucms_test_components::HELLO;

use crate::support::{Backend, TestSite, test_config};

const CHROMIUM: &str = "/usr/bin/chromium";
const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "a long enough password";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ is in the repository")
        .to_path_buf()
}

/// Why the browser suite can't run here, if it can't.
fn missing() -> Option<String> {
    let web = repo().join("web/admin");
    if !Path::new(CHROMIUM).exists() {
        return Some(format!(
            "{CHROMIUM} is missing (apt-get install -y chromium)"
        ));
    }
    if !web.join("node_modules/playwright-core").is_dir() {
        return Some(
            "web/admin/node_modules is missing (cargo xtask web, or npm ci in web/admin)".into(),
        );
    }
    if !ucms::server::admin_built() {
        return Some(
            "this ucms was built without the admin UI (run cargo xtask web, then build again)"
                .into(),
        );
    }
    None
}

/// The page the test plugin adds to the admin: it calls its API through the admin's bridge
/// with its scoped token, and reports what it can see of the admin's cookie and window.
const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hello page</title></head>
<body>
<h1>Hello from a plugin page</h1>
<p>Greeting: <output id="greeting">…</output></p>
<p>Counter: <output id="counter">…</output></p>
<p>Cookie: <output id="cookie">…</output></p>
<p>Parent: <output id="parent">…</output></p>
<script type="module">
  let token = null;
  const waiting = new Map();
  let next = 0;
  function call(method, path, body) {
    const id = ++next;
    parent.postMessage({ type: "ucms:fetch", id, method, path, body }, "*");
    return new Promise((resolve) => waiting.set(id, resolve));
  }
  try { document.getElementById("cookie").textContent = "readable: " + JSON.stringify(document.cookie); }
  catch (e) { document.getElementById("cookie").textContent = "blocked (" + e.name + ")"; }
  try { document.getElementById("parent").textContent = "readable: " + parent.document.title; }
  catch (e) { document.getElementById("parent").textContent = "blocked (" + e.name + ")"; }
  addEventListener("message", async (event) => {
    const m = event.data;
    if (m.type === "ucms:response") { waiting.get(m.id)?.(m); waiting.delete(m.id); return; }
    if (m.type !== "ucms:init" || token) return;
    token = m.token;
    const greet = await call("GET", "/api/hello/greet?name=Frame");
    document.getElementById("greeting").textContent = greet.body.greeting ?? JSON.stringify(greet.body);
    const counter = await call("POST", "/api/hello/counter", {});
    document.getElementById("counter").textContent = counter.status + " " + JSON.stringify(counter.body);
    const outside = await call("GET", "/api/ucms/users");
    document.body.dataset.outside = String(outside.status);
  });
  parent.postMessage({ type: "ucms:ready" }, "*");
</script>
</body></html>
"#;

fn hello(version: &str) -> Vec<u8> {
    let mut manifest = HELLO
        .manifest()
        .replace(r#"version = "0.1.0""#, &format!(r#"version = "{version}""#));
    if version != "0.1.0" {
        // The upgrade asks for one more capability, which the consent screen must show.
        manifest = manifest.replace("kv = {}", "kv = {}\ncache = {}");
    }
    manifest.push_str(
        "\n[[admin-pages]]\npath = \"/hello\"\ntitle = \"Hello page\"\nentry = \"assets/admin/index.html\"\n",
    );
    let mut assets = std::collections::BTreeMap::new();
    assets.insert("admin/index.html".to_string(), PAGE.as_bytes().to_vec());
    archive::pack(&Contents {
        manifest: ucms_manifest::Manifest::parse(&manifest).unwrap(),
        manifest_text: manifest,
        wasm: HELLO.wasm_bytes(),
        readme: Some(format!("# hello {version}\n")),
        changelog: None,
        assets,
    })
}

/// A registry with hello 0.1.0 and 0.2.0, and a site that trusts it with an admin account.
async fn site_with_registry() -> (TestSite, Arc<Registry>, tempfile::TempDir) {
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
    registry.add_publisher("ucms").await.unwrap();
    let key = SecretKey::generate("ucms");
    registry.add_key("ucms", &key.public()).await.unwrap();
    for version in ["0.1.0", "0.2.0"] {
        let archive = hello(version);
        let signature = PackageSignature::sign(&key, &archive);
        registry
            .publish("ucms", &archive, &signature, None)
            .await
            .unwrap();
    }
    let mut config = test_config();
    config.registry.url = Some(url);
    config.trust.registries = vec![registry.public_key().public_key];
    let site = TestSite::open(Backend::Sqlite, config)
        .await
        .expect("SQLite always works");
    site.site
        .services
        .identity
        .create_user(EMAIL, PASSWORD, &["admin".to_string()])
        .await
        .unwrap();
    (site, registry, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_ui_in_chromium() {
    if let Some(why) = missing() {
        if ci() {
            panic!("the admin browser tests can't run under CI=true: {why}");
        }
        eprintln!("SKIPPED the admin browser tests: {why}");
        return;
    }
    let (t, _registry, _dir) = site_with_registry().await;
    // The content plugin, for the type builder and the entry editor.
    t.install(ucms_test_components::CONTENT).await;
    // Anonymous visitors read published content (the public delivery API, with its caching).
    let token = t.admin_token().await;
    let (status, body) = t
        .request(
            Method::PUT,
            "/api/ucms/roles/public",
            Some(&token),
            Some(serde_json::json!({ "description": "anonymous delivery", "permissions": ["content.read"] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let addr = t.serve().await;
    let shots = repo().join("target/test-output/admin");
    std::fs::create_dir_all(&shots).unwrap();
    let script = repo().join("web/admin/tests/browser.mjs");
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .current_dir(repo().join("web/admin"))
        .env("UCMS_URL", format!("http://{addr}"))
        .env("UCMS_EMAIL", EMAIL)
        .env("UCMS_PASSWORD", PASSWORD)
        .env("UCMS_SCREENSHOTS", &shots)
        .env("UCMS_CONTENT", "1")
        .env("CHROMIUM", CHROMIUM)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}");
    assert!(
        output.status.success(),
        "the browser script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // What the browser did, as the server sees it: installed from the registry, upgraded,
    // rolled back to 0.1.0, then disabled.
    let slot = t.site.plugins.get("hello").expect("hello was installed");
    assert_eq!(slot.manifest.version.to_string(), "0.1.0");
    assert_eq!(slot.state.label(), "disabled");
    assert_eq!(slot.previous_version.as_deref(), Some("0.2.0"));
    let (status, audit) = t
        .request(Method::GET, "/api/ucms/audit?limit=200", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"auth.sign-in"), "{actions:?}");
    assert!(actions.contains(&"plugin.settings"), "{actions:?}");
    for shot in [
        "sign-in",
        "dashboard",
        "consent-install",
        "consent-upgrade",
        "plugin-page",
        "plugin-settings-and-log",
    ] {
        assert!(
            shots.join(format!("{shot}.png")).is_file(),
            "no screenshot {shot}.png"
        );
    }
    t.close().await;
}

/// The host side of the admin, through the router: the SPA and its fallback, caching and
/// policy headers, plugin page assets, and the scoped page token.
#[tokio::test]
async fn the_admin_is_served_with_a_strict_policy_and_plugin_pages_get_scoped_tokens() {
    let (t, _registry, _dir) = site_with_registry().await;
    // /admin redirects; any page path answers the app (or the not-built page), with the policy.
    let (status, headers, _) = t.raw(Method::GET, "/admin", None, None).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers["location"], "/admin/");
    for path in [
        "/admin/",
        "/admin/plugins/hello",
        "/admin/content/article/123",
    ] {
        let (status, headers, body) = t.raw(Method::GET, path, None, None).await;
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let body = String::from_utf8_lossy(&body);
        if ucms::server::admin_built() {
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(body.contains("<div id=\"app\">"), "{body}");
            assert_eq!(headers["cache-control"], "no-cache");
        } else {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(body.contains("cargo xtask web"), "{body}");
        }
    }
    if ucms::server::admin_built() {
        // Hashed assets are cached for a year with their type; missing ones are 404, not the app.
        let index = String::from_utf8(t.raw(Method::GET, "/admin/", None, None).await.2).unwrap();
        let script = index
            .split("src=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("index.html loads a script");
        let (status, headers, _) = t.raw(Method::GET, script, None, None).await;
        assert_eq!(status, StatusCode::OK, "{script}");
        assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
        assert!(
            headers["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        let (status, _, _) = t
            .raw(Method::GET, "/admin/assets/gone-1234.js", None, None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    // Install hello 0.1.0 (with its page) the way the admin does: plan, then approve.
    let admin = t.admin_token().await;
    let (status, plan) = t
        .request(
            Method::POST,
            "/api/ucms/plugins/plan",
            Some(&admin),
            Some(serde_json::json!({ "install": ["hello@=0.1.0"] })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(
        plan["changes"][0]["capabilities"][0],
        "kv: store data in its own key-value space"
    );
    let (status, applied) = t
        .request(
            Method::POST,
            "/api/ucms/plugins/apply",
            Some(&admin),
            Some(serde_json::json!({ "plan_id": plan["plan_id"], "approve": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{applied}");

    // The marketplace through the host: search marks what is installed; a package's versions.
    let (status, found) = t
        .request(
            Method::GET,
            "/api/ucms/marketplace/search?q=greets",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["packages"][0]["latest"]["id"], "hello");
    assert_eq!(found["packages"][0]["installed"], "0.1.0");
    let (status, package) = t
        .request(
            Method::GET,
            "/api/ucms/marketplace/packages/hello",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{package}");
    assert_eq!(package["versions"][0]["version"], "0.2.0");
    let (status, missing) = t
        .request(
            Method::GET,
            "/api/ucms/marketplace/packages/nope",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(crate::support::code(&missing), "package_not_found");

    // Its metrics, as JSON for the plugin page.
    let (status, _) = t.get("/api/hello/greet?name=Ada").await;
    assert_eq!(status, StatusCode::OK);
    let (status, metrics) = t
        .request(
            Method::GET,
            "/api/ucms/plugins/hello/metrics",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{metrics}");
    let invocations = metrics["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "ucms_plugin_invocations_total" && s["labels"]["kind"] == "http")
        .unwrap_or_else(|| panic!("no count of HTTP invocations in {metrics}"));
    assert!(invocations["value"].as_f64().unwrap() >= 1.0, "{metrics}");

    // Its settings schema and values (hello has none).
    let (status, settings) = t
        .request(
            Method::GET,
            "/api/ucms/plugins/hello/settings",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["schema"], serde_json::json!([]));
    assert_eq!(settings["editable"], true, "an admin may save settings");

    // The page is listed and its asset served sandboxed; paths can't leave assets/.
    let (status, pages) = t
        .request(Method::GET, "/api/ucms/admin/pages", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        pages["pages"][0]["url"],
        "/admin/ext/hello/admin/index.html"
    );
    let (status, headers, body) = t
        .raw(Method::GET, "/admin/ext/hello/admin/index.html", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("Hello from a plugin page"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("sandbox allow-scripts;"), "{csp}");
    assert!(csp.contains("connect-src 'none'"), "{csp}");
    let (status, _, _) = t
        .raw(
            Method::GET,
            "/admin/ext/hello/..%2Fucms-plugin.toml",
            None,
            None,
        )
        .await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
        "{status}"
    );
    let (status, _, _) = t
        .raw(
            Method::GET,
            "/admin/ext/hello/admin/missing.html",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A page token: only for a signed-in user's session, scoped to the plugin, short-lived.
    let (status, refused) = t
        .request(
            Method::POST,
            "/api/ucms/plugins/hello/page-token",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an API token can't mint one: {refused}"
    );
    let (status, _, body) = t
        .send(
            http::Request::post("/api/ucms/auth/login")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    serde_json::json!({ "email": EMAIL, "password": PASSWORD }).to_string(),
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let login: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let session = login["token"].as_str().unwrap();
    let (status, minted) = t
        .request(
            Method::POST,
            "/api/ucms/plugins/hello/page-token",
            Some(session),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    assert_eq!(minted["scopes"][0], "hello.*");
    assert_eq!(minted["expires_in_seconds"], 900);
    let scoped = minted["token"].as_str().unwrap();
    // It works on its plugin's routes and nowhere else, though its user is an administrator.
    let (status, _) = t
        .request(Method::POST, "/api/hello/counter", Some(scoped), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t
        .request(Method::GET, "/api/ucms/users", Some(scoped), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = t
        .request(Method::GET, "/api/ucms/plugins", Some(scoped), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A disabled plugin's pages are gone, and no token is minted for it.
    let (status, _) = t
        .request(
            Method::POST,
            "/api/ucms/plugins/hello/disable",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = t
        .raw(Method::GET, "/admin/ext/hello/admin/index.html", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t
        .request(
            Method::POST,
            "/api/ucms/plugins/hello/page-token",
            Some(session),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.close().await;
}
