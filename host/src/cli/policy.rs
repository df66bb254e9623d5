//! `ucms policy`: what the operator's policy allows, asked before anything is installed.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use ucms_package::archive::{self, Limits};
use ucms_package::signature::PackageSignature;

use super::GlobalArgs;
use crate::config::Config;
use crate::plugins::PluginSource;
use crate::policy::{Finding, Signer, Subject};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Explain what the policy would allow and refuse for a plugin, without installing it: a
    /// plugin folder or a .ucpkg package (its .sig beside it is checked against [trust]).
    /// Exits with 1 when the policy refuses it.
    Check {
        /// A plugin folder (ucms-plugin.toml + plugin.wasm) or a .ucpkg file.
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show the policy in force and where it is written.
    Show {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(_global: &GlobalArgs, config: Config, cmd: PolicyCommand) -> anyhow::Result<()> {
    let (policy, _) = config.policy_source()?;
    match cmd {
        PolicyCommand::Show { json } => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "origin": policy.origin,
                        "digest": policy.digest,
                        "rules": policy.rules,
                    }))?
                );
            } else {
                println!(
                    "policy: {} (sha256 {})",
                    policy.origin,
                    &policy.digest[..16]
                );
                println!("{}", toml::to_string_pretty(&policy.rules)?);
            }
            Ok(())
        }
        PolicyCommand::Check { path, json } => {
            let (source, mut findings) = read_subject(&path, &config)?;
            let manifest = &source.manifest;
            findings.extend(policy.explain(Subject {
                manifest,
                signer: source.signer.as_ref(),
            }));
            let refused = findings.iter().filter(|f| !f.allowed).count();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "plugin": manifest.id.as_str(),
                        "version": manifest.version.to_string(),
                        "signer": source.signer,
                        "policy": { "origin": policy.origin, "digest": policy.digest },
                        "allowed": refused == 0,
                        "findings": findings,
                    }))?
                );
            } else {
                let by = match &source.signer {
                    Some(Signer { publisher, key_id }) => {
                        format!("signed by {publisher} ({key_id})")
                    }
                    None => format!("unsigned; claims publisher {}", manifest.publisher),
                };
                println!("{} {}, {by}", manifest.id, manifest.version);
                println!("policy: {}\n", policy.origin);
                for finding in &findings {
                    println!("  {finding}");
                }
                println!();
                if refused == 0 {
                    println!("allowed: the policy lets this plugin be installed and run");
                } else {
                    println!(
                        "refused: {refused} rule{} refuse{} this plugin",
                        if refused == 1 { "" } else { "s" },
                        if refused == 1 { "s" } else { "" }
                    );
                }
            }
            if refused > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// Reads the plugin at `path`, verifying a package's signature against `[trust]`. A signature
/// that doesn't verify is a refusing finding, and the rest is still explained (as unsigned).
fn read_subject(path: &Path, config: &Config) -> anyhow::Result<(PluginSource, Vec<Finding>)> {
    let trust = config.trust.store()?;
    if !(path.is_file() && path.extension().is_some_and(|e| e == "ucpkg")) {
        return Ok((PluginSource::from_path(path, &trust, true)?, Vec::new()));
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let contents = archive::unpack(&bytes, &Limits::default())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let publisher = contents.manifest.publisher.clone();
    let mut source = PluginSource::from_contents(
        contents,
        crate::plugins::Origin::Local(path.display().to_string()),
    );
    let sig_path = PathBuf::from(format!("{}.sig", path.display()));
    let mut findings = Vec::new();
    if let Ok(text) = std::fs::read_to_string(&sig_path) {
        {
            let signature = PackageSignature::from_json(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", sig_path.display()))?;
            match trust.verify_package(
                &bytes,
                Some(&signature),
                &publisher,
                ucms_package::unix_now(),
            ) {
                Ok(key) => {
                    source.signer = Some(Signer {
                        publisher: key.publisher,
                        key_id: key.key_id.to_string(),
                    });
                    findings.push(Finding {
                        rule: "[trust]".into(),
                        subject: "signature".into(),
                        allowed: true,
                        message: format!("the signature verifies with key {}", key.key_id),
                    });
                }
                Err(e) => findings.push(Finding {
                    rule: "[trust]".into(),
                    subject: "signature".into(),
                    allowed: false,
                    message: format!("the signature doesn't verify: {e}"),
                }),
            }
        }
    }
    Ok((source, findings))
}
