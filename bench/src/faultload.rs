//! The fault-load run: well-behaved plugin traffic with and without a share of requests to a
//! plugin that loops, allocates without bound, panics, floods logs and events, returns huge
//! bodies and reaches for forbidden hosts — all over loopback HTTP to one `ucms` site.
//!
//! It reports requests served, answers by error code, the p50/p99 of the well-behaved routes in
//! a baseline phase (good traffic alone) and in the fault phase (the same good traffic beside the
//! bad), host memory (RSS) before and after, and checks that no well-behaved request failed and
//! that every note and counter increment the well-behaved plugins acknowledged is still there.
//! `cargo test -p ucms-bench` runs it short; `ucms-bench faultload` runs it long.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use serde::Serialize;

/// How much traffic to drive.
#[derive(Debug, Clone)]
pub struct Options {
    /// Concurrent well-behaved clients.
    pub good_clients: usize,
    /// Requests each well-behaved client sends per phase.
    pub good_requests: usize,
    /// Concurrent misbehaving clients during the fault phase.
    pub bad_clients: usize,
    /// Whether quarantine may stop the misbehaving plugin (off keeps its load on the host for the
    /// whole fault phase, the harder case).
    pub quarantine: bool,
}

impl Options {
    /// The short run `cargo xtask test` does: a few seconds on two cores.
    pub fn short() -> Self {
        Self {
            good_clients: 4,
            good_requests: 150,
            bad_clients: 4,
            quarantine: false,
        }
    }

    /// The long run of `ucms-bench faultload`.
    pub fn long() -> Self {
        Self {
            good_clients: 16,
            good_requests: 2_000,
            bad_clients: 8,
            quarantine: false,
        }
    }
}

/// Latencies of the well-behaved routes in one phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub requests: u64,
    pub failed: u64,
    pub seconds: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub served: u64,
    /// Every answer of the fault phase's misbehaving requests, by status and error code.
    pub bad_answers: BTreeMap<String, u64>,
    pub baseline: Phase,
    pub under_fault: Phase,
    /// Well-behaved requests that didn't succeed: route, status and body, for the report.
    pub good_failures: Vec<String>,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub notes_acknowledged: u64,
    pub notes_found: u64,
    pub counter_acknowledged: u64,
    pub counter_found: u64,
    /// The misbehaving plugin's state after the run.
    pub misbehave_state: String,
}

impl Report {
    /// Whether the host kept its promises: every well-behaved request served, nothing lost.
    pub fn held(&self) -> bool {
        self.good_failures.is_empty()
            && self.notes_found == self.notes_acknowledged
            && self.counter_found == self.counter_acknowledged
    }

    pub fn print(&self) {
        println!("fault-load: {} requests served", self.served);
        for (name, phase) in [
            ("baseline", &self.baseline),
            ("under fault", &self.under_fault),
        ] {
            println!(
                "  well-behaved, {name:11}: {:6} requests in {:5.2} s, {} failed, p50 {:>7} µs, p99 {:>7} µs, max {:>8} µs",
                phase.requests,
                phase.seconds,
                phase.failed,
                phase.p50_us,
                phase.p99_us,
                phase.max_us
            );
        }
        println!(
            "  p99 ratio under fault / baseline: {:.2}",
            self.under_fault.p99_us as f64 / self.baseline.p99_us.max(1) as f64
        );
        println!("  misbehaving requests, by answer:");
        for (answer, n) in &self.bad_answers {
            println!("    {n:6}  {answer}");
        }
        println!(
            "  host memory (RSS): {} KiB before, {} KiB after ({:+} KiB)",
            self.rss_before_kib,
            self.rss_after_kib,
            self.rss_after_kib as i64 - self.rss_before_kib as i64
        );
        println!(
            "  data: {}/{} notes and {}/{} counter increments found; misbehave is {}",
            self.notes_found,
            self.notes_acknowledged,
            self.counter_found,
            self.counter_acknowledged,
            self.misbehave_state
        );
        for failure in &self.good_failures {
            println!("  FAILED well-behaved request: {failure}");
        }
    }
}

/// The resident set size of this process, in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    async fn send(
        &mut self,
        method: http::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected");
        sender.ready().await?;
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let bytes = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                bytes::Bytes::from(body.to_string())
            }
            None => bytes::Bytes::new(),
        };
        let response = sender.send_request(request.body(Full::new(bytes))?).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        Ok((status, json))
    }
}

