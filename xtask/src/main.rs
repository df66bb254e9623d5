//! Project automation, run with `cargo xtask <task>`.
//!
//! - `cargo xtask demo`: builds the host and the example plugins; starts a local registry
//!   (`ucms registry serve` on 127.0.0.1:7070, data in `target/demo/registry`); makes a demo
//!   publisher key; packs, signs and publishes every plugin; then installs them by name into a
//!   fresh site (`target/demo/ucms-data`) through the resolver, showing the capabilities each asks
//!   for; creates an admin account and a token, and serves the site on 127.0.0.1:8080 with SQLite.
//! - `cargo xtask test`: builds every guest and runs every test, then the fuzz targets for a
//!   bounded time. With `CI=true`, a suite that can't run (PostgreSQL unreachable, say) fails
//!   instead of being skipped. Installs the TypeScript and Python plugin toolchains first (`npm
//!   ci` in `sdk/ts`, componentize-py with pip).
//! - `cargo xtask fuzz [TARGET] [--seconds N] [--minimize]`: builds the fuzz targets (`fuzz/`)
//!   with libFuzzer on stable Rust and runs them (docs/fuzzing.md).
//! - `cargo xtask docs`: regenerates docs/manifest-reference.md and docs/cli-reference.md.
//! - `cargo xtask web`: builds the admin UI (`web/admin`: `npm ci` when its node_modules are
//!   missing or stale, then `npm run build` into `web/admin/dist`), which `host/build.rs` embeds
//!   into the `ucms` binary. `demo` and `test` run it first.
//!
//! Both add the `wasm32-wasip2` target with rustup when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

mod fuzz;

