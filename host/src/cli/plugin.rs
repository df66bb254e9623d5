use std::path::PathBuf;

use clap::Subcommand;

use super::{GlobalArgs, confirm, print_json};
use crate::Site;
use crate::authoring;
use crate::config::Config;
use crate::plugins::{InstallOptions, PluginSource};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List installed plugins.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Install a plugin from a folder holding ucms-plugin.toml and plugin.wasm.
    Install {
        /// The plugin folder (or its ucms-plugin.toml).
        path: PathBuf,
        /// Approve the capabilities the plugin asks for without asking.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Remove a plugin (its stored data is kept unless --purge).
    Remove {
        id: String,
        /// Also delete the plugin's stored data.
        #[arg(long)]
        purge: bool,
    },
    /// Enable a disabled plugin.
    Enable { id: String },
    /// Disable a plugin: it keeps its data but serves nothing and receives no events.
    Disable { id: String },
    /// Create a new plugin crate that builds and runs as it is.
    New {
        /// The plugin id (also the crate name and URL prefix), e.g. `my-plugin`.
        name: String,
        /// Where to create it (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Use this local checkout of the ucms-sdk crate instead of the published one.
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Build a plugin crate into plugin.wasm and check it against its manifest.
    Build {
        /// The plugin crate (default: the current folder).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The cargo profile to build with.
        #[arg(long, default_value = "release")]
        profile: String,
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
            sdk_path,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            authoring::new_plugin(&name, &dir, sdk_path.as_deref())?;
            eprintln!("created plugin '{name}' in {}", dir.display());
            eprintln!(
                "next: cd {} && ucms plugin build && ucms plugin install . --yes && ucms serve",
                dir.display()
            );
            return Ok(());
        }
        PluginCommand::Build { dir, profile } => {
            let built = authoring::build_plugin(&dir, &profile).await?;
            eprintln!(
                "built {} {} → {} ({} KiB)",
                built.manifest.id,
                built.manifest.version,
                built.wasm_path.display(),
                built.size.div_ceil(1024)
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
        _ => {}
    }

    let site = Site::open(config, global.data_dir()).await?;
    match command {
        PluginCommand::List { json } => {
            let plugins = site.plugins.list();
            if json {
                print_json(&plugins)?;
            } else if plugins.is_empty() {
                eprintln!("no plugins installed; install one with `ucms plugin install PATH`");
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
        PluginCommand::Install { path, yes } => {
            let source = PluginSource::from_path(&path)?;
            let m = &source.manifest;
            eprintln!("{} {} by {} asks to:", m.id, m.version, m.publisher);
            let capabilities = m.capabilities.describe();
            if capabilities.is_empty() {
                eprintln!("  (use no host capabilities)");
            }
            for line in capabilities {
                eprintln!("  - {line}");
            }
            for route in &m.routes {
                let access = match &route.access {
                    ucms_manifest::Access::Public => "public".to_string(),
                    ucms_manifest::Access::Permission(p) => {
                        format!("needs {}", m.qualified_permission(p))
                    }
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
                .install(
                    source,
                    InstallOptions {
                        actor: Some("cli".into()),
                    },
                )
                .await?;
            eprintln!("installed {} {}", info.id, info.version);
        }
        PluginCommand::Remove { id, purge } => {
            site.plugins.remove(&id, purge, Some("cli")).await?;
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
            site.plugins.set_enabled(&id, true, Some("cli")).await?;
            eprintln!("enabled {id}");
        }
        PluginCommand::Disable { id } => {
            site.plugins.set_enabled(&id, false, Some("cli")).await?;
            eprintln!("disabled {id}");
        }
        PluginCommand::New { .. } | PluginCommand::Build { .. } => unreachable!("handled above"),
    }
    site.db.close().await;
    Ok(())
}
