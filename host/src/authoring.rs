//! Tools for plugin authors: `ucms plugin new` and `ucms plugin build`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use ucms_manifest::{MANIFEST_FILE, Manifest, PluginId};

use crate::config::RuntimeConfig;
use crate::plugins::{COMPONENT_FILE, inspect};
use crate::runtime::Runtime;

/// The target plugins build for.
pub const TARGET: &str = "wasm32-wasip2";

/// Where this binary's own SDK sources were, when it was built from a checkout.
const SDK_CHECKOUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/rust");

/// Creates a plugin crate in `dir` that builds and runs as it is.
pub fn new_plugin(name: &str, dir: &Path, sdk_path: Option<&Path>) -> anyhow::Result<()> {
    PluginId::new(name).map_err(anyhow::Error::msg)?;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty\n  hint: pick another name or --dir",
            dir.display()
        );
    }
    let sdk = match sdk_path {
        Some(path) => Some(
            path.canonicalize()
                .with_context(|| format!("no SDK at {}", path.display()))?,
        ),
        None => Path::new(SDK_CHECKOUT).canonicalize().ok(),
    };
    let sdk_dependency = match sdk {
        Some(path) => format!("{{ path = {:?} }}", path.display().to_string()),
        None => format!("\"{}\"", env!("CARGO_PKG_VERSION")),
    };
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let files = [
        (
            "Cargo.toml",
            CARGO_TOML
                .replace("@NAME@", name)
                .replace("@SDK@", &sdk_dependency),
        ),
        (MANIFEST_FILE, MANIFEST.replace("@NAME@", name)),
        ("src/lib.rs", LIB_RS.replace("@NAME@", name)),
        (".gitignore", "/target\n/plugin.wasm\n".to_string()),
        ("README.md", README.replace("@NAME@", name)),
    ];
    for (file, content) in files {
        std::fs::write(dir.join(file), content).with_context(|| format!("cannot write {file}"))?;
    }
    Ok(())
}

/// What `build_plugin` produced.
#[derive(Debug)]
pub struct Built {
    pub manifest: Manifest,
    pub wasm_path: PathBuf,
    pub size: usize,
    pub imports: Vec<String>,
}