/// Counts shared by the well-behaved clients.
#[derive(Default)]
struct Tally {
    notes: AtomicU64,
    increments: AtomicU64,
    served: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

async fn good_client(
    addr: SocketAddr,
    token: Arc<str>,
    client: usize,
    phase: &'static str,
    requests: usize,
    tally: Arc<Tally>,
) -> anyhow::Result<Histogram<u64>> {
    let mut hist = Histogram::<u64>::new(3)?;
    let mut conn = Conn::new(addr);
    for i in 0..requests {
        let (method, path, body, route) = match i % 4 {
            0 | 1 => (
                http::Method::GET,
                format!("/api/hello/greet?name=c{client}-{i}"),
                None,
                "GET /api/hello/greet",
            ),
            2 => (
                http::Method::POST,
                "/api/hello/counter".to_string(),
                None,
                "POST /api/hello/counter",
            ),
            _ => (
                http::Method::POST,
                "/api/notes/notes".to_string(),
                Some(serde_json::json!({
                    "title": format!("{phase} note {client} {i}"),
                    "body": "written under load",
                    "tags": ["load"],
                })),
                "POST /api/notes/notes",
            ),
        };
        let started = Instant::now();
        let result = conn.send(method, &path, Some(&token), body.as_ref()).await;
        hist.record(started.elapsed().as_micros() as u64).ok();
        tally.served.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok((status, _)) if (200..300).contains(&status) => {
                if i % 4 == 2 {
                    tally.increments.fetch_add(1, Ordering::Relaxed);
                } else if i % 4 == 3 {
                    tally.notes.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok((status, body)) => tally
                .failures
                .lock()
                .unwrap()
                .push(format!("{route}: {status} {body}")),
            Err(e) => {
                tally
                    .failures
                    .lock()
                    .unwrap()
                    .push(format!("{route}: {e:#}"));
                conn.sender = None;
            }
        }
    }
    Ok(hist)
}

/// The misbehaving mix, round-robin.
const BAD_REQUESTS: &[(&str, &str)] = &[
    ("GET", "/api/misbehave/spin"),
    ("GET", "/api/misbehave/alloc"),
    ("GET", "/api/misbehave/panic"),
    ("GET", "/api/misbehave/log-flood?lines=20000"),
    ("POST", "/api/misbehave/publish?count=200"),
    ("GET", "/api/misbehave/huge"),
    (
        "GET",
        "/api/misbehave/egress?url=http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data%2F",
    ),
    ("GET", "/api/misbehave/recurse"),
];

async fn bad_client(
    addr: SocketAddr,
    client: usize,
    stop: Arc<AtomicBool>,
    served: Arc<Tally>,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut answers = BTreeMap::new();
    let mut conn = Conn::new(addr);
    let mut i = client;
    while !stop.load(Ordering::Relaxed) {
        let (method, path) = BAD_REQUESTS[i % BAD_REQUESTS.len()];
        i += 1;
        let answer = match conn.send(method.parse()?, path, None, None).await {
            Ok((status, body)) => format!(
                "{status} {}",
                body["error"]["code"].as_str().unwrap_or("(no error)")
            ),
            Err(e) => {
                conn.sender = None;
                format!("connection error: {e}")
            }
        };
        served.served.fetch_add(1, Ordering::Relaxed);
        *answers.entry(answer).or_insert(0) += 1;
    }
    Ok(answers)
}

async fn run_phase(
    addr: SocketAddr,
    token: &Arc<str>,
    name: &'static str,
    options: &Options,
    tally: &Arc<Tally>,
) -> anyhow::Result<Phase> {
    let failed_before = tally.failures.lock().unwrap().len() as u64;
    let started = Instant::now();
    let clients: Vec<_> = (0..options.good_clients)
        .map(|c| {
            tokio::spawn(good_client(
                addr,
                token.clone(),
                c,
                name,
                options.good_requests,
                tally.clone(),
            ))
        })
        .collect();
    let mut all = Histogram::<u64>::new(3)?;
    for client in clients {
        all.add(client.await??)?;
    }
    Ok(Phase {
        requests: all.len(),
        failed: tally.failures.lock().unwrap().len() as u64 - failed_before,
        seconds: started.elapsed().as_secs_f64(),
        p50_us: all.value_at_quantile(0.50),
        p99_us: all.value_at_quantile(0.99),
        max_us: all.max(),
    })
}

/// Runs the fault-load against a fresh SQLite site in `dir`.
pub async fn run(dir: &std::path::Path, options: &Options) -> anyhow::Result<Report> {
    let mut config = ucms::config::Config::default();
    config.log.level = "error".into();
    config.runtime.max_instances = 128;
    config.policy.quarantine.enabled = options.quarantine;
    let site = ucms::Site::open(config, ucms::config::DataDir::new(dir.join("data"))).await?;
    let stop_background = tokio_util::sync::CancellationToken::new();
    site.start_background(stop_background.clone());
    for guest in [ucms_test_components::HELLO, ucms_test_components::NOTES] {
        let source =
            ucms::plugins::PluginSource::new(guest.manifest(), guest.wasm_bytes(), guest.dir)?;
        site.plugins
            .apply(source, ucms::plugins::ApplyOptions::default())
            .await?;
    }
    // The misbehaving plugin, with a few instances and a short CPU budget: its limits, not the
    // host's luck, are what keep it from the others.
    let misbehave = ucms_test_components::MISBEHAVE;
    let manifest = misbehave.manifest().replace(
        "timeout-ms = 1000",
        "timeout-ms = 1000\ncpu-ms = 250\nmax-concurrency = 8",
    );
    let source = ucms::plugins::PluginSource::new(manifest, misbehave.wasm_bytes(), misbehave.dir)?;
    site.plugins
        .apply(source, ucms::plugins::ApplyOptions::default())
        .await?;
    let identity = &site.services.identity;
    let user = identity
        .create_user(
            "load@example.com",
            "a long enough password",
            &["admin".into()],
        )
        .await?;
    let token: Arc<str> = identity
        .issue_token(
            &user,
            ucms::identity::TokenKind::Api,
            "load",
            &["*".into()],
            None,
        )
        .await?
        .token
        .into();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = site.router();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    // Warm up the well-behaved routes (compiled cache, connections), then measure.
    let tally = Arc::new(Tally::default());
    run_phase(
        addr,
        &token,
        "warmup",
        &Options {
            good_requests: 20,
            ..options.clone()
        },
        &tally,
    )
    .await?;
    let rss_before_kib = rss_kib();
    let baseline = run_phase(addr, &token, "baseline", options, &tally).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let bad: Vec<_> = (0..options.bad_clients)
        .map(|c| tokio::spawn(bad_client(addr, c, stop.clone(), tally.clone())))
        .collect();
    // Let the misbehaving load build up before the good traffic starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let under_fault = run_phase(addr, &token, "fault", options, &tally).await?;
    stop.store(true, Ordering::Relaxed);
    let mut bad_answers = BTreeMap::new();
    for client in bad {
        for (answer, n) in client.await?? {
            *bad_answers.entry(answer).or_insert(0) += n;
        }
    }
    let rss_after_kib = rss_kib();

    // Everything acknowledged is there.
    let mut conn = Conn::new(addr);
    let (_, notes) = conn
        .send(http::Method::GET, "/api/notes/notes?limit=1", None, None)
        .await?;
    let notes_found = notes["total"].as_u64().context("notes list has a total")?;
    let (_, counter) = conn
        .send(http::Method::POST, "/api/hello/counter", Some(&token), None)
        .await?;
    let counter_found = counter["value"].as_u64().context("counter value")? - 1;
    let misbehave_state = site
        .plugins
        .get("misbehave")
        .map(|s| s.state.label().to_string())
        .unwrap_or_default();

    stop_background.cancel();
    server.abort();
    let good_failures = tally.failures.lock().unwrap().clone();
    Ok(Report {
        served: tally.served.load(Ordering::Relaxed),
        bad_answers,
        baseline,
        under_fault,
        good_failures,
        rss_before_kib,
        rss_after_kib,
        notes_acknowledged: tally.notes.load(Ordering::Relaxed),
        notes_found,
        counter_acknowledged: tally.increments.load(Ordering::Relaxed),
        counter_found,
        misbehave_state,
    })
}
