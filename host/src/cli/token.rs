use std::time::Duration;

use clap::{Args, Subcommand};

use super::{GlobalArgs, print_json};
use crate::config::Config;
use crate::identity::TokenKind;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; it is printed once and stored only as a hash.
    Create(CreateArgs),
    /// List API tokens (never their secrets).
    List {
        /// Only the tokens of this account.
        #[arg(long)]
        email: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The account the token acts for.
    #[arg(long)]
    pub email: String,
    /// A name to recognise the token by.
    #[arg(long, default_value = "cli")]
    pub name: String,
    /// A permission the token may use: exact (`hello.counter.increment`), a prefix (`hello.*`) or `*`.
    /// Repeat for several. The token never exceeds its account's own permissions.
    #[arg(long = "scope", required = true)]
    pub scopes: Vec<String>,
    /// Lifetime, for example `30d`, `12h`; none for a token that doesn't expire.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub expires: Option<Duration>,
}

pub async fn run(global: &GlobalArgs, config: Config, command: TokenCommand) -> anyhow::Result<()> {
    let identity = super::user::identity(global, &config).await?;
    match command {
        TokenCommand::Create(args) => {
            let user = identity.find_user(&args.email).await?.ok_or_else(|| {
                anyhow::anyhow!(
                    "there is no user {}\n  hint: create one with `ucms user create`",
                    args.email
                )
            })?;
            let issued = identity
                .issue_token(
                    &user,
                    TokenKind::Api,
                    &args.name,
                    &args.scopes,
                    args.expires,
                )
                .await?;
            eprintln!(
                "token {} for {} (scopes: {}; expires: {}) — shown once, store it now:",
                issued.id,
                user.email,
                args.scopes.join(", "),
                issued.expires_at.as_deref().unwrap_or("never")
            );
            println!("{}", issued.token);
        }
        TokenCommand::List { email, json } => {
            let user_id = match &email {
                Some(e) => Some(
                    identity
                        .find_user(e)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("there is no user {e}"))?
                        .id,
                ),
                None => None,
            };
            let tokens = identity.list_tokens(user_id.as_deref()).await?;
            if json {
                print_json(&tokens)?;
            } else {
                for t in tokens {
                    println!(
                        "{}  {:<16} {:<30} expires {:<26} {}",
                        t.id,
                        t.name,
                        t.scopes.join(","),
                        t.expires_at.as_deref().unwrap_or("never"),
                        if t.revoked { "revoked" } else { "" }
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            if identity.revoke_token(&id, Some("cli")).await? {
                eprintln!("revoked token {id}");
            } else {
                anyhow::bail!(
                    "no active token has the id {id}\n  hint: `ucms token list` shows the tokens"
                );
            }
        }
    }
    identity.db().close().await;
    Ok(())
}