/// Compiles the crate in `dir` to a component, writes it to `dir/plugin.wasm`, and checks it
/// against the manifest exactly as an install would.
pub async fn build_plugin(dir: &Path, profile: &str) -> anyhow::Result<Built> {
    let cargo_toml = dir.join("Cargo.toml");
    if !cargo_toml.is_file() {
        bail!(
            "{} has no Cargo.toml\n  hint: run this in a plugin crate (`ucms plugin new NAME` makes one)",
            dir.display()
        );
    }
    let manifest = Manifest::load(dir)?;
    check_target()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .args([
            "build",
            "--profile",
            profile,
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&cargo_toml)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run cargo\n  hint: install Rust with rustup (https://rustup.rs)")?;
    let wanted = cargo_toml.canonicalize()?;
    let mut wasm = None;
    for line in BufReader::new(child.stdout.take().context("no cargo output")?).lines() {
        let line = line?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let from_this_crate = message["manifest_path"]
            .as_str()
            .and_then(|p| Path::new(p).canonicalize().ok())
            .is_some_and(|p| p == wanted);
        if !from_this_crate {
            continue;
        }
        if let Some(files) = message["filenames"].as_array() {
            wasm = files
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
                .or(wasm);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build failed (see its errors above)");
    }
    let built = wasm.context(
        "cargo built no .wasm for this crate\n  hint: the crate needs `[lib] crate-type = [\"cdylib\"]` in Cargo.toml",
    )?;
    let out = dir.join(COMPONENT_FILE);
    std::fs::copy(&built, &out)
        .with_context(|| format!("cannot copy {} to {}", built.display(), out.display()))?;
    let bytes = std::fs::read(&out)?;
    let imports = check_component(&manifest, &bytes).await?;
    Ok(Built {
        manifest,
        wasm_path: out,
        size: bytes.len(),
        imports,
    })
}

/// Compiles `wasm` and checks its imports and API stamp against `manifest`; returns the imports.
pub async fn check_component(manifest: &Manifest, wasm: &[u8]) -> anyhow::Result<Vec<String>> {
    let config = RuntimeConfig {
        pooling: false,
        ..RuntimeConfig::default()
    };
    let runtime = Runtime::new(&config, 64, None)?;
    let bytes = wasm.to_vec();
    // Compiling proves the component is valid for this engine; the checks read its bytes.
    tokio::task::spawn_blocking(move || runtime.compile(&bytes).map(drop)).await??;
    let inspection = inspect::inspect(wasm, manifest)?;
    Ok(inspection.imports)
}

/// Fails with the fix when the wasm32-wasip2 target is missing.
pub fn check_target() -> anyhow::Result<()> {
    let Ok(output) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        // No rustup: let cargo report what is missing.
        return Ok(());
    };
    let installed = String::from_utf8_lossy(&output.stdout);
    if !installed.lines().any(|l| l.trim() == TARGET) {
        bail!("the {TARGET} target is not installed\n  hint: run `rustup target add {TARGET}`");
    }
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "@NAME@"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = "1"
ucms-sdk = @SDK@

# Small, fast-to-instantiate components.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

# The plugin builds on its own, even inside another project's folder.
[workspace]
"#;

const MANIFEST: &str = r#"# What this plugin is, what it may use and what it serves.
# Reference: docs/plugin-guide.md in the UCMS repository.
id = "@NAME@"
version = "0.1.0"
publisher = "me"
description = "A new UCMS plugin"
license = "MIT"
api = "^0.2"

# Every ucms:host interface the component imports must be granted here.
[capabilities]
kv = true
log = true

# Permissions this plugin defines (named "@NAME@.<name>" site-wide).
[permissions]
"notes.write" = "Add notes"

[[routes]]
method = "GET"
path = "/hello"
public = true

[[routes]]
method = "GET"
path = "/notes"
public = true

[[routes]]
method = "POST"
path = "/notes"
permission = "notes.write"
"#;

const LIB_RS: &str = r#"//! The @NAME@ plugin.

use serde::{Deserialize, Serialize};
use ucms_sdk::{Plugin, Request, Response, Result, Router, kv, log};

struct App;

impl Plugin for App {
    fn router() -> Router {
        Router::new()
            .get("/hello", hello)
            .get("/notes", list_notes)
            .post("/notes", add_note)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Note {
    text: String,
}

/// GET /api/@NAME@/hello?name=Ada
fn hello(req: Request) -> Result<Response> {
    let name = req.query("name").unwrap_or("world");
    Ok(Response::json(&serde_json::json!({ "message": format!("Hello from @NAME@, {name}!") })))
}

/// GET /api/@NAME@/notes
fn list_notes(_req: Request) -> Result<Response> {
    let notes: Vec<Note> = kv::get("notes")?.unwrap_or_default();
    Ok(Response::json(&notes))
}

/// POST /api/@NAME@/notes {"text": "..."} (needs the @NAME@.notes.write permission)
fn add_note(req: Request) -> Result<Response> {
    let note: Note = req.json()?;
    if note.text.trim().is_empty() {
        return Err(ucms_sdk::Error::unprocessable("a note needs some text"));
    }
    let notes = kv::update("notes", |notes: Option<Vec<Note>>| {
        let mut notes = notes.unwrap_or_default();
        notes.push(Note { text: note.text.clone() });
        notes
    })?;
    log::info(&format!("{} notes stored", notes.len()));
    Ok(Response::json(&notes).with_status(201))
}

ucms_sdk::export!(App);
"#;

const README: &str = r#"# @NAME@

A UCMS plugin.

```sh
ucms plugin build            # compile to plugin.wasm and check it against ucms-plugin.toml
ucms plugin install . --yes  # install into the site in ./ucms-data
ucms serve                   # then: curl '127.0.0.1:8080/api/@NAME@/hello?name=Ada'
```
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn the_template_manifest_is_valid() {
        let text = super::MANIFEST.replace("@NAME@", "my-plugin");
        let manifest = ucms_manifest::Manifest::parse(&text).unwrap();
        assert_eq!(manifest.routes.len(), 3);
    }
}
