//! Install time from a registry, by phase, for a 2 MB component and for `hello` side by side.
//!
//! A registry runs in this process on a socket (SQLite and a blob folder, as `ucms registry
//! serve` runs it); both plugins are packed, signed and published to it. Each run opens a fresh
//! site (fresh data directory, so the compile cache is cold) that trusts the registry, then
//! installs by name exactly as `ucms plugin install NAME --yes` does: fetch the signed index and
//! resolve, download, verify the signature and digest, unpack, compile, run the install hook and
//! switch in one transaction. The floor is wasmtime compiling the same component with the site's
//! engine, nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use semver::VersionReq;
use ucms::plugins::registry::{self as install, Progress};
use ucms_package::archive::{self, Contents};
use ucms_package::keys::SecretKey;
use ucms_package::signature::PackageSignature;
use ucms_registry::{Registry, RegistryConfig};

struct Published {
    id: &'static str,
    wasm: Vec<u8>,
    archive_size: usize,
}

/// Builds the `bulky` guest (about 2 MB of generated code) and returns its bytes and folder.
fn build_bulky() -> anyhow::Result<(Vec<u8>, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the bench crate is inside the workspace")?
        .to_path_buf();
    let target = root.join("target/guests");
    eprintln!("building the bulky guest (about 30 s the first time)");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["build", "--quiet", "-p", "bulky", "--profile", "guest"])
        .args(["--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .context("cannot run cargo to build the bulky guest")?;
    anyhow::ensure!(
        status.success(),
        "building the bulky guest failed (is the wasm32-wasip2 target installed? rustup target add wasm32-wasip2)"
    );
    let wasm_path = target.join("wasm32-wasip2/guest/bulky.wasm");
    let wasm = std::fs::read(&wasm_path)
        .with_context(|| format!("cannot read {}", wasm_path.display()))?;
    Ok((wasm, root.join("bench/bulky")))
}

fn pack(dir: &Path, wasm: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let manifest_text = std::fs::read_to_string(dir.join("ucms-plugin.toml"))?;
    let manifest = ucms_manifest::Manifest::parse(&manifest_text)?;
    Ok(archive::pack(&Contents {
        manifest,
        manifest_text,
        wasm,
        readme: None,
        changelog: None,
        assets: Default::default(),
    }))
}

/// When each phase of one install ended, as the install reports it.
#[derive(Default)]
struct Phases {
    start: Option<Instant>,
    downloaded: Option<Instant>,
    verified: Option<Instant>,
    unpacked: Option<Instant>,
}

impl Progress for Phases {
    fn downloading(&mut self, _id: &str, done: u64, total: Option<u64>) {
        if Some(done) == total {
            self.downloaded = Some(Instant::now());
        }
    }

    fn step(&mut self, _id: &str, message: &str) {
        if message.starts_with("verified") {
            self.verified = Some(Instant::now());
        } else if message.starts_with("compiling") {
            self.unpacked = Some(Instant::now());
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Sample {
    plan: Duration,
    download: Duration,
    verify: Duration,
    unpack: Duration,
    compile_switch: Duration,
    total: Duration,
    compile_floor: Duration,
}

async fn install_once(url: &str, registry_key: &str, plugin: &Published) -> anyhow::Result<Sample> {
    let tmp = tempfile::tempdir()?;
    let mut config = ucms::config::Config::default();
    config.log.level = "warn".into();
    config.registry.url = Some(url.to_string());
    config.trust.registries = vec![registry_key.to_string()];
    let site =
        ucms::Site::open(config, ucms::config::DataDir::new(tmp.path().join("data"))).await?;

    let t0 = Instant::now();
    let mut client = install::client(&site.plugins, None)?;
    let plan = install::plan(
        &site.plugins,
        &mut client,
        vec![(plugin.id.to_string(), VersionReq::STAR)],
        Default::default(),
    )
    .await?;
    let planned = Instant::now();
    let mut phases = Phases {
        start: Some(planned),
        ..Phases::default()
    };
    let installed = install::apply(&site.plugins, &client, &plan, None, &mut phases).await?;
    let end = Instant::now();
    anyhow::ensure!(
        installed.len() == 1 && installed[0].id == plugin.id,
        "expected {} to be installed",
        plugin.id
    );
    // It serves.
    let path = if plugin.id == "bulky" {
        "/api/bulky/mix?n=4242&x=7"
    } else {
        "/api/hello/greet"
    };
    let response = tower::ServiceExt::oneshot(
        site.router(),
        http::Request::get(path).body(axum::body::Body::empty())?,
    )
    .await?;
    anyhow::ensure!(
        response.status() == 200,
        "{} answered {}",
        plugin.id,
        response.status()
    );

    let floor_start = Instant::now();
    wasmtime::component::Component::new(site.runtime.engine(), &plugin.wasm)?;
    let compile_floor = floor_start.elapsed();
    site.db.close().await;

    let at = |t: Option<Instant>, what: &str| {
        t.with_context(|| format!("the install never reported {what}"))
    };
    let start = phases.start.expect("set above");
    let downloaded = at(phases.downloaded, "the end of its download")?;
    let verified = at(phases.verified, "verification")?;
    let unpacked = at(phases.unpacked, "unpacking")?;
    Ok(Sample {
        plan: planned - t0,
        download: downloaded - start,
        verify: verified - downloaded,
        unpack: unpacked - verified,
        compile_switch: end - unpacked,
        total: end - t0,
        compile_floor,
    })
}

fn median(samples: &[Sample], f: impl Fn(&Sample) -> Duration) -> Duration {
    let mut v: Vec<Duration> = samples.iter().map(f).collect();
    v.sort();
    v[v.len() / 2]
}

pub async fn run(runs: usize) -> anyhow::Result<()> {
    ucms::install_crypto_provider();
    let (bulky_wasm, bulky_dir) = build_bulky()?;
    let hello = ucms_test_components::HELLO;

    let tmp = tempfile::tempdir()?;
    let registry = Registry::open(RegistryConfig::new(
        tmp.path().join("registry"),
        ucms::wit::SUPPORTED_API.to_vec(),
    ))
    .await?;
    let registry: Arc<Registry> = registry;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let router = registry.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    registry.add_publisher("ucms").await?;
    let key = SecretKey::generate("ucms");
    registry.add_key("ucms", &key.public()).await?;

    let mut plugins = Vec::new();
    for (id, wasm, dir) in [
        ("hello", hello.wasm_bytes(), PathBuf::from(hello.dir)),
        ("bulky", bulky_wasm, bulky_dir),
    ] {
        let archive = pack(&dir, wasm.clone())?;
        let signature = PackageSignature::sign(&key, &archive);
        registry
            .publish("ucms", &archive, &signature, None)
            .await
            .with_context(|| format!("publishing {id}"))?;
        plugins.push(Published {
            id,
            wasm,
            archive_size: archive.len(),
        });
    }
    let registry_key = registry.public_key().public_key.clone();

    println!(
        "install from a registry on a socket into a fresh SQLite site (cold compile cache), {runs} runs each, median"
    );
    println!(
        "{:<7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>15} {:>9} {:>12}",
        "plugin",
        "wasm",
        "package",
        "resolve",
        "download",
        "verify",
        "unpack",
        "compile+switch",
        "total",
        "wasmtime only"
    );
    let mut totals = Vec::new();
    for plugin in &plugins {
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            samples.push(install_once(&url, &registry_key, plugin).await?);
        }
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        let total = median(&samples, |s| s.total);
        let floor = median(&samples, |s| s.compile_floor);
        println!(
            "{:<7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>15} {:>9} {:>12}",
            plugin.id,
            format!("{} KB", plugin.wasm.len() / 1024),
            format!("{} KB", plugin.archive_size / 1024),
            ms(median(&samples, |s| s.plan)),
            ms(median(&samples, |s| s.download)),
            ms(median(&samples, |s| s.verify)),
            ms(median(&samples, |s| s.unpack)),
            ms(median(&samples, |s| s.compile_switch)),
            ms(total),
            ms(floor),
        );
        totals.push((plugin.id, total, floor));
    }
    println!();
    for (id, total, floor) in &totals {
        println!(
            "{id}: install / wasmtime compile alone = {:.2}",
            total.as_secs_f64() / floor.as_secs_f64()
        );
    }
    if let [(_, small, _), (_, big, _)] = totals.as_slice() {
        println!(
            "bulky / hello install time = {:.2}",
            big.as_secs_f64() / small.as_secs_f64()
        );
    }
    Ok(())
}
