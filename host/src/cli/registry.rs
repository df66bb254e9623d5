use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ucms_package::keys::{KeyId, PublicKeyFile};
use ucms_registry::{Registry, RegistryConfig};

use super::print_json;

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Serve a plugin registry (index, downloads, publishing) over HTTP.
    Serve(ServeArgs),
    /// Create a publisher and print its first token.
    AddPublisher {
        name: String,
        #[command(flatten)]
        at: RegistryAt,
    },
    /// Issue another token for a publisher.
    AddToken {
        publisher: String,
        #[command(flatten)]
        at: RegistryAt,
    },
    /// Register and endorse a publisher's public key.
    AddKey {
        /// The public key file (`ucms plugin keygen` writes KEY.pub).
        public_key: PathBuf,
        #[command(flatten)]
        at: RegistryAt,
    },
    /// Revoke a key: every site reading this registry refuses packages it signed.
    RevokeKey {
        key_id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        at: RegistryAt,
    },
    /// Make a marketplace account a registry admin (it sees reported reviews), or take that away.
    SetAdmin {
        /// The account's email, as it signed up on the marketplace.
        email: String,
        /// Take the admin role away instead.
        #[arg(long)]
        revoke: bool,
        #[command(flatten)]
        at: RegistryAt,
    },
    /// Print the registry's public key, for sites' [trust] registries.
    Key {
        #[command(flatten)]
        at: RegistryAt,
        #[arg(long)]
        json: bool,
    },
}

/// Which registry's data directory.
#[derive(Debug, Args)]
pub struct RegistryAt {
    /// The registry's data directory.
    // Its own id: the site's global `--data` is also named `data`, and clap would merge them.
    #[arg(
        id = "registry_data",
        long = "registry-data",
        env = "UCMS_REGISTRY_DATA",
        hide_env_values = true,
        default_value = "./ucms-registry"
    )]
    pub data: PathBuf,
    /// `sqlite://…` or `postgres://…` (default: registry.db in the data directory).
    #[arg(
        id = "registry_database",
        long = "registry-database",
        env = "UCMS_REGISTRY_DATABASE",
        hide_env_values = true
    )]
    pub database: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub at: RegistryAt,
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Mark the marketplace's session cookie `Secure` on every response (it is already when a
    /// TLS-terminating proxy sends `X-Forwarded-Proto: https`).
    #[arg(long)]
    pub secure_cookies: bool,
}

impl RegistryAt {
    async fn open(&self) -> anyhow::Result<std::sync::Arc<Registry>> {
        self.open_with(|_| {}).await
    }

    async fn open_with(
        &self,
        adjust: impl FnOnce(&mut RegistryConfig),
    ) -> anyhow::Result<std::sync::Arc<Registry>> {
        crate::install_crypto_provider();
        let mut config = RegistryConfig::new(&self.data, crate::wit::SUPPORTED_API.to_vec());
        config.database_url = self.database.clone();
        adjust(&mut config);
        Registry::open(config).await
    }
}

pub async fn run(command: RegistryCommand) -> anyhow::Result<()> {
    match command {
        RegistryCommand::Serve(args) => {
            let secure_cookies = args.secure_cookies;
            let registry = args
                .at
                .open_with(|config| config.secure_cookies |= secure_cookies)
                .await?;
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on {}\n  hint: pass --listen ADDR to pick another",
                        args.listen
                    )
                })?;
            let local = listener.local_addr()?;
            let key = registry.public_key();
            eprintln!(
                "UCMS registry serving on http://{local} (data in {}; key {} — sites trust it with [trust] registries = [\"{}\"])",
                args.at.data.display(),
                key.key_id,
                key.public_key
            );
            tokio::spawn(registry.clone().refresh_forever());
            axum::serve(listener, registry.router())
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
        RegistryCommand::AddPublisher { name, at } => {
            let registry = at.open().await?;
            let token = registry.add_publisher(&name).await?;
            eprintln!("created publisher '{name}'; its token (shown once):");
            println!("{}", token.token);
        }
        RegistryCommand::AddToken { publisher, at } => {
            let registry = at.open().await?;
            let token = registry.add_token(&publisher).await?;
            println!("{}", token.token);
        }
        RegistryCommand::AddKey { public_key, at } => {
            let registry = at.open().await?;
            let file = PublicKeyFile::load(&public_key)?;
            let endorsement = registry.add_key(&file.publisher, &file.key()?).await?;
            eprintln!(
                "endorsed key {} for '{}' until {}",
                endorsement.key_id,
                endorsement.publisher,
                ucms_package::when(endorsement.not_after)
            );
        }
        RegistryCommand::RevokeKey { key_id, reason, at } => {
            let registry = at.open().await?;
            registry.revoke_key(&KeyId(key_id.clone()), &reason).await?;
            eprintln!("revoked {key_id}");
        }
        RegistryCommand::SetAdmin { email, revoke, at } => {
            let registry = at.open().await?;
            registry.set_admin(&email, !revoke).await?;
            if revoke {
                eprintln!("'{email}' is no longer a registry admin");
            } else {
                eprintln!("'{email}' is a registry admin: it sees reported reviews at /reports");
            }
        }
        RegistryCommand::Key { at, json } => {
            let registry = at.open().await?;
            let key = registry.public_key();
            if json {
                print_json(&key)?;
            } else {
                println!("{}", key.public_key);
            }
        }
    }
    Ok(())
}
