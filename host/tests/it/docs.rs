//! The docs that quote the code: every message the troubleshooting page is organised by must
//! still be printed by the code.

use std::path::Path;

use crate::cli::workspace;

/// The text of every source file under `dir` with one of `extensions`.
fn sources(dir: &Path, extensions: &[&str], out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "node_modules" || name == "__pycache__" {
            continue;
        }
        if path.is_dir() {
            sources(&path, extensions, out);
        } else if path
            .extension()
            .is_some_and(|e| extensions.iter().any(|x| e == *x))
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            out.push_str(&text);
            out.push('\n');
        }
    }
}

#[test]
fn every_message_in_the_troubleshooting_page_is_printed_by_the_code() {
    let root = workspace();
    let page = std::fs::read_to_string(root.join("docs/plugin-troubleshooting.md")).unwrap();
    let mut code = String::new();
    for dir in [
        "host/src",
        "host/manifest/src",
        "registry/package/src",
        "sdk/rust/src",
        "sdk/rust-testing/src",
        "sdk/ts/src",
        "sdk/ts/testing",
        "sdk/python/src",
    ] {
        sources(&root.join(dir), &["rs", "ts", "mjs", "py"], &mut code);
    }
    let mut checked = 0;
    for line in page.lines() {
        let Some(message) = line
            .strip_prefix("### `")
            .and_then(|rest| rest.strip_suffix('`'))
        else {
            continue;
        };
        for fragment in message
            .split('…')
            .map(str::trim_end)
            .filter(|f| f.trim().len() >= 4)
        {
            assert!(
                code.contains(fragment),
                "docs/plugin-troubleshooting.md quotes {fragment:?} ({message:?}), which no source prints any more"
            );
        }
        checked += 1;
    }
    assert!(checked >= 25, "the page's messages were found ({checked})");
}
