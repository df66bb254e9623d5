//! `ucms plugin dev`: a change to the plugin's source is built and swapped in while the site
//! keeps running, and a broken build leaves the last good version serving.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::cli::{ok, ucms, workspace};

/// The dev process; killed when dropped.
struct Dev {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    /// Waits for a line of its output containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {within:?}; the output was:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_is_served_without_a_restart_and_a_broken_build_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("devloop");
    let target = workspace().join("target/scaffold");
    ok(ucms(&tmp.path().join("data"))
        .args(["plugin", "new", "devloop", "--dir"])
        .arg(&dir)
        .output()
        .unwrap());

    let mut child = ucms(&tmp.path().join("data"))
        .args(["plugin", "dev"])
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0"])
        .env("CARGO_TARGET_DIR", &target)
        .env(
            "UCMS_LOG",
            "info,ucms::plugin=trace,tower_http::trace=debug",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut dev = Dev {
        child,
        lines,
        seen: Vec::new(),
    };
    let serving = dev.wait_for("is serving on http://", Duration::from_secs(60));
    let url = serving
        .split("serving on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let pid = dev.child.id();
    dev.wait_for("swapped in devloop 0.1.0-dev.1", Duration::from_secs(600));

    ucms::install_crypto_provider();
    let client = reqwest::Client::new();
    let greet = || {
        let client = client.clone();
        let url = format!("{url}/api/devloop/hello?name=Ada");
        async move {
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()["message"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    assert_eq!(greet().await, "Hello from devloop, Ada!");
    // The request's trace and the plugin's version are in the terminal.
    dev.wait_for("finished processing request", Duration::from_secs(10));

    // Edit the source: the new build is swapped in by the same process.
    let lib = dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, source.replace("Hello from", "Howdy from")).unwrap();
    dev.wait_for("src/lib.rs changed; rebuilding", Duration::from_secs(30));
    dev.wait_for("swapped in devloop 0.1.0-dev.2", Duration::from_secs(600));
    assert_eq!(greet().await, "Howdy from devloop, Ada!");

    // A syntax error: the build fails, its error is printed, the last good build keeps serving.
    let broken = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(&lib, format!("{broken}\nfn broken( {{\n")).unwrap();
    dev.wait_for("build failed", Duration::from_secs(600));
    dev.wait_for("still serving devloop 0.1.0-dev.2", Duration::from_secs(10));
    assert_eq!(greet().await, "Howdy from devloop, Ada!");
    assert!(
        dev.seen.iter().any(|l| l.contains("error")),
        "cargo's error is shown: {}",
        dev.seen.join("\n")
    );

    // A manifest error is reported the same way.
    std::fs::write(&lib, &broken).unwrap();
    dev.wait_for("swapped in devloop 0.1.0-dev.3", Duration::from_secs(600));
    let manifest = dir.join("ucms-plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("method = \"GET\"", "method = \"FETCH\""),
    )
    .unwrap();
    dev.wait_for("build failed", Duration::from_secs(600));
    dev.wait_for("still serving devloop 0.1.0-dev.3", Duration::from_secs(10));
    assert!(
        dev.seen.iter().any(|l| l.contains("FETCH")),
        "the manifest error names the bad value: {}",
        dev.seen.join("\n")
    );
    assert_eq!(greet().await, "Howdy from devloop, Ada!");
    assert_eq!(dev.child.id(), pid, "the same process served throughout");
    assert!(
        dev.child.try_wait().unwrap().is_none(),
        "the site is still running"
    );
}
