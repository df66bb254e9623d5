//! Builds every guest component the host's tests run — the examples and the adversarial plugins —
//! for wasm32-wasip2, and generates a constant per guest with its paths.
//!
//! The guests are built by a nested cargo into their own target directory (`target/guests`), so
//! it never waits on the lock of the outer build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (constant name, package, folder relative to the workspace root)
const GUESTS: &[(&str, &str, &str)] = &[
    ("HELLO", "hello", "examples/hello"),
    ("ORDERS", "orders", "examples/orders"),
    ("MAILER", "mailer", "examples/mailer"),
    ("MISBEHAVE", "misbehave", "tests/components/misbehave"),
    ("LEGACY", "legacy", "tests/components/legacy"),
    ("NOTES", "notes", "examples/notes"),
    ("HOOKY", "hooky", "tests/components/hooky"),
    ("LEGACY_0_2", "legacy-0-2", "tests/components/legacy-0-2"),
    ("TALLY", "tally", "tests/components/tally"),
    ("FUZZER", "fuzzer", "tests/components/fuzzer"),
    ("CONTENT", "content", "plugins/content"),
    ("WEBHOOKS", "webhooks", "plugins/webhooks"),
];

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let target_dir = root.join("target").join("guests");
    for watched in ["sdk/rust/src", "sdk/rust/Cargo.toml", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for (_, _, dir) in GUESTS {
        println!(
            "cargo:rerun-if-changed={}",
            root.join(dir).join("src").display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            root.join(dir).join("Cargo.toml").display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            root.join(dir).join("ucms-plugin.toml").display()
        );
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--profile",
            PROFILE,
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(&target_dir);
    for (_, package, _) in GUESTS {
        cmd.args(["-p", package]);
    }
    // The outer build's settings are for the host, not for the guests.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the guest components");
    if !status.success() {
        panic!(
            "building the guest components failed (see above).\n\
             hint: if the {TARGET} target is missing, run `rustup target add {TARGET}` \
             (`cargo xtask test` does it for you)"
        );
    }

    let out_dir = target_dir.join(TARGET).join(PROFILE);
    let mut code = String::new();
    for (name, package, dir) in GUESTS {
        let wasm = out_dir.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(
            wasm.exists(),
            "cargo reported success but {} is missing",
            wasm.display()
        );
        code.push_str(&format!(
            "/// The `{package}` guest ({dir}).\npub const {name}: Guest = Guest {{ name: {package:?}, wasm: {wasm:?}, dir: {dir:?} }};\n",
            wasm = wasm.display().to_string(),
            dir = root.join(dir).display().to_string(),
        ));
    }
    let all: Vec<&str> = GUESTS.iter().map(|(n, _, _)| *n).collect();
    code.push_str(&format!(
        "/// Every guest.\npub const ALL: &[Guest] = &[{}];\n",
        all.join(", ")
    ));
    std::fs::write(
        PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("guests.rs"),
        code,
    )
    .unwrap();
}
