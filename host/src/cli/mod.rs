//! The `ucms` command.

mod plugin;
mod policy;
mod registry;
mod serve;
mod token;
mod user;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, DataDir};

/// UCMS: a headless CMS whose features are sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "ucms", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The site's data directory (database, installed plugins, caches).
    #[arg(
        long,
        global = true,
        env = "UCMS_DATA",
        hide_env_values = true,
        default_value = "./ucms-data"
    )]
    pub data: PathBuf,
    /// The configuration file; every key can also be set with a UCMS_… variable.
    #[arg(long, global = true, env = "UCMS_CONFIG", hide_env_values = true)]
    pub config: Option<PathBuf>,
    /// Log filter, for example `debug` or `ucms=debug,info` (overrides [log] level).
    #[arg(long, global = true, env = "UCMS_LOG", hide_env_values = true)]
    pub log: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the site over HTTP.
    Serve(serve::ServeArgs),
    /// Install, list and manage plugins; create and build your own.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Manage user accounts.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Ask what the operator's policy allows, before installing.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Run a plugin registry, and manage its publishers and keys.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
}

impl GlobalArgs {
    /// The configuration: the given file (which must exist), else `ucms.toml` if present.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let (path, required) = match &self.config {
            Some(path) => (path.clone(), true),
            None => (PathBuf::from("ucms.toml"), false),
        };
        Config::load(&path, required, std::env::vars())
    }

    pub fn data_dir(&self) -> DataDir {
        DataDir::new(&self.data)
    }
}

/// Runs the command line; the binary's `main` calls this.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match cli.global.load_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // `plugin dev` shows the plugin's log lines and each request's trace unless told otherwise.
    let dev = matches!(
        cli.command,
        Command::Plugin(plugin::PluginCommand::Dev { .. })
    );
    let filter = match (&cli.global.log, dev) {
        (Some(filter), _) => filter.as_str(),
        (None, true) => DEV_LOG_FILTER,
        (None, false) => config.log.level.as_str(),
    };
    // Held to the end: dropping it flushes the traces still buffered.
    let telemetry =
        crate::telemetry::init(filter, &config.log, &config.telemetry, runtime.handle());
    let result = runtime.block_on(run(cli, config));
    drop(telemetry);
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.global, config, args).await,
        Command::Plugin(cmd) => plugin::run(&cli.global, config, cmd).await,
        Command::User(cmd) => user::run(&cli.global, config, cmd).await,
        Command::Token(cmd) => token::run(&cli.global, config, cmd).await,
        Command::Policy(cmd) => policy::run(&cli.global, config, cmd).await,
        Command::Registry(cmd) => registry::run(cmd).await,
    }
}

/// What `ucms plugin dev` logs: the plugin's own lines, each request's trace, the host's news.
const DEV_LOG_FILTER: &str = "info,ucms::plugin=trace,tower_http::trace=debug";

/// The command-line reference (docs/cli-reference.md): every command's `--help`, generated so it
/// can't drift from the code (a test compares it with the committed page).
pub fn reference_markdown() -> String {
    use clap::CommandFactory;
    use std::fmt::Write as _;
    fn walk(cmd: &mut clap::Command, path: &str, out: &mut String) {
        let name = if path.is_empty() {
            cmd.get_name().to_string()
        } else {
            format!("{path} {}", cmd.get_name())
        };
        let help = cmd.render_long_help().to_string();
        let _ = write!(out, "\n## `{name}`\n\n```text\n{}\n```\n", help.trim_end());
        let mut subs: Vec<clap::Command> = cmd.get_subcommands().cloned().collect();
        for sub in &mut subs {
            if sub.get_name() != "help" {
                walk(sub, &name, out);
            }
        }
    }
    let mut out = String::from(
        "# Command-line reference\n\n<!-- Generated from the clap definitions in host/src/cli by `cargo xtask docs`; a test fails when it is stale. Don't edit by hand. -->\n\nEvery `ucms` command with its `--help`. Global options (`--data`, `--config`, `--log`) work with every command; every configuration key can also be set with a `UCMS_…` variable (docs/configuration.md).\n",
    );
    let mut cmd = Cli::command().term_width(100);
    cmd.build();
    walk(&mut cmd, "", &mut out);
    out
}

/// Asks a yes/no question on the terminal; without one, `--yes` is required.
pub(crate) fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "{question}\n  hint: there is no terminal to answer on; pass --yes to approve"
        );
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    /// docs/cli-reference.md is what [`super::reference_markdown`] generates. `UCMS_BLESS=1`
    /// rewrites it.
    #[test]
    fn the_cli_reference_page_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli-reference.md");
        let generated = super::reference_markdown();
        if std::env::var_os("UCMS_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "docs/cli-reference.md is stale: a command or option in host/src/cli changed\n  hint: run `cargo xtask docs` and commit the result"
        );
    }
}
