//! `ucms plugin dev`: build a plugin, run it in a local site, and swap every new build in
//! without restarting the site.
//!
//! The loop: build (any language, [`crate::authoring::build_plugin`]); install the result as an
//! upgrade to a development version (`0.1.0-dev.N`, one more than the installed one), through
//! the same journaled lifecycle as any install, so the plugin's `upgrade` hook runs and the new
//! version is published in one snapshot swap: requests already running finish on the version
//! they started on. Then watch the sources and the manifest; on a change, do it again. A build
//! or install that fails prints why and leaves the last good version serving.
//!
//! The site is started in this process (data in `<plugin>/.ucms-dev`, serving on `--listen`),
//! or, with `--attach`, is the one in `--data` that a `ucms serve` elsewhere runs: the install
//! goes into its database and that server picks it up within a second (`PluginManager::sync`).
//!
//! Whether an unsigned local build may run at all is decided in one place, [`source`], so an
//! operator policy can take that decision over.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::Site;
use crate::authoring::{self, BuildOptions};
use crate::config::{Config, DataDir};
use crate::plugins::{ApplyOptions, PluginSource};

/// The development rule: a plugin folder built on this machine, unsigned, may be installed when
/// the site's policy allows unsigned plugins (`[policy.packages] allow-unsigned`, the default).
/// The plugin manager judges the installed plugin against the whole policy as it loads it.
pub fn source(dir: &Path, site: &Site) -> anyhow::Result<PluginSource> {
    source_if(
        dir,
        site.plugins
            .policy()
            .current()
            .rules
            .packages
            .allow_unsigned,
    )
}

/// [`source`], with the policy's answer given.
pub fn source_if(dir: &Path, allow_unsigned: bool) -> anyhow::Result<PluginSource> {
    if !allow_unsigned {
        bail!(
            "this site does not run unsigned local plugins ([policy.packages] allow-unsigned = false)\n  hint: develop against a site that allows them (the default), or pack and sign the plugin"
        );
    }
    Ok(PluginSource::from_path(
        dir,
        &ucms_package::trust::TrustStore::new(),
        true,
    )?)
}

/// What `ucms plugin dev` was asked.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    /// Install into the site in `data` that another process serves, instead of starting one.
    pub attach: bool,
    pub build: BuildOptions,
}

/// The development version after `installed`: `BASE-dev.N`, N one more than the installed
/// development version of the same base, else 1.
pub fn next_dev_version(
    base: &semver::Version,
    installed: Option<&semver::Version>,
) -> semver::Version {
    let previous = installed
        .filter(|v| v.major == base.major && v.minor == base.minor && v.patch == base.patch)
        .and_then(|v| v.pre.as_str().strip_prefix("dev."))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let mut version = base.clone();
    version.pre =
        semver::Prerelease::new(&format!("dev.{}", previous + 1)).expect("a valid pre-release");
    version.build = semver::BuildMetadata::EMPTY;
    version
}

/// `source` with its manifest's version set to `version`.
fn with_version(source: PluginSource, version: &semver::Version) -> anyhow::Result<PluginSource> {
    let mut table: toml::Table = source
        .manifest_text
        .parse()
        .context("the manifest is not valid TOML")?;
    table.insert("version".into(), toml::Value::String(version.to_string()));
    let text = format!(
        "# Installed by `ucms plugin dev` from {}\n{}",
        source.origin.to_source(),
        toml::to_string(&table)?
    );
    let mut changed = PluginSource::new(text, source.wasm, source.origin.to_source())?;
    changed.assets = source.assets;
    changed.origin = source.origin;
    Ok(changed)
}

fn say(message: impl std::fmt::Display) {
    eprintln!("[dev] {message}");
}

/// Builds and installs the plugin once; prints what happened. `Ok(false)` when the build or the
/// install failed (the message is printed) and the previous version still serves.
async fn build_and_swap(site: &Site, options: &DevOptions, known: &mut Option<String>) -> bool {
    let started = Instant::now();
    let built = match authoring::build_plugin(&options.dir, &options.build).await {
        Ok(built) => built,
        Err(error) => {
            say(format!("build failed: {error:#}"));
            say(still_serving(site, &options.dir, known.as_deref()));
            return false;
        }
    };
    let swapped = Instant::now();
    let result = async {
        let source = source(&options.dir, site)?;
        let id = source.manifest.id.to_string();
        let installed = site
            .plugins
            .stored_versions()
            .await?
            .get(&id)
            .and_then(|v| semver::Version::parse(v).ok());
        let version = next_dev_version(&source.manifest.version, installed.as_ref());
        let source = with_version(source, &version)?;
        site.plugins
            .apply(
                source,
                ApplyOptions {
                    actor: Some("dev".into()),
                    // Going from a release to its development versions is a downgrade in semver.
                    allow_downgrade: true,
                },
            )
            .await?;
        anyhow::Ok((id, version))
    }
    .await;
    match result {
        Ok((id, version)) => {
            *known = Some(id.clone());
            say(format!(
                "swapped in {id} {version} ({} KiB; build {:.1} s, check {:.1} s, install {} ms)",
                built.size.div_ceil(1024),
                built.build_time.as_secs_f64(),
                built.check_time.as_secs_f64(),
                swapped.elapsed().as_millis(),
            ));
            let _ = started;
            true
        }
        Err(error) => {
            say(format!("install failed: {error:#}"));
            say(still_serving(site, &options.dir, known.as_deref()));
            false
        }
    }
}