const TARGET: &str = "wasm32-wasip2";
const DEMO_PLUGINS: &[&str] = &[
    "examples/hello",
    "examples/orders",
    "examples/mailer",
    "examples/notes",
    "plugins/content",
];
const DEMO_EMAIL: &str = "admin@example.com";
const DEMO_PASSWORD: &str = "demo-password-change-me";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("fuzz") => fuzz::main(&args[1..]),
        Some("docs") => docs(),
        Some("web") => web(),
        _ => {
            eprintln!(
                "usage: cargo xtask <demo|test|fuzz|docs|web> [args]\n\n  demo   build the example plugins and serve them on 127.0.0.1:8080\n  test   build every guest and run every test (extra args go to cargo test)\n  fuzz   run the fuzz targets: [TARGET] [--seconds N] [--minimize]\n  docs   regenerate the generated pages in docs/ (manifest and CLI references)\n  web    build the admin UI (web/admin) that the ucms binary embeds"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// A command as it is shown in messages: program and arguments, never the environment (which
/// may hold a token).
fn shown(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = shown(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// Adds the wasm32-wasip2 target with rustup when it is missing.
fn ensure_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == TARGET) =>
        {
            Ok(())
        }
        Ok(_) => {
            eprintln!("xtask: adding the {TARGET} target with rustup");
            run(Command::new("rustup").args(["target", "add", TARGET])).with_context(|| {
                format!("cannot add the {TARGET} target; check your network, or install it by hand: rustup target add {TARGET}")
            })
        }
        Err(_) => {
            eprintln!(
                "xtask: rustup not found; assuming the {TARGET} target is installed (if not, install it with your toolchain manager)"
            );
            Ok(())
        }
    }
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    ensure_target()?;
    ensure_s3_server();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    ensure_plugin_toolchains(ci)?;
    // The admin UI is embedded in the host the tests build, and its browser tests need
    // web/admin's node_modules (playwright-core).
    web()?;
    if ci {
        eprintln!(
            "xtask: CI=true: database suites that can't reach their server fail instead of skipping"
        );
    }
    // Host crates (their build script compiles every guest), then the SDK's own unit tests.
    run(cargo()
        .args([
            "test",
            "--workspace",
            "--exclude",
            "hello",
            "--exclude",
            "orders",
            "--exclude",
            "mailer",
            "--exclude",
            "misbehave",
            "--exclude",
            "bulky",
            "--exclude",
            "legacy",
        ])
        .args(extra))?;
    // Bounded: 15 s per target plus the build (docs/fuzzing.md).
    fuzz::ci()?;
    Ok(())
}

/// Regenerates docs/manifest-reference.md (from `ucms_manifest::reference`) and
/// docs/cli-reference.md (from the clap definitions); a test fails while a committed page differs.
fn docs() -> anyhow::Result<()> {
    run(cargo()
        .args([
            "test",
            "-p",
            "ucms-manifest",
            "--lib",
            "reference::tests::the_manifest_reference_page_is_current",
        ])
        .env("UCMS_BLESS", "1"))?;
    run(cargo()
        .args([
            "test",
            "-p",
            "ucms",
            "--lib",
            "cli::tests::the_cli_reference_page_is_current",
        ])
        .env("UCMS_BLESS", "1"))?;
    eprintln!("xtask: wrote docs/manifest-reference.md and docs/cli-reference.md");
    Ok(())
}

/// Builds the admin UI into `web/admin/dist`. `npm ci` runs when `node_modules` is missing or
/// older than `package-lock.json`; the build is TypeScript's check and Vite's bundle.
fn web() -> anyhow::Result<()> {
    let dir = root().join("web/admin");
    let modules = dir.join("node_modules/.package-lock.json");
    let stale = match (
        std::fs::metadata(&modules).and_then(|m| m.modified()),
        std::fs::metadata(dir.join("package-lock.json")).and_then(|m| m.modified()),
    ) {
        (Ok(installed), Ok(locked)) => installed < locked,
        _ => true,
    };
    if stale {
        eprintln!("xtask: installing the admin UI's build tools (npm ci in web/admin)");
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir))
        .context("the admin UI needs Node.js 20.19+ with npm")?;
    }
    // Rebuilding rewrites dist/, which makes cargo rebuild the host: only when a source changed.
    let built = std::fs::metadata(dir.join("dist/index.html")).and_then(|m| m.modified());
    let sources = [
        "src",
        "index.html",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ]
    .iter()
    .filter_map(|p| newest(&dir.join(p)))
    .max();
    if let (Ok(built), Some(sources)) = (built, sources)
        && built > sources
    {
        eprintln!("xtask: the admin UI in web/admin/dist is up to date");
        return Ok(());
    }
    eprintln!("xtask: building the admin UI (web/admin -> web/admin/dist)");
    run(Command::new("npm").args(["run", "build"]).current_dir(&dir))
}

/// The newest modification time of a file or of any file below a folder.
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|e| newest(&e.path()))
        .max()
}

/// The version of componentize-py the Python SDK is built and tested with.
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// TypeScript and Python plugins are built with componentize-js (from `sdk/ts`'s committed
/// package-lock.json, `npm ci`) and componentize-py (pip). Installs what is missing; under CI a
/// failure stops the run here, loudly, instead of skipping those suites.
fn ensure_plugin_toolchains(ci: bool) -> anyhow::Result<()> {
    let sdk = root().join("sdk/ts");
    let mut problems = Vec::new();
    if !sdk
        .join("node_modules/@bytecodealliance/componentize-js")
        .is_dir()
    {
        eprintln!("xtask: installing the TypeScript SDK's build tools (npm ci in sdk/ts)");
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&sdk)
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            problems.push("`npm ci` in sdk/ts failed (is Node.js 20+ with npm installed?)");
        }
    }
    // The marketplace's browser test drives Chromium with playwright-core (tests/browser).
    let browser = root().join("tests/browser");
    if !browser.join("node_modules/playwright-core").is_dir() {
        eprintln!("xtask: installing the browser tests' playwright-core (npm ci in tests/browser)");
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&browser)
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            problems.push("`npm ci` in tests/browser failed (is Node.js 20+ with npm installed?)");
        }
    }
    let componentize_py = |cmd: &mut Command| {
        cmd.arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !componentize_py(&mut Command::new("componentize-py")) {
        eprintln!("xtask: installing {COMPONENTIZE_PY} with pip");
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", COMPONENTIZE_PY])
            .status()
            .is_ok_and(|s| s.success());
        if !installed || !componentize_py(&mut Command::new("componentize-py")) {
            problems.push("componentize-py could not be installed or is not on PATH");
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let message = problems.join("; ");
    if ci {
        bail!("the plugin toolchains are missing under CI=true: {message}");
    }
    eprintln!(
        "xtask: {message}; the TypeScript and Python plugin tests will be skipped\n  hint: cd sdk/ts && npm ci; python3 -m pip install '{COMPONENTIZE_PY}'"
    );
    Ok(())
}

/// The blob store's suite runs against a real S3-compatible server, moto's, which the suite
/// starts itself; installs it with pip when it is missing (under CI=true the suite fails without it).
fn ensure_s3_server() {
    let found = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return;
    }
    eprintln!("xtask: installing moto (an S3-compatible server for the blob store tests) with pip");
    let installed = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "moto[server]"])
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        eprintln!(
            "xtask: could not install moto; the S3 blob tests will be skipped (or fail under CI=true)\n  hint: python3 -m pip install 'moto[server]'"
        );
    }
}

