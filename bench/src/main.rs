//! Run with `cargo run --release -p ucms-bench` (or `-- --help`).
//!
//! Serves the same JSON greeting from a native axum handler and from the `hello` plugin, in the
//! same process and run, drives each with the same closed-loop load from a separate process
//! (keep-alive HTTP/1.1 connections, like wrk), and prints requests per second, p50/p99 latency
//! and the plugin/native ratio. Then measures one fresh instance + call of the plugin, without
//! HTTP, in microseconds.
//!
//! `resolve` times the dependency resolver on a synthetic index (1,000 packages × 20 versions)
//! against its 50 ms budget; `install` times installs from a registry, by phase, for a 2 MB
//! component and for `hello`; `documents` times the document store (bulk load, index creation,
//! indexed and unindexed queries, cursors, full-text search, counts) on SQLite and PostgreSQL;
//! `events` measures events per second delivered to a subscriber plugin against a native one;
//! `languages` compares the hello plugin in Rust, TypeScript and Python (size, compile time, peak
//! memory, a fresh instance + call, requests per second).

mod content;
mod documents;
mod events;
mod install;
mod languages;
mod resolve;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Concurrent connections per target.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds of measured load per target.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Fresh-instance calls to time for the per-invocation cost.
    #[arg(long, default_value_t = 20_000)]
    calls: usize,
    /// Only measure the per-invocation cost (no HTTP load).
    #[arg(long)]
    invocation_only: bool,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Well-behaved traffic with and without a misbehaving plugin beside it: p99s, errors by
    /// code, host memory, and checks that nothing well-behaved failed or was lost.
    Faultload {
        /// Concurrent well-behaved clients.
        #[arg(long, default_value_t = 16)]
        good_clients: usize,
        /// Requests per well-behaved client per phase.
        #[arg(long, default_value_t = 2000)]
        good_requests: usize,
        /// Concurrent misbehaving clients.
        #[arg(long, default_value_t = 8)]
        bad_clients: usize,
        /// Let quarantine stop the misbehaving plugin.
        #[arg(long)]
        quarantine: bool,
        /// Only the misbehaving routes whose path contains this (repeatable): spin, alloc,
        /// panic, log-flood, publish, huge, egress, recurse.
        #[arg(long)]
        only: Vec<String>,
    },
    /// The content plugin's delivery API on a large SQLite site (a filtered page with population,
    /// a cursor page, a slug, a search) against native handlers on the same documents (uses
    /// --connections, --seconds, --warmup).
    Content {
        /// Published articles to load (10 fields, two relations).
        #[arg(long, default_value_t = 100_000)]
        entries: usize,
    },
    /// Resolver time on a synthetic index of 1,000 packages × 20 versions.
    Resolve {
        /// Resolutions to time per scenario.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Seed of the synthetic index.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Install time from a registry for a 2 MB component, with `hello` side by side.
    Install {
        /// Installs to time per plugin.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Document store on SQLite and PostgreSQL: load, indexes, query latency (p50/p99).
    Documents {
        /// Documents to load into the collection that the queries run on.
        #[arg(long, default_value_t = 100_000)]
        documents: usize,
        /// Timed runs of each query (after a warm-up of a tenth of them, 5 to 50).
        #[arg(long, default_value_t = 500)]
        iterations: usize,
        /// Documents per batch (one transaction each) when loading.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// One-document transactions to time, with and without indexes.
        #[arg(long, default_value_t = 2000)]
        single_inserts: usize,
        /// Seed of the generated documents and of the query arguments.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// PostgreSQL server to run on, in a fresh schema that is dropped at the end.
        #[arg(
            long,
            env = "UCMS_BENCH_POSTGRES_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/test"
        )]
        postgres_url: String,
        /// Fail when PostgreSQL is unreachable (by default it is skipped).
        #[arg(long)]
        require_postgres: bool,
        /// Also print the EXPLAIN plans of queries a, b and c.
        #[arg(long)]
        explain: bool,
        /// Keep the SQLite file and the PostgreSQL schema for inspection (their names are printed).
        #[arg(long)]
        keep: bool,
    },
    /// Event throughput to a subscriber plugin on SQLite and PostgreSQL, against a native subscriber.
    Events {
        /// Events published beforehand and drained per run.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// Deliveries handled at once (`[events] concurrency`).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// PostgreSQL server to run on, in a fresh schema that is dropped at the end.
        #[arg(
            long,
            env = "UCMS_BENCH_POSTGRES_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/test"
        )]
        postgres_url: String,
        /// Fail when PostgreSQL is unreachable (by default it is skipped).
        #[arg(long)]
        require_postgres: bool,
    },
    /// The hello plugin in Rust, TypeScript and Python side by side: size, compile time, peak
    /// memory, fresh instance + call, req/s (uses --connections, --seconds, --warmup, --calls).
    Languages {
        /// Also build the TypeScript plugin with weval's ahead-of-time compiled interpreter.
        #[arg(long)]
        aot: bool,
    },
    /// Internal: drive load against URL and print a JSON report (run as a separate process).
    Drive {
        url: String,
        #[arg(long)]
        connections: usize,
        #[arg(long)]
        seconds: u64,
        #[arg(long)]
        warmup: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Report {
    requests: u64,
    errors: u64,
    seconds: f64,
    rps: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

// The same allocator as the `ucms` binary, so the in-process site is measured as it ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const GREETING_PATH: &str = "/api/hello/greet?name=Ada";

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Resolve { runs, seed }) => return resolve::run(runs.max(1), seed),
        Some(Cmd::Faultload {
            good_clients,
            good_requests,
            bad_clients,
            quarantine,
            only,
        }) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let dir = tempfile::tempdir()?;
            let report = rt.block_on(ucms_bench::faultload::run(
                dir.path(),
                &ucms_bench::faultload::Options {
                    good_clients: good_clients.max(1),
                    good_requests: good_requests.max(4),
                    bad_clients,
                    quarantine,
                    only,
                },
            ))?;
            report.print();
            anyhow::ensure!(
                report.held(),
                "well-behaved requests failed or data was lost"
            );
            return Ok(());
        }
        Some(Cmd::Content { entries }) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let dir = tempfile::tempdir()?;
            return rt.block_on(content::run(
                dir.path(),
                &content::Options {
                    entries: entries.max(1),
                    connections: cli.connections,
                    seconds: cli.seconds,
                },
                |addr, path| drive_process_path(addr, path, &cli),
            ));
        }
        Some(Cmd::Install { runs }) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            return rt.block_on(install::run(runs.max(1)));
        }
        Some(Cmd::Events {
            events,
            concurrency,
            postgres_url,
            require_postgres,
        }) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            return rt.block_on(events::run(events::Options {
                events: events.max(1),
                concurrency: concurrency.max(1),
                postgres_url,
                require_postgres,
            }));
        }
        Some(Cmd::Languages { aot }) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            return rt.block_on(languages::run(&cli, aot));
        }
        Some(Cmd::Documents {
            documents,
            iterations,
            batch,
            single_inserts,
            seed,
            postgres_url,
            require_postgres,
            explain,
            keep,
        }) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            return rt.block_on(documents::run(documents::Options {
                documents,
                iterations: iterations.max(1),
                batch,
                single_inserts,
                seed,
                postgres_url,
                require_postgres,
                explain,
                keep,
            }));
        }
        _ => {}
    }
    if let Some(Cmd::Drive {
        url,
        connections,
        seconds,
        warmup,
    }) = cli.command
    {
        // The load generator gets one thread: the servers keep the rest of the machine.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let report = rt.block_on(drive(
            &url,
            connections,
            Duration::from_secs(seconds),
            Duration::from_secs(warmup),
        ))?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(compare(&cli))
}

