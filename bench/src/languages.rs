//! `ucms-bench languages`: the same hello plugin in Rust (`examples/hello`), TypeScript
//! (`examples/hello-ts`, componentize-js) and Python (`examples/hello-py`, componentize-py), side
//! by side in one site: component size, compile time, peak memory, a fresh instance + one call
//! without HTTP (what every request pays), and requests per second over HTTP from a separate
//! process, with the ratios to Rust.
//!
//! TypeScript and Python are built here with the host's own `ucms plugin build` code
//! (`ucms::authoring::build_plugin`); `--aot` adds a TypeScript build with weval's ahead-of-time
//! compiled interpreter. A language whose toolchain is missing is reported and left out.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use hdrhistogram::Histogram;
use http_body_util::BodyExt;

use crate::{Cli, Report, drive_process_path, fetch_path, serve_site};

struct Variant {
    label: String,
    id: String,
    dir: PathBuf,
    wasm: Vec<u8>,
    build_seconds: Option<f64>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench is in the workspace")
        .to_path_buf()
}

/// Copies an example into `tmp` (so builds don't touch the checkout) and builds it.
async fn build_example(
    tmp: &Path,
    example: &str,
    label: &str,
    aot: bool,
) -> anyhow::Result<Variant> {
    let source = root().join("examples").join(example);
    let dir = tmp.join(label.replace([' ', '(', ')'], "-"));
    copy_dir(&source, &dir)?;
    if dir.join("package.json").is_file() {
        // Link @ucms/sdk from the checkout (no download).
        let sdk = root().join("sdk/ts");
        let modules = dir.join("node_modules/@ucms");
        std::fs::create_dir_all(&modules)?;
        let link = modules.join("sdk");
        if !link.exists() {
            std::os::unix::fs::symlink(&sdk, &link)?;
        }
    }
    let started = Instant::now();
    let built = ucms::authoring::build_plugin(
        &dir,
        &ucms::authoring::BuildOptions {
            profile: "release".into(),
            aot,
        },
    )
    .await
    .with_context(|| format!("building {example}"))?;
    Ok(Variant {
        label: label.into(),
        id: built.manifest.id.to_string(),
        wasm: std::fs::read(&built.wasm_path)?,
        dir,
        build_seconds: Some(started.elapsed().as_secs_f64()),
    })
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if [
            "node_modules",
            ".ucms-build",
            "plugin.wasm",
            "target",
            "__pycache__",
        ]
        .iter()
        .any(|n| name == *n)
        {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

pub async fn run(cli: &Cli, aot: bool) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let hello = ucms_test_components::HELLO;
    let mut variants = vec![Variant {
        label: "rust".into(),
        id: "hello".into(),
        dir: PathBuf::from(hello.dir),
        wasm: hello.wasm_bytes(),
        build_seconds: None,
    }];
    let mut wanted = vec![
        ("hello-ts", "typescript", false),
        ("hello-py", "python", false),
    ];
    if aot {
        wanted.push(("hello-ts", "typescript (aot)", true));
    }
    for (example, label, aot) in wanted {
        match build_example(tmp.path(), example, label, aot).await {
            Ok(v) => variants.push(v),
            Err(e) => println!("{label}: not measured: {e:#}"),
        }
    }

    let mut config = ucms::config::Config::default();
    config.log.level = "warn".into();
    let site =
        ucms::Site::open(config, ucms::config::DataDir::new(tmp.path().join("data"))).await?;
    let mut rows = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        // Compile time without the cache (the site caches from here on).
        let runtime = ucms::runtime::Runtime::new(
            &ucms::config::RuntimeConfig {
                pooling: false,
                ..Default::default()
            },
            256,
            None,
        )?;
        let wasm = v.wasm.clone();
        let started = Instant::now();
        tokio::task::spawn_blocking(move || runtime.compile(&wasm)).await??;
        let compile_ms = started.elapsed().as_secs_f64() * 1000.0;

        let manifest = std::fs::read_to_string(v.dir.join("ucms-plugin.toml"))?;
        // The AOT build is the same plugin under another id, so both can be installed.
        let (manifest, id) = if i > 0 && variants[..i].iter().any(|o| o.id == v.id) {
            let id = format!("{}-aot", v.id);
            (
                manifest.replace(&format!("id = \"{}\"", v.id), &format!("id = \"{id}\"")),
                id,
            )
        } else {
            (manifest, v.id.clone())
        };
        let source = ucms::plugins::PluginSource::new(
            manifest,
            v.wasm.clone(),
            v.dir.display().to_string(),
        )?;
        site.plugins
            .apply(source, ucms::plugins::ApplyOptions::default())
            .await
            .with_context(|| format!("installing {}", v.label))?;
        let (mean_us, p50_us, p99_us) = per_call(&site, &id, cli.calls.min(2000)).await?;
        rows.push((v, id, compile_ms, mean_us, p50_us, p99_us));
    }

    let addr: SocketAddr = serve_site(&site).await?;
    println!(
        "\nHTTP load: {} connections, {} s warm-up + {} s measured per plugin, driven from a separate process",
        cli.connections, cli.warmup, cli.seconds
    );
    let mut measured = Vec::new();
    for (v, id, compile_ms, mean_us, p50_us, p99_us) in rows {
        let path = format!("/api/{id}/greet?name=Ada");
        let answer = fetch_path(addr, &path).await?;
        anyhow::ensure!(
            answer == r#"{"greeting":"Hello, Ada!"}"#,
            "{} answers {answer}",
            v.label
        );
        let report: Report = drive_process_path(addr, &path, cli)?;
        let peak = peak_memory(&site, &id).await?;
        measured.push((v, compile_ms, mean_us, p50_us, p99_us, report, peak));
    }

    println!("\nevery plugin answers {{\"greeting\":\"Hello, Ada!\"}}\n");
    println!(
        "{:<18} {:>10} {:>10} {:>11} {:>9} {:>14} {:>9} {:>10} {:>9} {:>7}",
        "hello in",
        "size KiB",
        "build s",
        "compile ms",
        "peak MiB",
        "instance+call",
        "p99 µs",
        "req/s",
        "p99 µs",
        "errors"
    );
    let base_rps = measured.first().map(|m| m.5.rps).unwrap_or(1.0);
    let base_call = measured.first().map(|m| m.2).unwrap_or(1.0);
    for (v, compile_ms, mean_us, _p50, p99_us, report, peak) in &measured {
        println!(
            "{:<18} {:>10} {:>10} {:>11.0} {:>9.1} {:>11.0} µs {:>9.0} {:>10.0} {:>9} {:>7}",
            v.label,
            v.wasm.len().div_ceil(1024),
            v.build_seconds
                .map(|s| format!("{s:.1}"))
                .unwrap_or_else(|| "-".into()),
            compile_ms,
            *peak as f64 / (1024.0 * 1024.0),
            mean_us,
            p99_us,
            report.rps,
            report.p99_us,
            report.errors
        );
    }
    println!("\nratios to rust:");
    for (v, _, mean_us, _, _, report, _) in &measured {
        println!(
            "  {:<18} instance+call x{:.1}, req/s x{:.2}",
            v.label,
            mean_us / base_call,
            report.rps / base_rps
        );
    }
    site.db.close().await;
    Ok(())
}

/// Mean, p50 and p99 of a fresh instance + one call of GET /greet, without HTTP, in µs.
async fn per_call(site: &ucms::Site, id: &str, calls: usize) -> anyhow::Result<(f64, f64, f64)> {
    let slot = site.plugins.get(id).context("installed")?;
    let plugin = slot.runnable().context("enabled")?.clone();
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
    for _ in 0..(calls / 10).max(10) {
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
    Ok((
        started.elapsed().as_secs_f64() * 1e6 / calls as f64,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
    ))
}

/// `ucms_plugin_memory_peak_bytes` of the plugin, from /metrics.
async fn peak_memory(site: &ucms::Site, id: &str) -> anyhow::Result<u64> {
    let request = http::Request::get("/metrics").body(axum::body::Body::empty())?;
    let response = tower::ServiceExt::oneshot(site.router(), request).await?;
    let text = String::from_utf8(response.into_body().collect().await?.to_bytes().to_vec())?;
    let needle = format!("plugin=\"{id}\"");
    Ok(text
        .lines()
        .find(|l| l.starts_with("ucms_plugin_memory_peak_bytes") && l.contains(&needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64)
}
