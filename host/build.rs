//! Embeds the admin UI's built assets (`web/admin/dist`, made by `cargo xtask web`) into the
//! binary: generates `admin_assets.rs` in `OUT_DIR` with one `include_bytes!` per file. A checkout
//! without built assets still compiles; the host then serves a page saying how to build them.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let web = manifest.join("../web/admin");
    let dist = std::env::var_os("UCMS_ADMIN_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| web.join("dist"));
    println!("cargo:rerun-if-env-changed=UCMS_ADMIN_DIST");
    // Watch the built folder when it exists; otherwise its parent, whose change (a first build
    // creating dist/) makes this script run again. Watching a missing path would rerun it, and
    // rebuild the host, on every build.
    if dist.is_dir() {
        println!("cargo:rerun-if-changed={}", dist.display());
    } else if web.is_dir() {
        println!("cargo:rerun-if-changed={}", web.display());
    }
    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &dist, &mut files);
    }
    files.sort();
    let mut code = String::from(
        "/// The admin UI's built files, by path below `web/admin/dist`.\npub static ADMIN_ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for (relative, absolute) in &files {
        code.push_str(&format!(
            "    ({relative:?}, include_bytes!({:?})),\n",
            absolute.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("admin_assets.rs"), code).expect("OUT_DIR is writable");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.is_file() {
            let relative = path
                .strip_prefix(root)
                .expect("below the root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let absolute = path.canonicalize().unwrap_or(path);
            files.push((relative, absolute));
        }
    }
}
