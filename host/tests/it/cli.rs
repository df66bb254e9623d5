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
    serve_with(data, &[])
}

/// Starts `ucms serve` on a free port with extra environment variables.
pub fn serve_with(data: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = ucms(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .envs(env.iter().copied())
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
        r#"http-client = { hosts = ["127.0.0.1", "localhost", "169.254.169.254", "[::1]", "*.ucms.test"] }"#,
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

/// A signed misbehave package, its key trusted in `ucms.toml` beside it with `policy` rules.
fn signed_package(tmp: &Path, policy: &str) -> (PathBuf, PathBuf) {
    let data = tmp.join("data");
    let dir = plugin_folder(tmp, &MISBEHAVE.manifest());
    let key = tmp.join("ucms-tests.key");
    ok(ucms(&data)
        .args(["plugin", "keygen", "--publisher", "ucms-tests", "--out"])
        .arg(&key)
        .output()
        .unwrap());
    let package = tmp.join("misbehave-0.1.0.ucpkg");
    ok(ucms(&data)
        .args(["plugin", "pack"])
        .arg(&dir)
        .arg("--out")
        .arg(&package)
        .output()
        .unwrap());
    ok(ucms(&data)
        .args(["plugin", "sign"])
        .arg(&package)
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap());
    let public: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.join("ucms-tests.key.pub")).unwrap())
            .unwrap();
    let config = tmp.join("ucms.toml");
    std::fs::write(
        &config,
        format!(
            "[trust]\npublishers = [{{ publisher = \"ucms-tests\", key = \"{}\" }}]\n\n{policy}",
            public["public_key"].as_str().unwrap()
        ),
    )
    .unwrap();
    (package, config)
}

fn policy_check(tmp: &Path, config: &Path, package: &Path, json: bool) -> Output {
    let mut cmd = ucms(&tmp.join("data"));
    cmd.arg("--config")
        .arg(config)
        .args(["policy", "check"])
        .arg(package);
    if json {
        cmd.arg("--json");
    }
    cmd.output().unwrap()
}

#[test]
fn policy_check_explains_every_rule_before_anything_is_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let (package, config) = signed_package(
        tmp.path(),
        "[policy.publishers]\nallow = [\"acme\"]\n[policy.capabilities]\ndeny = [\"http-client\"]\n\
         [policy.ceilings]\nmemory-mib = 16\n",
    );
    let out = policy_check(tmp.path(), &config, &package, false);
    assert_eq!(out.status.code(), Some(1), "a refusal exits with 1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "misbehave 0.1.0, signed by ucms-tests (ed25519:",
        "allowed  signature: the signature verifies",
        "REFUSED  publisher ucms-tests",
        "(an unknown publisher) ([policy.publishers] allow)",
        "REFUSED  capability http-client: the capability 'http-client' is forbidden on this site ([policy.capabilities] deny)",
        "REFUSED  limit memory-mib: the manifest asks for memory-mib = 32, over the ceiling of 16 ([policy.ceilings] memory-mib)",
        "refused: 3 rules refuse this plugin",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    let out = policy_check(tmp.path(), &config, &package, true);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["allowed"], false);
    assert_eq!(report["signer"]["publisher"], "ucms-tests");
    let refused: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["allowed"] == false)
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused,
        [
            "[policy.publishers] allow",
            "[policy.capabilities] deny",
            "[policy.ceilings] memory-mib"
        ]
    );
    // Nothing was installed by asking.
    assert!(!tmp.path().join("data").join("plugins").exists());

    // A policy that allows it says so, and exits with 0.
    let tmp = tempfile::tempdir().unwrap();
    let (package, config) = signed_package(
        tmp.path(),
        "[policy.publishers]\nallow = [\"ucms-tests\"]\n[policy.capabilities.http-client]\n\
         hosts = [\"127.0.0.1\", \"localhost\", \"169.254.169.254\", \"[::1]\", \"*.ucms.test\"]\n",
    );
    let stdout = ok(policy_check(tmp.path(), &config, &package, false));
    assert!(
        stdout.contains("allowed: the policy lets this plugin be installed and run"),
        "{stdout}"
    );

    // A signature made for other bytes: the signature is what's refused, the rest still explained.
    let sig_path = PathBuf::from(format!("{}.sig", package.display()));
    let mut sig: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sig_path).unwrap()).unwrap();
    let digest = sig["digest"].as_str().unwrap().to_string();
    let flipped = if digest.ends_with('0') { "1" } else { "0" };
    sig["digest"] = format!("{}{flipped}", &digest[..digest.len() - 1]).into();
    std::fs::write(&sig_path, sig.to_string()).unwrap();
    let out = policy_check(tmp.path(), &config, &package, false);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("REFUSED  signature: the signature doesn't verify"),
        "{stdout}"
    );
    assert!(
        stdout.contains("unsigned; claims publisher ucms-tests"),
        "{stdout}"
    );
}

