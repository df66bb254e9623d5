//! A plugin author's first journey in each language: `ucms plugin new`, then `ucms plugin test`
//! (which builds the component and runs the test it scaffolded against a real host), then an
//! install into a site and a request to its route over a socket. Also every Rust template, and
//! the errors a TypeScript author meets first.
//!
//! The TypeScript and Python runs need Node.js with `sdk/ts/node_modules` (`npm ci` there) and
//! componentize-py; `cargo xtask test` installs both. Without them the runs are skipped loudly,
//! and under `CI=true` they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::cli::{UCMS, ok, serve, ucms, workspace};

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether `lang`'s toolchain is here; when not: skipped loudly, or a failure under CI=true.
pub fn toolchain(lang: &str) -> bool {
    let missing = match lang {
        "ts" => {
            let node = Command::new("node")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            let tools = workspace()
                .join("sdk/ts/node_modules/@bytecodealliance/componentize-js")
                .is_dir();
            (!node || !tools).then(|| {
                "Node.js and sdk/ts/node_modules are needed (`cd sdk/ts && npm ci`; cargo xtask test does it)".to_string()
            })
        }
        "python" => {
            let found = Command::new("componentize-py")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            (!found).then(|| {
                "componentize-py is needed (`python3 -m pip install componentize-py==0.25.1`; cargo xtask test does it)".to_string()
            })
        }
        _ => None,
    };
    match missing {
        None => true,
        Some(why) if ci() => panic!("the {lang} plugin toolchain is missing under CI=true: {why}"),
        Some(why) => {
            eprintln!("SKIPPED ({lang} plugins): {why}");
            false
        }
    }
}

/// `ucms` for an authoring step: Rust builds share one target folder, so the scaffolds'
/// dependencies compile once.
fn author(data: &Path) -> Command {
    let mut cmd = ucms(data);
    cmd.env("CARGO_TARGET_DIR", workspace().join("target/scaffold"));
    cmd
}

fn scaffold(tmp: &Path, name: &str, lang: &str, template: &str) -> PathBuf {
    let dir = tmp.join(name);
    let out = author(&tmp.join("data"))
        .args([
            "plugin",
            "new",
            name,
            "--lang",
            lang,
            "--template",
            template,
            "--dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    ok(out);
    assert!(dir.join("ucms-plugin.toml").is_file());
    if lang == "ts" {
        // Links @ucms/sdk from the checkout: nothing is downloaded.
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefer-offline"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "npm install: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

/// `ucms plugin test DIR`: its output, which must show the generated tests passing.
fn plugin_test(data: &Path, dir: &Path) -> Output {
    let out = author(data)
        .args(["plugin", "test"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ucms plugin test failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

async fn journey(lang: &str) {
    if !toolchain(lang) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let name = format!("my-{lang}-plugin");
    let dir = scaffold(tmp.path(), &name, lang, "default");

    let out = plugin_test(&data, &dir);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Each runner's own account of the two generated tests passing.
    let passed = match lang {
        "rust" => all.contains("test result: ok. 2 passed"),
        "ts" => all.contains("# pass 2") && all.contains("# fail 0"),
        _ => all.contains("Ran 2 tests") && all.contains("\nOK"),
    };
    assert!(passed, "the generated tests ran and passed:\n{all}");
    assert!(dir.join("plugin.wasm").is_file());

    let installed = ucms(&data)
        .args(["plugin", "install"])
        .arg(&dir)
        .arg("--yes")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&installed.stderr).into_owned();
    ok(installed);
    assert!(
        stderr.contains("kv: store data in its own key-value space"),
        "the consent lists capabilities: {stderr}"
    );

    let (mut server, url) = serve(&data);
    ucms::install_crypto_provider();
    let hello: serde_json::Value = reqwest::get(format!("{url}/api/{name}/hello?name=Ada"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hello["message"], format!("Hello from {name}, Ada!"));
    let refused = reqwest::Client::new()
        .post(format!("{url}/api/{name}/notes"))
        .json(&serde_json::json!({ "text": "first" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_rust_plugin_passes_its_tests_installs_and_serves() {
    journey("rust").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_typescript_plugin_passes_its_tests_installs_and_serves() {
    journey("ts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_python_plugin_passes_its_tests_installs_and_serves() {
    journey("python").await;
}

/// Each Rust template builds and passes the tests it comes with: a route test, a permission
/// test, an event test, a schedule, outbound HTTP to a local receiver, an admin page.
#[test]
fn every_rust_template_passes_its_own_tests() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for template in [
        "rest-resource",
        "event-subscriber",
        "webhook-relay",
        "admin-page",
    ] {
        let dir = scaffold(tmp.path(), &format!("t-{template}"), "rust", template);
        let out = plugin_test(&data, &dir);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("test result: ok.") && !stdout.contains(" 0 passed"),
            "{template}: {stdout}"
        );
    }
}

/// The first mistakes of a TypeScript author: using a capability the manifest doesn't grant,
/// and a type error — each stopped by `ucms plugin build` with what to do.
#[test]
fn typescript_build_errors_say_what_to_fix() {
    if !toolchain("ts") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = scaffold(tmp.path(), "ts-errors", "ts", "default");
    let manifest = std::fs::read_to_string(dir.join("ucms-plugin.toml")).unwrap();
    std::fs::write(
        dir.join("ucms-plugin.toml"),
        manifest.replace("kv = true\n", ""),
    )
    .unwrap();
    let out = Command::new(UCMS)
        .args(["plugin", "build"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the plugin uses ucms:host/kv (through the SDK's `kv` module), but ucms-plugin.toml does not grant `kv`")
            && stderr.contains("hint: add `kv = true`"),
        "{stderr}"
    );

    std::fs::write(dir.join("ucms-plugin.toml"), &manifest).unwrap();
    let source = std::fs::read_to_string(dir.join("src/index.ts")).unwrap();
    std::fs::write(
        dir.join("src/index.ts"),
        source.replace("kv.get<Note[]>(\"notes\")", "kv.get<Note[]>(42)"),
    )
    .unwrap();
    let out = Command::new(UCMS)
        .args(["plugin", "build"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("error TS2345") && all.contains("the type check (tsc) failed"),
        "{all}"
    );
}
