//! Project automation, run with `cargo xtask <task>`.
//!
//! - `cargo xtask demo`: builds the example plugins and the host, installs the plugins into a
//!   fresh data directory (`target/demo/ucms-data`), creates an admin account and a token, and
//!   serves the site on 127.0.0.1:8080 with SQLite.
//! - `cargo xtask test`: builds every guest and runs every test. With `CI=true`, a suite that can't
//!   run (PostgreSQL unreachable, say) fails instead of being skipped.
//!
//! Both add the `wasm32-wasip2` target with rustup when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

const TARGET: &str = "wasm32-wasip2";
const DEMO_PLUGINS: &[&str] = &["examples/hello", "examples/orders", "examples/mailer"];
const DEMO_EMAIL: &str = "admin@example.com";
const DEMO_PASSWORD: &str = "demo-password-change-me";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(&args[1..]),
        Some("test") => test(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <demo|test> [args]\n\n  demo   build the example plugins and serve them on 127.0.0.1:8080\n  test   build every guest and run every test (extra args go to cargo test)"
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

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
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
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
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
        ])
        .args(extra))?;
    Ok(())
}

fn demo(extra: &[String]) -> anyhow::Result<()> {
    ensure_target()?;
    let root = root();
    eprintln!("xtask: building the host and the example plugins");
    run(cargo().args(["build", "--release", "-p", "ucms"]))?;
    let ucms = root.join("target/release/ucms");
    let data = root.join("target/demo/ucms-data");
    if data.exists() {
        std::fs::remove_dir_all(&data)
            .with_context(|| format!("cannot clear {}", data.display()))?;
    }
    let ucms_cmd = || {
        let mut cmd = Command::new(&ucms);
        cmd.current_dir(&root).arg("--data").arg(&data);
        cmd
    };
    for plugin in DEMO_PLUGINS {
        run(ucms_cmd().args(["plugin", "build", plugin, "--profile", "guest"]))?;
        run(ucms_cmd().args(["plugin", "install", plugin, "--yes"]))?;
    }
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
         \n  curl -s 127.0.0.1:8080/metrics\
         \n\n  admin sign-in: {DEMO_EMAIL} / {DEMO_PASSWORD}\n"
    );
    let mut serve = ucms_cmd();
    serve.arg("serve").args(extra);
    run(&mut serve)
}