/// A collector on loopback that receives OTLP/HTTP protobuf trace exports.
async fn otlp_collector() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>,
) {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use prost::Message;
    let spans: std::sync::Arc<std::sync::Mutex<Vec<_>>> = Default::default();
    let received = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let received = received.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut spans = received.lock().unwrap();
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        spans.extend(scope.spans);
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, spans)
}

/// With `[telemetry] otlp-endpoint`, one request is one trace at the collector: the request's
/// span (continuing the caller's `traceparent`), the plugin invocation inside it, and the host
/// call the plugin made inside that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_of_a_request_reach_an_otlp_collector() {
    let (collector, spans) = otlp_collector().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let hello = tmp.path().join("hello");
    std::fs::create_dir_all(&hello).unwrap();
    std::fs::copy(ucms_test_components::HELLO.wasm, hello.join("plugin.wasm")).unwrap();
    std::fs::write(
        hello.join("ucms-plugin.toml"),
        ucms_test_components::HELLO.manifest(),
    )
    .unwrap();
    ok(ucms(&data)
        .args(["plugin", "install"])
        .arg(&hello)
        .arg("--yes")
        .output()
        .unwrap());
    ok(ucms(&data)
        .args([
            "user",
            "create",
            "--email",
            "ada@example.com",
            "--password",
            "a long enough password",
            "--role",
            "admin",
        ])
        .output()
        .unwrap());
    let token = ok(ucms(&data)
        .args([
            "token",
            "create",
            "--email",
            "ada@example.com",
            "--scope",
            "hello.*",
        ])
        .output()
        .unwrap());
    let endpoint = format!("http://{collector}");
    let (mut child, url) = serve_with(&data, &[("UCMS_TELEMETRY__OTLP_ENDPOINT", &endpoint)]);

    ucms::install_crypto_provider();
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let response = reqwest::Client::new()
        .post(format!("{url}/api/hello/counter"))
        .bearer_auth(token.trim())
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // The batch exporter sends within seconds.
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (request, invoke, host_call) = loop {
        {
            let spans = spans.lock().unwrap();
            let find = |name: &str| {
                spans
                    .iter()
                    .find(|s| s.name == name && hex(&s.trace_id) == trace_id)
                    .cloned()
            };
            if let (Some(a), Some(b), Some(c)) = (
                find("POST /api/hello/counter"),
                find("plugin.invoke hello"),
                find("kv.increment"),
            ) {
                break (a, b, c);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the spans never arrived; got {:?}",
            spans
                .lock()
                .unwrap()
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        hex(&request.parent_span_id),
        caller_span,
        "the caller's trace continues"
    );
    assert_eq!(
        invoke.parent_span_id, request.span_id,
        "the invocation is inside the request"
    );
    assert_eq!(
        host_call.parent_span_id, invoke.span_id,
        "the host call is inside the invocation"
    );
    let attribute = |span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str| {
        span.attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.clone())
            .and_then(|v| v.value)
            .map(|v| format!("{v:?}"))
            .unwrap_or_default()
    };
    assert!(attribute(&invoke, "plugin").contains("hello"), "{invoke:?}");
    assert!(attribute(&invoke, "code").contains("ok"), "{invoke:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}