fn demo(extra: &[String]) -> anyhow::Result<()> {
    ensure_target()?;
    web()?;
    let root = root();
    eprintln!("xtask: building the host and the example plugins");
    run(cargo().args(["build", "--release", "-p", "ucms"]))?;
    let ucms = root.join("target/release/ucms");
    let demo = root.join("target/demo");
    if demo.exists() {
        std::fs::remove_dir_all(&demo)
            .with_context(|| format!("cannot clear {}", demo.display()))?;
    }
    let data = demo.join("ucms-data");
    let registry_data = demo.join("registry");
    let packages = demo.join("packages");
    let key = demo.join("keys/ucms-demo.key");
    std::fs::create_dir_all(&packages)?;
    std::fs::create_dir_all(key.parent().expect("has a parent"))?;
    let config = demo.join("ucms.toml");
    let ucms_cmd = || {
        let mut cmd = Command::new(&ucms);
        cmd.current_dir(&root)
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .env("UCMS_REGISTRY_DATA", &registry_data);
        cmd
    };
    // An empty configuration until the registry's key is known.
    std::fs::write(&config, "")?;

    eprintln!("\nxtask: a local registry in {}", registry_data.display());
    let publisher_token = output(ucms_cmd().args(["registry", "add-publisher", "ucms"]))?;
    let registry_key = output(ucms_cmd().args(["registry", "key"]))?;
    let registry = RegistryProcess::start(&ucms, &registry_data)?;

    eprintln!("\nxtask: a demo publisher key, then build, pack, sign and publish each plugin");
    run(ucms_cmd()
        .args(["plugin", "keygen", "--publisher", "ucms", "--out"])
        .arg(&key))?;
    let public_key = PathBuf::from(format!("{}.pub", key.display()));
    for plugin in DEMO_PLUGINS {
        run(ucms_cmd().args(["plugin", "build", plugin, "--profile", "guest"]))?;
        run(ucms_cmd()
            .args(["plugin", "pack", plugin, "--out"])
            .arg(&packages))?;
    }
    let mut packed: Vec<PathBuf> = std::fs::read_dir(&packages)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    packed.sort();
    for package in &packed {
        run(ucms_cmd()
            .args(["plugin", "sign"])
            .arg(package)
            .arg("--key")
            .arg(&key))?;
        run(ucms_cmd()
            .args(["plugin", "publish", "--registry", &registry.url])
            .arg(package)
            .arg("--public-key")
            .arg(&public_key)
            .env("UCMS_REGISTRY_TOKEN", &publisher_token))?;
    }

    std::fs::write(
        &config,
        format!(
            "# Written by `cargo xtask demo`: install by name from the local registry, and trust\n\
             # packages signed by publisher keys that registry endorses.\n\
             [registry]\nurl = \"{}\"\n\n[trust]\nregistries = [\"{registry_key}\"]\n",
            registry.url
        ),
    )?;
    eprintln!(
        "\nxtask: installing by name through the resolver (the consent is shown; --yes approves it)"
    );
    let names: Vec<&str> = DEMO_PLUGINS
        .iter()
        .map(|p| p.rsplit('/').next().expect("a name"))
        .collect();
    run(ucms_cmd()
        .args(["plugin", "install"])
        .args(&names)
        .arg("--yes"))?;
    run(ucms_cmd().args([
        "user",
        "create",
        "--email",
        DEMO_EMAIL,
        "--password",
        DEMO_PASSWORD,
        "--role",
        "admin",
    ]))?;
    let token = ucms_cmd()
        .args([
            "token",
            "create",
            "--email",
            DEMO_EMAIL,
            "--name",
            "demo",
            "--scope",
            "*",
            "--expires",
            "7d",
        ])
        .output()
        .context("cannot create the demo token")?;
    if !token.status.success() {
        bail!(
            "creating the demo token failed: {}",
            String::from_utf8_lossy(&token.stderr)
        );
    }
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    eprintln!(
        "\nxtask: the demo site is ready.\n\
         \n  curl -s '127.0.0.1:8080/api/hello/greet?name=Ada'\
         \n  curl -s -X POST 127.0.0.1:8080/api/hello/counter -H 'Authorization: Bearer {token}'\
         \n  curl -s -X POST 127.0.0.1:8080/api/orders/orders -H 'Authorization: Bearer {token}' -H 'content-type: application/json' -d '{{\"item\":\"book\",\"quantity\":1,\"email\":\"ada@example.com\"}}'\
         \n  curl -s 127.0.0.1:8080/api/mailer/sent -H 'Authorization: Bearer {token}'\
         \n  curl -s -X POST 127.0.0.1:8080/api/notes/notes -H 'Authorization: Bearer {token}' -H 'content-type: application/json' -d '{{\"title\":\"Hello, notes\",\"body\":\"Stored as a document\",\"tags\":[\"demo\"]}}'\
         \n  curl -s '127.0.0.1:8080/api/notes/notes?q=document'\
         \n  curl -s -X POST 127.0.0.1:8080/api/content/types -H 'Authorization: Bearer {token}' -H 'content-type: application/json' -d '{{\"name\":\"article\",\"fields\":[{{\"name\":\"title\",\"type\":\"short-text\",\"required\":true}}]}}'\
         \n  curl -s 127.0.0.1:8080/metrics\
         \n\n  admin UI: http://127.0.0.1:8080/admin/\
         \n  first sign-in: {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
    );
    let mut serve = ucms_cmd();
    serve.arg("serve").args(extra);
    let served = run(&mut serve);
    drop(registry);
    served
}

