use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use ucms_package::keys::{PublicKeyFile, SecretKey};
use ucms_package::signature::PackageSignature;

use super::{GlobalArgs, confirm, print_json};
use crate::Site;
use crate::authoring;
use crate::config::Config;
use crate::plugins::registry::{self as reg, Plan, Progress};
use crate::plugins::{ApplyOptions, PluginSource};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List installed plugins.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Install plugins by name from a registry (`hello`, `hello@^0.1`), or from a folder or a
    /// .ucpkg file. Shows the capabilities each asks for and asks for consent.
    Install {
        /// Plugin names with optional requirements, or paths.
        #[arg(required_unless_present = "locked")]
        targets: Vec<String>,
        /// Install exactly what ucms.lock records (copied from another site, say), checking
        /// every package against the digest recorded there.
        #[arg(long, conflicts_with = "targets")]
        locked: bool,
        /// The registry to install from (default: [registry] url in ucms.toml).
        #[arg(long)]
        registry: Option<String>,
        /// Approve without asking.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Allow replacing a newer installed version with an older one.
        #[arg(long)]
        allow_downgrade: bool,
    },
    /// Upgrade plugins (all installed ones without names) to their newest compatible versions.
    Upgrade {
        ids: Vec<String>,
        #[arg(long)]
        registry: Option<String>,
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Return a plugin to the version it had before its last install or upgrade.
    Rollback { id: String },
    /// Remove a plugin. Its stored data is kept (--keep-data, the default) unless --purge.
    Remove {
        id: String,
        /// Keep the plugin's stored data (the default).
        #[arg(long, conflicts_with = "purge")]
        keep_data: bool,
        /// Also delete the plugin's stored data.
        #[arg(long)]
        purge: bool,
    },
    /// Enable a disabled plugin.
    Enable { id: String },
    /// Disable a plugin: it keeps its data but serves nothing and receives no events.
    Disable { id: String },
    /// Create a new plugin that builds, passes its own tests and runs as it is.
    New {
        /// The plugin id (also the crate or package name and URL prefix), e.g. `my-plugin`.
        name: String,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The language: rust, ts (TypeScript) or python.
        #[arg(long, default_value = "rust")]
        lang: String,
        /// What to start from: default, rest-resource, event-subscriber, webhook-relay,
        /// admin-page (the last four in Rust).
        #[arg(long, default_value = "default")]
        template: String,
        /// Use this local checkout of the language's SDK (sdk/rust, sdk/ts or sdk/python)
        /// instead of the published one.
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Build a plugin (Rust, TypeScript or Python) into plugin.wasm and check it against its
    /// manifest.
    Build {
        /// The plugin's folder (default: the current folder).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The cargo profile to build with (Rust).
        #[arg(long, default_value = "release")]
        profile: String,
        /// Compile the JavaScript engine's interpreter ahead of time with weval (TypeScript):
        /// faster code, a larger component, a slower build.
        #[arg(long)]
        aot: bool,
    },
    /// Build the plugin, run it in a local site, and swap each new build in on every change to
    /// its sources or manifest, without restarting the site.
    Dev {
        /// The plugin's folder (default: the current folder).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where the development site listens (its data is in DIR/.ucms-dev).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Install into the site in --data, which a `ucms serve` elsewhere is serving, instead
        /// of starting one.
        #[arg(long)]
        attach: bool,
        /// The cargo profile to build with (Rust).
        #[arg(long, default_value = "release")]
        profile: String,
    },
    /// Build the plugin and run its tests (cargo test, node --test, or python -m unittest)
    /// against a real host; extra arguments go to the test runner.
    Test {
        /// The plugin's folder (default: the current folder).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Arguments for the test runner.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run a built plugin in a throw-away site driven by JSON lines on stdin (what the plugin
    /// test kits start; see docs/plugin-testing.md).
    Harness {
        /// The plugin's folder (default: the current folder).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Build it first.
        #[arg(long)]
        build: bool,
        /// A setting, as KEY=VALUE (VALUE is JSON, or else a string). Repeatable.
        #[arg(long = "setting", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// A secret, as NAME=VALUE. Repeatable.
        #[arg(long = "secret", value_name = "NAME=VALUE")]
        secrets: Vec<String>,
        /// Let the plugin's outbound requests reach loopback and private addresses.
        #[arg(long)]
        allow_private_egress: bool,
    },
    /// Pack a built plugin folder into NAME-VERSION.ucpkg (reproducibly), after checking it.
    Pack {
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where to write the package (default: the folder itself).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Make a new Ed25519 publisher key (the secret file is written with mode 0600).
    Keygen {
        /// The publisher this key signs for.
        #[arg(long)]
        publisher: String,
        /// The secret key file; the public key goes beside it as FILE.pub.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a package with a publisher key: writes PACKAGE.sig.
    Sign {
        package: PathBuf,
        /// The publisher's secret key file (`ucms plugin keygen` writes it).
        #[arg(long)]
        key: PathBuf,
    },
    /// Publish a signed package to a registry.
    Publish {
        /// The package; its signature is read from PACKAGE.sig.
        package: PathBuf,
        /// The registry's base URL.
        #[arg(long)]
        registry: String,
        /// The publisher token the registry issued.
        #[arg(long, env = "UCMS_REGISTRY_TOKEN", hide_env_values = true)]
        token: String,
        /// Register this public key with the registry if it doesn't know it yet.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Yank a published version (new installs skip it; existing ones keep it), or undo that.
    Yank {
        /// `id@version`
        target: String,
        /// The registry's base URL.
        #[arg(long)]
        registry: String,
        /// The publisher token the registry issued.
        #[arg(long, env = "UCMS_REGISTRY_TOKEN", hide_env_values = true)]
        token: String,
        /// Un-yank instead.
        #[arg(long)]
        undo: bool,
    },
    /// Search a registry.
    Search {
        query: String,
        #[arg(long)]
        registry: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(
    global: &GlobalArgs,
    config: Config,
    command: PluginCommand,
) -> anyhow::Result<()> {
    match command {
        PluginCommand::New {
            name,
            dir,
            lang,
            template,
            sdk_path,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let lang = authoring::Lang::parse(&lang)?;
            let template = authoring::Template::parse(&template)?;
            authoring::new_plugin(&authoring::NewOptions {
                name: &name,
                dir: &dir,
                lang,
                template,
                sdk_path: sdk_path.as_deref(),
            })?;
            eprintln!(
                "created the {} plugin '{name}' ({} template) in {}",
                lang.name(),
                template.name(),
                dir.display()
            );
            let install = match lang {
                authoring::Lang::Rust => "",
                authoring::Lang::TypeScript => "npm install && ",
                authoring::Lang::Python => {
                    "python3 -m venv .venv && .venv/bin/pip install -e . && "
                }
            };
            eprintln!(
                "next: cd {} && {install}ucms plugin test && ucms plugin dev",
                dir.display()
            );
            return Ok(());
        }
        PluginCommand::Build { dir, profile, aot } => {
            let built =
                authoring::build_plugin(&dir, &authoring::BuildOptions { profile, aot }).await?;
            eprintln!(
                "built {} {} ({}) → {} ({} KiB; {:.1} s, checked in {:.1} s)",
                built.manifest.id,
                built.manifest.version,
                built.lang.name(),
                built.wasm_path.display(),
                built.size.div_ceil(1024),
                built.build_time.as_secs_f64(),
                built.check_time.as_secs_f64(),
            );
            for line in built.manifest.capabilities.describe() {
                eprintln!("  capability  {line}");
            }
            for route in &built.manifest.routes {
                eprintln!(
                    "  route       {} /api/{}{}",
                    route.method, built.manifest.id, route.path
                );
            }
            return Ok(());
        }
        PluginCommand::Pack { dir, out } => return pack(&dir, out.as_deref()).await,
        PluginCommand::Dev {
            dir,
            listen,
            attach,
            profile,
        } => {
            return crate::dev::run(
                config,
                global.data_dir(),
                crate::dev::DevOptions {
                    dir,
                    listen,
                    attach,
                    build: authoring::BuildOptions {
                        profile,
                        aot: false,
                    },
                },
            )
            .await;
        }
        PluginCommand::Test { dir, args } => return test(&dir, &args).await,
        PluginCommand::Harness {
            dir,
            build,
            settings,
            secrets,
            allow_private_egress,
        } => {
            let dir = authoring::plugin_dir(&dir);
            if build {
                // The build's progress goes to stderr; stdout carries only the protocol.
                authoring::build_plugin(&dir, &authoring::BuildOptions::default()).await?;
            }
            crate::devlog::enable();
            let options = crate::harness::HarnessOptions {
                settings: parse_settings(&settings)?,
                secrets: secrets
                    .iter()
                    .map(|s| {
                        s.split_once('=')
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .with_context(|| format!("'{s}' is not NAME=VALUE"))
                    })
                    .collect::<anyhow::Result<_>>()?,
                allow_private_egress,
            };
            let harness = crate::harness::Harness::open(&dir, options).await?;
            return crate::harness::serve_stdio(harness).await;
        }
        PluginCommand::Keygen { publisher, out } => {
            let valid = !publisher.is_empty()
                && publisher.len() <= 64
                && publisher
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !valid {
                anyhow::bail!(
                    "'{publisher}' is not a publisher name: use up to 64 lower-case letters, digits, '-' and '_'"
                );
            }
            let key = SecretKey::generate(&publisher);
            key.save(&out)?;
            eprintln!(
                "created key {} for publisher '{publisher}'\n  secret (keep it private): {}\n  public (share it): {}",
                key.public().id(),
                out.display(),
                ucms_package::keys::public_path(&out).display()
            );
            return Ok(());
        }
        PluginCommand::Sign { package, key } => {
            let key = SecretKey::load(&key)?;
            let bytes = std::fs::read(&package)
                .with_context(|| format!("cannot read {}", package.display()))?;
            let contents =
                ucms_package::archive::unpack(&bytes, &ucms_package::archive::Limits::default())?;
            if contents.manifest.publisher != key.publisher() {
                anyhow::bail!(
                    "the package is published by '{}', but the key is for '{}'\n  hint: sign with the publisher's own key",
                    contents.manifest.publisher,
                    key.publisher()
                );
            }
            let signature = PackageSignature::sign(&key, &bytes);
            let sig_path = PathBuf::from(format!("{}.sig", package.display()));
            std::fs::write(&sig_path, signature.to_json())?;
            eprintln!(
                "signed {} ({}) with key {} → {}",
                package.display(),
                signature.digest,
                signature.key_id,
                sig_path.display()
            );
            return Ok(());
        }
        PluginCommand::Publish {
            package,
            registry,
            token,
            public_key,
        } => return publish(global, &package, &registry, &token, public_key.as_deref()).await,
        PluginCommand::Yank {
            target,
            registry,
            token,
            undo,
        } => {
            let (id, version) = target
                .split_once('@')
                .context("name the version: ucms plugin yank ID@VERSION")?;
            let client = ucms_registry::client::RegistryClient::new(
                &registry,
                &global.data_dir().registry_cache(),
                ucms_package::trust::TrustStore::new(),
            )?;
            client.set_yanked(&token, id, version, !undo).await?;
            eprintln!(
                "{} {id} {version}",
                if undo { "un-yanked" } else { "yanked" }
            );
            return Ok(());
        }
        _ => {}
    }

    let site = Site::open(config, global.data_dir()).await?;
    let result = manage(&site, command).await;
    site.db.close().await;
    result
}

async fn manage(site: &Site, command: PluginCommand) -> anyhow::Result<()> {
    let actor = Some("cli");
    match command {
        PluginCommand::List { json } => {
            let plugins = site.plugins.list();
            if json {
                print_json(&plugins)?;
            } else if plugins.is_empty() {
                eprintln!(
                    "no plugins installed; install one with `ucms plugin install NAME` or `ucms plugin install PATH`"
                );
            } else {
                for p in plugins {
                    println!(
                        "{:<20} {:<10} {:<9} {}",
                        p.id,
                        p.version,
                        p.state.label(),
                        p.description
                    );
                }
            }
        }
        PluginCommand::Install {
            targets,
            locked: true,
            registry,
            yes,
            ..
        } => {
            debug_assert!(targets.is_empty());
            let locked = reg::locked_wants(&site.plugins)?;
            if locked.wants.is_empty() {
                eprintln!("nothing to do: everything ucms.lock records is installed");
                return Ok(());
            }
            let registry = registry.or(locked.registry);
            install_from_registry(
                site,
                registry.as_deref(),
                locked.wants,
                BTreeSet::new(),
                yes,
            )
            .await?;
        }
        PluginCommand::Install {
            targets,
            registry,
            yes,
            allow_downgrade,
            ..
        } => {
            let paths: Vec<&String> = targets.iter().filter(|t| Path::new(t).exists()).collect();
            if !paths.is_empty() && paths.len() != targets.len() {
                anyhow::bail!("install either paths or names, not both at once");
            }
            if paths.is_empty() {
                let wants = targets
                    .iter()
                    .map(|t| reg::parse_want(t))
                    .collect::<Result<Vec<_>, _>>()?;
                install_from_registry(site, registry.as_deref(), wants, BTreeSet::new(), yes)
                    .await?;
            } else {
                let packages = paths.iter().any(|p| p.ends_with(".ucpkg"));
                let trust = local_trust(site, registry.as_deref(), packages).await?;
                for path in paths {
                    let source = PluginSource::from_path(
                        Path::new(path),
                        &trust,
                        site.plugins
                            .policy()
                            .current()
                            .rules
                            .packages
                            .allow_unsigned,
                    )?;
                    install_local(site, source, yes, allow_downgrade).await?;
                }
            }
        }
        PluginCommand::Upgrade { ids, registry, yes } => {
            let upgrade: BTreeSet<String> = if ids.is_empty() {
                site.plugins.installed_versions().into_keys().collect()
            } else {
                ids.into_iter().collect()
            };
            install_from_registry(site, registry.as_deref(), Vec::new(), upgrade, yes).await?;
        }
        PluginCommand::Rollback { id } => {
            let info = site.plugins.rollback(&id, actor).await?;
            eprintln!("rolled {id} back to {}", info.version);
        }
        PluginCommand::Remove { id, purge, .. } => {
            site.plugins.remove(&id, purge, actor).await?;
            eprintln!(
                "removed {id}{}",
                if purge {
                    " and its data"
                } else {
                    " (its data is kept; --purge deletes it)"
                }
            );
        }
        PluginCommand::Enable { id } => {
            site.plugins.set_enabled(&id, true, actor).await?;
            eprintln!("enabled {id}");
        }
        PluginCommand::Disable { id } => {
            site.plugins.set_enabled(&id, false, actor).await?;
            eprintln!("disabled {id}");
        }
        PluginCommand::Search {
            query,
            registry,
            json,
        } => {
            let client = reg::client(&site.plugins, registry.as_deref())?;
            let found = client.search(&query).await?;
            if json {
                print_json(&found)?;
            } else {
                let hits = found["packages"].as_array().cloned().unwrap_or_default();
                if hits.is_empty() {
                    eprintln!("nothing matches '{query}'");
                }
                for hit in hits {
                    let latest = &hit["latest"];
                    println!(
                        "{:<20} {:<10} {}",
                        latest["id"].as_str().unwrap_or_default(),
                        latest["version"].as_str().unwrap_or_default(),
                        latest["description"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        _ => unreachable!("handled before opening the site"),
    }
    Ok(())
}

async fn install_local(
    site: &Site,
    source: PluginSource,
    yes: bool,
    allow_downgrade: bool,
) -> anyhow::Result<()> {
    let m = &source.manifest;
    let installed = site.plugins.get(m.id.as_str());
    match &installed {
        Some(slot) => eprintln!(
            "{} {} → {} by {} asks to:",
            m.id, slot.manifest.version, m.version, m.publisher
        ),
        None => eprintln!("{} {} by {} asks to:", m.id, m.version, m.publisher),
    }
    let old: BTreeSet<String> = installed
        .map(|s| s.manifest.capabilities.describe().into_iter().collect())
        .unwrap_or_default();
    let capabilities = m.capabilities.describe();
    if capabilities.is_empty() {
        eprintln!("  (use no host capabilities)");
    }
    for line in capabilities {
        let mark = if !old.is_empty() && !old.contains(&line) {
            "+ "
        } else {
            "- "
        };
        eprintln!("  {mark}{line}");
    }
    for route in &m.routes {
        let access = match &route.access {
            ucms_manifest::Access::Public => "public".to_string(),
            ucms_manifest::Access::Permission(p) => format!("needs {}", m.qualified_permission(p)),
        };
        eprintln!(
            "  - serve {} /api/{}{} ({access})",
            route.method, m.id, route.path
        );
    }
    for sub in &m.subscriptions {
        eprintln!("  - receive events on '{}'", sub.topic);
    }
    if !confirm("Install and grant these?", yes)? {
        anyhow::bail!("not installed");
    }
    let info = site
        .plugins
        .apply(
            source,
            ApplyOptions {
                actor: Some("cli".into()),
                allow_downgrade,
            },
        )
        .await?;
    eprintln!("installed {} {}", info.id, info.version);
    Ok(())
}

fn print_plan(plan: &Plan) {
    eprintln!("from {}:", plan.registry);
    for c in &plan.changes {
        match &c.from {
            Some(from) => eprintln!(
                "  {} {} {from} → {} (by {})",
                c.action, c.id, c.to, c.publisher
            ),
            None => eprintln!(
                "  {} {} {} (by {}): {}",
                c.action, c.id, c.to, c.publisher, c.description
            ),
        }
        if c.action == "install" {
            for line in &c.capabilities {
                eprintln!("      asks to {line}");
            }
        } else {
            for line in &c.added_capabilities {
                eprintln!("      + now asks to {line}");
            }
            for line in &c.removed_capabilities {
                eprintln!("      - no longer asks to {line}");
            }
            if c.added_capabilities.is_empty() && c.removed_capabilities.is_empty() {
                eprintln!("      (the same capabilities as before)");
            }
        }
    }
}

/// The keys a local package may be signed by: `[trust]`, plus — when a registry is configured
/// (or named) — the publisher keys it endorses, as for an install from it.
async fn local_trust(
    site: &Site,
    registry: Option<&str>,
    packages: bool,
) -> anyhow::Result<ucms_package::trust::TrustStore> {
    let local = site.config.trust.store()?;
    if !packages || (registry.is_none() && site.config.registry.url.is_none()) {
        return Ok(local);
    }
    let mut client = reg::client(&site.plugins, registry)?;
    match client.refresh().await {
        Ok(_) => Ok(client.trust().clone()),
        Err(e) => {
            eprintln!(
                "warning: cannot read the key endorsements of {} ({e}); only keys in [trust] can sign the package",
                client.base_url()
            );
            Ok(local)
        }
    }
}

async fn install_from_registry(
    site: &Site,
    registry: Option<&str>,
    wants: Vec<(String, semver::VersionReq)>,
    upgrade: BTreeSet<String>,
    yes: bool,
) -> anyhow::Result<()> {
    let mut client = reg::client(&site.plugins, registry)?;
    let plan = reg::plan(&site.plugins, &mut client, wants, upgrade).await?;
    if plan.changes.is_empty() {
        eprintln!("nothing to do: everything asked for is installed and up to date");
        return Ok(());
    }
    print_plan(&plan);
    if !confirm("Apply these changes and grant these capabilities?", yes)? {
        anyhow::bail!("nothing was changed");
    }
    let mut progress = Bars::default();
    let done = reg::apply(&site.plugins, &client, &plan, Some("cli"), &mut progress).await?;
    for info in done {
        eprintln!("installed {} {}", info.id, info.version);
    }
    Ok(())
}

/// Download bars for the terminal.
#[derive(Default)]
struct Bars {
    bar: Option<(String, ProgressBar)>,
}

impl Progress for Bars {
    fn downloading(&mut self, id: &str, done: u64, total: Option<u64>) {
        let fresh = self.bar.as_ref().is_none_or(|(current, _)| current != id);
        if fresh {
            let bar = ProgressBar::new(total.unwrap_or(0));
            bar.set_style(
                ProgressStyle::with_template("  {msg:<20} {bar:30} {bytes}/{total_bytes}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(format!("downloading {id}"));
            self.bar = Some((id.to_string(), bar));
        }
        if let Some((_, bar)) = &self.bar {
            if let Some(total) = total {
                bar.set_length(total);
            }
            bar.set_position(done);
        }
    }

    fn step(&mut self, id: &str, message: &str) {
        if let Some((_, bar)) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!("  {id}: {message}");
    }
}

async fn pack(dir: &Path, out: Option<&Path>) -> anyhow::Result<()> {
    let contents = ucms_package::archive::read_folder(dir)?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_message("checking the component against the manifest");
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let checked = authoring::check_component(&contents.manifest, &contents.wasm).await;
    spinner.finish_and_clear();
    checked?;
    for page in &contents.manifest.admin_pages {
        let asset = page.entry.trim_start_matches("assets/");
        if !contents.assets.contains_key(asset) {
            anyhow::bail!(
                "the admin page {} names {}, which is not in the folder",
                page.path,
                page.entry
            );
        }
    }
    let bytes = ucms_package::archive::pack(&contents);
    let name =
        ucms_package::archive::file_name(contents.manifest.id.as_str(), &contents.manifest.version);
    let path = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join(&name));
    let path = if path.is_dir() {
        path.join(&name)
    } else {
        path
    };
    std::fs::write(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!(
        "packed {} ({} KiB, {})\n  next: ucms plugin sign {} --key KEY",
        path.display(),
        bytes.len().div_ceil(1024),
        ucms_package::signature::digest(&bytes),
        path.display()
    );
    Ok(())
}

async fn publish(
    global: &GlobalArgs,
    package: &Path,
    registry: &str,
    token: &str,
    public_key: Option<&Path>,
) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(package).with_context(|| format!("cannot read {}", package.display()))?;
    let sig_path = PathBuf::from(format!("{}.sig", package.display()));
    let signature = PackageSignature::from_json(
        &std::fs::read_to_string(&sig_path)
            .with_context(|| format!("cannot read the signature {}\n  hint: sign it first: ucms plugin sign {} --key KEY", sig_path.display(), package.display()))?,
    )
    .with_context(|| format!("{} is not a signature file", sig_path.display()))?;
    let public = public_key.map(PublicKeyFile::load).transpose()?;
    let client = ucms_registry::client::RegistryClient::new(
        registry,
        &global.data_dir().registry_cache(),
        ucms_package::trust::TrustStore::new(),
    )?;
    let entry = client
        .publish(token, bytes, &signature, public.as_ref())
        .await?;
    eprintln!(
        "published {} {} to {registry} ({})",
        entry.id, entry.version, entry.digest
    );
    Ok(())
}

/// `KEY=VALUE` settings: VALUE as JSON when it parses, else as a string.
fn parse_settings(settings: &[String]) -> anyhow::Result<toml::Table> {
    let mut table = toml::Table::new();
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .with_context(|| format!("'{setting}' is not KEY=VALUE"))?;
        let json: serde_json::Value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        let value = toml::Value::try_from(json)
            .with_context(|| format!("the setting {key} has no TOML form (null?)"))?;
        table.insert(key.to_string(), value);
    }
    Ok(table)
}

/// `ucms plugin test`: builds once, then runs the language's test runner with this binary as
/// the host the test kits start (`UCMS_BIN`), told the component is already built.
async fn test(dir: &Path, args: &[String]) -> anyhow::Result<()> {
    let dir = authoring::plugin_dir(dir);
    let built = authoring::build_plugin(&dir, &authoring::BuildOptions::default()).await?;
    eprintln!(
        "built {} {} ({} KiB); running its tests",
        built.manifest.id,
        built.manifest.version,
        built.size.div_ceil(1024)
    );
    let exe = std::env::current_exe().context("cannot find this ucms binary")?;
    let mut cmd = match built.lang {
        authoring::Lang::Rust => {
            let mut cmd = std::process::Command::new(
                std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
            );
            cmd.arg("test")
                .arg("--manifest-path")
                .arg(dir.join("Cargo.toml"));
            cmd
        }
        authoring::Lang::TypeScript => {
            let mut cmd = std::process::Command::new(
                std::env::var("UCMS_NODE").unwrap_or_else(|_| "node".into()),
            );
            cmd.arg("--test");
            cmd
        }
        authoring::Lang::Python => {
            let python = [dir.join(".venv/bin/python")]
                .into_iter()
                .find(|p| p.is_file())
                .unwrap_or_else(|| PathBuf::from("python3"));
            let mut cmd = std::process::Command::new(python);
            cmd.args(["-m", "unittest", "discover", "-s", "tests"]);
            if let Some(sdk) = authoring::python::sdk_path(&dir) {
                let mut path = std::ffi::OsString::from(sdk);
                if let Some(existing) = std::env::var_os("PYTHONPATH") {
                    path.push(":");
                    path.push(existing);
                }
                cmd.env("PYTHONPATH", path);
            }
            cmd
        }
    };
    let status = cmd
        .args(args)
        .current_dir(&dir)
        .env("UCMS_BIN", exe)
        .env("UCMS_PLUGIN_BUILT", "1")
        .status()
        .context("cannot run the test runner")?;
    if !status.success() {
        anyhow::bail!("the plugin's tests failed ({status})");
    }
    Ok(())
}
