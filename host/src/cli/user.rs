use std::io::Read;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{GlobalArgs, print_json};
use crate::config::Config;
use crate::identity::Identity;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (the password is hashed with argon2id).
    Create(CreateArgs),
    /// List accounts.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    pub email: String,
    /// Read the password from standard input (recommended: it stays out of the process list).
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
    /// The password (visible to other users of this machine while the command runs).
    #[arg(long)]
    pub password: Option<String>,
    /// A role to grant; repeat for several (built in: admin).
    #[arg(long = "role")]
    pub roles: Vec<String>,
}

/// Opens just the database: user and token commands don't need plugins loaded.
pub(super) async fn identity(global: &GlobalArgs, config: &Config) -> anyhow::Result<Identity> {
    let data = global.data_dir();
    data.create()?;
    crate::install_crypto_provider();
    let db = crate::db::open(
        &config.database_url(data.root()),
        config.database.max_connections,
    )
    .await?;
    Ok(Identity::new(db))
}

pub async fn run(global: &GlobalArgs, config: Config, command: UserCommand) -> anyhow::Result<()> {
    let identity = identity(global, &config).await?;
    match command {
        UserCommand::Create(args) => {
            let password = match (args.password, args.password_stdin) {
                (Some(p), _) => p,
                (None, true) => {
                    let mut p = String::new();
                    std::io::stdin()
                        .read_to_string(&mut p)
                        .context("cannot read the password from stdin")?;
                    p.trim_end_matches(['\n', '\r']).to_string()
                }
                (None, false) => {
                    anyhow::bail!("give a password: --password-stdin (recommended) or --password")
                }
            };
            let user = identity
                .create_user(&args.email, &password, &args.roles)
                .await?;
            eprintln!(
                "created user {} ({}) with roles [{}]",
                user.email,
                user.id,
                user.roles.join(", ")
            );
        }
        UserCommand::List { json } => {
            let users = identity.list_users().await?;
            if json {
                print_json(&users)?;
            } else {
                for u in users {
                    println!(
                        "{:<32} {:<34} {}{}",
                        u.email,
                        u.id,
                        u.roles.join(","),
                        if u.disabled { " (disabled)" } else { "" }
                    );
                }
            }
        }
    }
    identity.db().close().await;
    Ok(())
}