async fn compare(cli: &Cli) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let site = open_site(tmp.path()).await?;
    if cli.invocation_only {
        per_invocation_cost(&site, cli.calls).await?;
        site.db.close().await;
        return Ok(());
    }
    let native = serve_native().await?;
    let plugin = serve_site(&site).await?;

    // Both answer the same bytes.
    let a = fetch(native).await?;
    let b = fetch(plugin).await?;
    anyhow::ensure!(a == b, "native and plugin answers differ: {a} vs {b}");
    println!("both targets answer {a}");
    println!(
        "load: {} connections, {} s warm-up + {} s measured per target, driven from a separate process\n",
        cli.connections, cli.warmup, cli.seconds
    );

    let native_report = drive_process(native, cli)?;
    let plugin_report = drive_process(plugin, cli)?;
    println!(
        "{:<22} {:>12} {:>10} {:>10} {:>10} {:>8}",
        "target", "req/s", "p50 µs", "p99 µs", "max µs", "errors"
    );
    for (name, r) in [
        ("native axum handler", &native_report),
        ("hello plugin (wasm)", &plugin_report),
    ] {
        println!(
            "{name:<22} {:>12.0} {:>10} {:>10} {:>10} {:>8}",
            r.rps, r.p50_us, r.p99_us, r.max_us, r.errors
        );
    }
    println!(
        "\nplugin/native throughput ratio: {:.2} (goal: >= 0.50); p99 ratio: {:.2}",
        plugin_report.rps / native_report.rps,
        plugin_report.p99_us as f64 / native_report.p99_us.max(1) as f64
    );

    per_invocation_cost(&site, cli.calls).await?;
    site.db.close().await;
    Ok(())
}

