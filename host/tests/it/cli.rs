//! The `ucms` binary: a plugin author's first journey, and the errors people meet.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use ucms_test_components::MISBEHAVE;

pub const UCMS: &str = env!("CARGO_BIN_EXE_ucms");

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn ucms(data: &Path) -> Command {
    let mut cmd = Command::new(UCMS);
    cmd.arg("--data")
        .arg(data)
        .env_remove("UCMS_CONFIG")
        .env("UCMS_LOG", "warn");
    cmd
}

pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Starts `ucms serve` on a free port; returns the child and its base URL.
pub fn serve(data: &Path) -> (Child, String) {
    let mut child = ucms(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        if let Some(rest) = line.strip_prefix("UCMS serving on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

#[test]
fn help_lists_the_commands() {
    let out = ok(Command::new(UCMS).arg("--help").output().unwrap());
    for command in ["serve", "plugin", "user", "token"] {
        assert!(out.contains(command), "{out}");
    }
    let out = ok(Command::new(UCMS)
        .args(["plugin", "--help"])
        .output()
        .unwrap());
    for command in [
        "list", "install", "remove", "enable", "disable", "new", "build", "dev", "test",
    ] {
        assert!(out.contains(command), "{out}");
    }
}

#[test]
fn installing_a_plugin_with_an_undeclared_import_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = MISBEHAVE.manifest().replace(
        r#"http-client = { hosts = ["127.0.0.1", "localhost", "169.254.169.254", "[::1]"] }"#,
        "",
    );
    let dir = plugin_folder(tmp.path(), &manifest);
    let out = ucms(&tmp.path().join("data"))
        .args(["plugin", "install"])
        .arg(&dir)
        .arg("--yes")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: the component imports ucms:host/http-client@0.2.1, but ucms-plugin.toml does not grant `http-client`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: add `http-client = true`"),
        "{stderr}"
    );
}

/// A plugin folder with the misbehave component and `manifest`.
fn plugin_folder(tmp: &Path, manifest: &str) -> PathBuf {
    let dir = tmp.join("misbehave");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(MISBEHAVE.wasm, dir.join("plugin.wasm")).unwrap();
    std::fs::write(dir.join("ucms-plugin.toml"), manifest).unwrap();
    dir
}

#[test]
fn consent_needs_a_terminal_or_yes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = plugin_folder(tmp.path(), &MISBEHAVE.manifest());
    let out = ucms(&tmp.path().join("data"))
        .args(["plugin", "install"])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pass --yes to approve"), "{stderr}");
}

#[test]
fn a_missing_component_says_how_to_build_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ucms-plugin.toml"), MISBEHAVE.manifest()).unwrap();
    let out = ucms(&tmp.path().join("data"))
        .args(["plugin", "install"])
        .arg(&dir)
        .arg("--yes")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("plugin.wasm") && stderr.contains("ucms plugin build"),
        "{stderr}"
    );
}

/// `ucms registry` keeps its data where `--registry-data` says, whatever the site's `--data` is:
/// a publisher created there can publish to the registry served from there.
#[test]
fn registry_commands_use_their_own_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    let registry = tmp.path().join("registry");
    let token = ok(ucms(&site)
        .args(["registry", "add-publisher", "acme", "--registry-data"])
        .arg(&registry)
        .output()
        .unwrap());
    assert!(token.trim().starts_with("ucmsr_"), "a token: {token}");
    assert!(registry.join("registry.db").exists());
    assert!(registry.join("registry.key").exists());
    assert!(
        !site.join("registry.key").exists() && !site.join("registry.db").exists(),
        "nothing of the registry lands in the site's data directory"
    );
    let out = ucms(&site)
        .args(["registry", "add-token", "nobody", "--registry-data"])
        .arg(&registry)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("there is no publisher 'nobody'") && stderr.contains("add-publisher"),
        "{stderr}"
    );
    let key = ok(ucms(&site)
        .args(["registry", "key", "--registry-data"])
        .arg(&registry)
        .output()
        .unwrap());
    let published = std::fs::read_to_string(registry.join("registry.key.pub")).unwrap();
    assert!(
        published.contains(key.trim()),
        "`registry key` prints the key of that registry: {key} vs {published}"
    );
}
