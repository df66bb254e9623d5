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
    /// Disable an account: it can't sign in, and its sessions end.
    Disable { email: String },
    /// Enable a disabled account again.
    Enable { email: String },
    /// Delete an account with its tokens and sessions.
    Delete { email: String },
    /// Replace an account's roles.
    SetRoles {
        email: String,
        /// A role to hold; repeat for several (none: no role at all).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// List roles and their grants.
    Roles {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

async fn existing(identity: &Identity, email: &str) -> anyhow::Result<crate::identity::User> {
    identity.find_user(email).await?.ok_or_else(|| {
        anyhow::anyhow!("there is no user with the email {email} (see `ucms user list`)")
    })
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
    /// A role to grant; repeat for several (built in: admin, editor, viewer, public).
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
        UserCommand::Disable { email } => {
            let user = existing(&identity, &email).await?;
            identity.set_disabled(&user, true, Some("cli")).await?;
            eprintln!("disabled {email}; its sessions ended");
        }
        UserCommand::Enable { email } => {
            let user = existing(&identity, &email).await?;
            identity.set_disabled(&user, false, Some("cli")).await?;
            eprintln!("enabled {email}");
        }
        UserCommand::Delete { email } => {
            let user = existing(&identity, &email).await?;
            identity.delete_user(&user, Some("cli")).await?;
            eprintln!("deleted {email} with its tokens and sessions");
        }
        UserCommand::SetRoles { email, roles } => {
            let user = existing(&identity, &email).await?;
            let user = identity.set_roles(&user, &roles, Some("cli")).await?;
            eprintln!("{email} now holds [{}]", user.roles.join(", "));
        }
        UserCommand::Roles { json } => {
            let roles = identity.list_roles().await?;
            if json {
                print_json(&roles)?;
            } else {
                for r in roles {
                    println!(
                        "{:<16} {}{}",
                        r.name,
                        r.permissions.join(" "),
                        if r.builtin { "  (built in)" } else { "" }
                    );
                }
            }
        }
    }
    identity.db().close().await;
    Ok(())
}