async fn serve_native() -> anyhow::Result<SocketAddr> {
    async fn greet(
        axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    ) -> axum::response::Response {
        let name = q.get("name").map(String::as_str).unwrap_or("world");
        let body =
            serde_json::to_vec(&serde_json::json!({ "greeting": format!("Hello, {name}!") }))
                .unwrap();
        axum::response::IntoResponse::into_response((
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        ))
    }
    let app = axum::Router::new().route("/api/hello/greet", axum::routing::get(greet));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

async fn open_site(dir: &std::path::Path) -> anyhow::Result<ucms::Site> {
    let mut config = ucms::config::Config::default();
    config.log.level = "warn".into();
    let site = ucms::Site::open(config, ucms::config::DataDir::new(dir.join("data"))).await?;
    let hello = ucms_test_components::HELLO;
    let source = ucms::plugins::PluginSource::new(hello.manifest(), hello.wasm_bytes(), hello.dir)?;
    site.plugins
        .apply(source, ucms::plugins::ApplyOptions::default())
        .await?;
    println!(
        "ucms site: SQLite, {:?} allocator",
        site.runtime.allocator()
    );
    Ok(site)
}

async fn serve_site(site: &ucms::Site) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = site.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

async fn fetch(addr: SocketAddr) -> anyhow::Result<String> {
    fetch_path(addr, GREETING_PATH).await
}

/// One GET of `path`: the body as text.
async fn fetch_path(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<bytes::Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn drive_process(addr: SocketAddr, cli: &Cli) -> anyhow::Result<Report> {
    drive_process_path(addr, GREETING_PATH, cli)
}

/// Load on `path` from a separate process (the `drive` subcommand).
fn drive_process_path(addr: SocketAddr, path: &str, cli: &Cli) -> anyhow::Result<Report> {
    let out = Command::new(std::env::current_exe()?)
        .args(["drive", &format!("http://{addr}{path}")])
        .args(["--connections", &cli.connections.to_string()])
        .args(["--seconds", &cli.seconds.to_string()])
        .args(["--warmup", &cli.warmup.to_string()])
        .output()
        .context("cannot start the load generator")?;
    anyhow::ensure!(
        out.status.success(),
        "load generator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

async fn drive(
    url: &str,
    connections: usize,
    measure: Duration,
    warmup: Duration,
) -> anyhow::Result<Report> {
    let uri: http::Uri = url.parse()?;
    let authority = uri.authority().context("url has no host")?.to_string();
    let path = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    let start = Instant::now() + warmup;
    let end = start + measure;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (authority, path) = (authority.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).unwrap();
            let mut errors = 0u64;
            let stream = tokio::net::TcpStream::connect(&authority).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let request = http::Request::get(&path)
                    .header("host", &authority)
                    .body(Empty::<bytes::Bytes>::new())?;
                let response = sender.send_request(request).await?;
                let ok = response.status().is_success();
                response.into_body().collect().await?;
                let done = Instant::now();
                if now >= start {
                    if ok {
                        hist.record(done.duration_since(now).as_micros() as u64)
                            .ok();
                    } else {
                        errors += 1;
                    }
                }
            }
            anyhow::Ok((hist, errors))
        }));
    }
    let mut all = Histogram::<u64>::new(3)?;
    let mut errors = 0;
    for task in tasks {
        let (hist, e) = task.await??;
        all.add(&hist)?;
        errors += e;
    }
    let seconds = measure.as_secs_f64();
    Ok(Report {
        requests: all.len(),
        errors,
        seconds,
        rps: all.len() as f64 / seconds,
        p50_us: all.value_at_quantile(0.50),
        p99_us: all.value_at_quantile(0.99),
        max_us: all.max(),
    })
}

/// Times fresh instance + call of the plugin's route handler, bypassing HTTP.
async fn per_invocation_cost(site: &ucms::Site, calls: usize) -> anyhow::Result<()> {
    let slot = site.plugins.get("hello").context("hello is installed")?;
    let plugin = slot.runnable().context("hello is enabled")?.clone();
    let index = plugin
        .route(ucms_manifest::Method::Get, "/greet")
        .map_err(|m| anyhow::anyhow!("{m:?}"))?
        .index;
    let call = || ucms::plugins::HttpCall {
        route: index,
        method: ucms_manifest::Method::Get,
        path: "/greet".into(),
        params: Vec::new(),
        query: vec![("name".into(), "Ada".into())],
        headers: Vec::new(),
        body: Vec::new(),
        uploads: Vec::new(),
    };
    for _ in 0..1000 {
        plugin
            .handle_http(ucms::identity::Principal::anonymous(), "bench", call())
            .await?;
    }
    let mut hist = Histogram::<u64>::new(3)?;
    let started = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        plugin
            .handle_http(ucms::identity::Principal::anonymous(), "bench", call())
            .await?;
        hist.record(t.elapsed().as_nanos() as u64).ok();
    }
    let total = started.elapsed();
    println!(
        "\nfresh instance + call (no HTTP), {calls} sequential calls: mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
        total.as_secs_f64() * 1e6 / calls as f64,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0
    );
    // The same through the router, without a socket: adds routing, middleware, auth and body handling.
    let router = site.router();
    let started = Instant::now();
    for _ in 0..calls {
        let request = http::Request::get(GREETING_PATH).body(axum::body::Body::empty())?;
        let response = tower::ServiceExt::oneshot(router.clone(), request).await?;
        response.into_body().collect().await?;
    }
    println!(
        "the same through the router (no socket): mean {:.1} µs",
        started.elapsed().as_secs_f64() * 1e6 / calls as f64
    );
    Ok(())
}