/// What serves while the new build can't: `known` is the id of the last build swapped in (the
/// manifest may be the thing that is broken).
fn still_serving(site: &Site, dir: &Path, known: Option<&str>) -> String {
    let id = match known {
        Some(id) => id.to_string(),
        None => ucms_manifest::Manifest::load(dir)
            .map(|m| m.id.to_string())
            .unwrap_or_default(),
    };
    match site.plugins.get(&id) {
        Some(slot) => format!(
            "still serving {id} {} (the last good build)",
            slot.manifest.version
        ),
        None => "nothing is serving yet; fix the error and save".to_string(),
    }
}

/// Whether a changed path should trigger a rebuild: sources and the manifest, not build output.
fn relevant(dir: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(dir) else {
        return false;
    };
    let mut components = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let Some(first) = components.next() else {
        return false;
    };
    const IGNORED: [&str; 9] = [
        "target",
        "node_modules",
        ".ucms-build",
        ".ucms-dev",
        ".git",
        ".venv",
        "plugin.wasm",
        "package-lock.json",
        "Cargo.lock",
    ];
    if IGNORED.contains(&first.as_str()) {
        return false;
    }
    let name = relative
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Editors' swap and backup files, Python's caches.
    !(name.starts_with('.')
        || name.ends_with('~')
        || relative
            .components()
            .any(|c| c.as_os_str() == "__pycache__"))
}

/// Runs the dev loop until Ctrl-C.
pub async fn run(config: Config, data: DataDir, options: DevOptions) -> anyhow::Result<()> {
    let dir = options
        .dir
        .canonicalize()
        .with_context(|| format!("no plugin folder at {}", options.dir.display()))?;
    let options = DevOptions { dir, ..options };
    authoring::Lang::detect(&options.dir)?;
    let data = if options.attach {
        if !data.root().join("ucms.db").exists() && config.database.url.is_none() {
            bail!(
                "there is no site in {} to attach to\n  hint: point --data at the folder a `ucms serve` uses, or drop --attach to start a site",
                data.root().display()
            );
        }
        data
    } else {
        DataDir::new(options.dir.join(".ucms-dev"))
    };
    let site = Site::open(config, data.clone()).await?;
    let stop = CancellationToken::new();
    let server = if options.attach {
        say(format!(
            "attached to the site in {}: its server picks up each build within a second",
            data.root().display()
        ));
        None
    } else {
        site.start_background(stop.clone());
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let addr = listener.local_addr()?;
        say(format!(
            "a development site in {} is serving on http://{addr}",
            data.root().display()
        ));
        let router = site.router();
        let server_stop = stop.clone();
        Some(tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { server_stop.cancelled().await })
            .await
        }))
    };

    let (tx, mut rx) = tokio::sync::mpsc::channel::<PathBuf>(256);
    let watched = options.dir.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            for path in event.paths {
                if relevant(&watched, &path) {
                    let _ = tx.try_send(path);
                }
            }
        }
    })
    .context("cannot watch the plugin's files")?;
    use notify::Watcher as _;
    watcher
        .watch(&options.dir, notify::RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", options.dir.display()))?;
    say(format!("watching {} (Ctrl-C stops)", options.dir.display()));

    let mut known = None;
    build_and_swap(&site, &options, &mut known).await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            changed = rx.recv() => {
                let Some(first) = changed else { break };
                // Editors write in bursts: wait for a quiet moment, then build once.
                let mut last = first;
                while let Ok(Some(more)) = tokio::time::timeout(Duration::from_millis(250), rx.recv()).await {
                    last = more;
                }
                let shown = last.strip_prefix(&options.dir).unwrap_or(&last).display().to_string();
                say(format!("{shown} changed; rebuilding"));
                build_and_swap(&site, &options, &mut known).await;
                // Changes made while building (the build's own files are ignored) start the next round.
            }
        }
    }
    say("stopping");
    stop.cancel();
    if let Some(server) = server {
        let _ = server.await;
    }
    site.db.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_versions_count_up() {
        let base = semver::Version::new(0, 1, 0);
        assert_eq!(next_dev_version(&base, None).to_string(), "0.1.0-dev.1");
        let installed = semver::Version::parse("0.1.0-dev.7").unwrap();
        assert_eq!(
            next_dev_version(&base, Some(&installed)).to_string(),
            "0.1.0-dev.8"
        );
        // A release, or another base, starts again at 1.
        let release = semver::Version::new(0, 1, 0);
        assert_eq!(
            next_dev_version(&base, Some(&release)).to_string(),
            "0.1.0-dev.1"
        );
        let other = semver::Version::parse("0.2.0-dev.3").unwrap();
        assert_eq!(
            next_dev_version(&base, Some(&other)).to_string(),
            "0.1.0-dev.1"
        );
        assert!(next_dev_version(&base, Some(&installed)) > installed);
    }

    #[test]
    fn only_sources_trigger_a_rebuild() {
        let dir = Path::new("/p");
        assert!(relevant(dir, Path::new("/p/src/lib.rs")));
        assert!(relevant(dir, Path::new("/p/ucms-plugin.toml")));
        assert!(!relevant(
            dir,
            Path::new("/p/target/wasm32-wasip2/release/x.wasm")
        ));
        assert!(!relevant(dir, Path::new("/p/plugin.wasm")));
        assert!(!relevant(dir, Path::new("/p/node_modules/x/index.js")));
        assert!(!relevant(dir, Path::new("/p/src/.lib.rs.swp")));
        assert!(!relevant(
            dir,
            Path::new("/p/src/__pycache__/app.cpython-311.pyc")
        ));
    }
}
