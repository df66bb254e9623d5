//! An S3-compatible server for tests: moto's threaded server started on a free port (with the
//! bucket created), or an already-running one named by `UCMS_TEST_S3_ENDPOINT` (with
//! `UCMS_TEST_S3_BUCKET`, `_REGION`, `_ACCESS_KEY_ID`, `_SECRET_ACCESS_KEY`). Shared by the blob
//! store's suite and the host's integration tests (`#[path]`-included), so both run against the
//! same real server.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips (returns `None`) with a loud message, or panics under `CI=true`.
pub fn unavailable<T>(what: &str) -> Option<T> {
    if ci() {
        panic!("{what}; under CI=true this suite must run");
    }
    eprintln!("SKIPPED: {what}");
    None
}

/// An S3-compatible server for tests: moto, started here, or the one `UCMS_TEST_S3_ENDPOINT` names.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The server exits when this pipe closes, that is when the test process ends, however it ends.
    /// `None` for a server someone else runs.
    pub(crate) _lifeline: Option<Mutex<(Child, ChildStdin)>>,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// The process's S3 server, started on first use; `None` when there is none (skipped loudly, or a
/// panic under `CI=true`).
pub fn s3_server() -> &'static Option<S3Server> {
    static SERVER: OnceLock<Option<S3Server>> = OnceLock::new();
    SERVER.get_or_init(|| {
        let bucket = env_or("UCMS_TEST_S3_BUCKET", "ucms-test");
        let region = env_or("UCMS_TEST_S3_REGION", "us-east-1");
        let access_key_id = env_or("UCMS_TEST_S3_ACCESS_KEY_ID", "test");
        let secret_access_key = env_or("UCMS_TEST_S3_SECRET_ACCESS_KEY", "test");
        if let Ok(endpoint) = std::env::var("UCMS_TEST_S3_ENDPOINT")
            && !endpoint.is_empty()
        {
            // An already-running server: the bucket must exist.
            return Some(S3Server {
                endpoint,
                bucket,
                region,
                access_key_id,
                secret_access_key,
                _lifeline: None,
            });
        }
        let (endpoint, lifeline) =
            start_moto(&bucket, &region, &access_key_id, &secret_access_key)?;
        Some(S3Server {
            endpoint,
            bucket,
            region,
            access_key_id,
            secret_access_key,
            _lifeline: Some(Mutex::new(lifeline)),
        })
    })
}

/// Runs moto's threaded server (what `moto_server` runs) on a free port, creates the bucket, and
/// stops when its stdin closes.
const MOTO: &str = r#"
import logging, sys
logging.disable(logging.CRITICAL)
from moto.server import ThreadedMotoServer
import boto3
port, bucket, region, key, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name=region,
                  aws_access_key_id=key, aws_secret_access_key=secret)
if region == "us-east-1":
    s3.create_bucket(Bucket=bucket)
else:
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
print("ready", flush=True)
sys.stdin.read()
server.stop()
"#;

fn python() -> String {
    env_or("UCMS_TEST_PYTHON", "python3")
}

fn start_moto(
    bucket: &str,
    region: &str,
    key: &str,
    secret: &str,
) -> Option<(String, (Child, ChildStdin))> {
    let python = python();
    let installed = Command::new(&python)
        .args(["-c", "import moto.server, boto3, flask"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        return unavailable(&format!(
            "no S3 server for the S3 blob tests: `{python}` cannot import moto's server; install it \
             with `python3 -m pip install 'moto[server]'`, or set UCMS_TEST_S3_ENDPOINT (and \
             UCMS_TEST_S3_BUCKET, UCMS_TEST_S3_ACCESS_KEY_ID, UCMS_TEST_S3_SECRET_ACCESS_KEY) to \
             an S3-compatible server"
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("pick a free port")
        .port();
    let mut child = Command::new(&python)
        .args(["-c", MOTO, &port.to_string(), bucket, region, key, secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start moto's S3 server");
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) if line.trim() == "ready" => {}
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "moto's S3 server did not start on port {port} (got {other:?}); see its output above"
            );
        }
    }
    eprintln!("moto S3 server on http://127.0.0.1:{port}, bucket {bucket}");
    let mut stdin = stdin;
    let _ = stdin.flush();
    Some((format!("http://127.0.0.1:{port}"), (child, stdin)))
}

impl S3Server {
    /// Whether this process started the server (and may inspect it, for example its pending
    /// multipart uploads).
    #[allow(
        dead_code,
        reason = "the blob suite uses it; the host's tests include this file too"
    )]
    pub fn started_here(&self) -> bool {
        self._lifeline.is_some()
    }
}