/// Runs `cmd` and returns its standard output, trimmed.
fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let shown = shown(cmd);
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !out.status.success() {
        bail!("{shown} failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `ucms registry serve` in the background for the demo; stopped when dropped.
struct RegistryProcess {
    child: std::process::Child,
    url: String,
}

impl RegistryProcess {
    fn start(ucms: &Path, data: &Path) -> anyhow::Result<Self> {
        let listen =
            std::env::var("UCMS_DEMO_REGISTRY").unwrap_or_else(|_| "127.0.0.1:7070".into());
        if std::net::TcpStream::connect(&listen).is_ok() {
            bail!(
                "something already listens on {listen}, where the demo registry would run\n  hint: stop it, or pick another address: UCMS_DEMO_REGISTRY=127.0.0.1:7171 cargo xtask demo"
            );
        }
        let child = Command::new(ucms)
            .args(["registry", "serve", "--listen", &listen, "--registry-data"])
            .arg(data)
            .spawn()
            .context("cannot start the demo registry")?;
        let mut process = Self {
            child,
            url: format!("http://{listen}"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(&listen).is_err() {
            if let Some(status) = process.child.try_wait()? {
                bail!("the demo registry stopped ({status}); see above");
            }
            if std::time::Instant::now() > deadline {
                bail!("the demo registry did not start listening on {listen} within 30 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(process)
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
