//! Installing and upgrading from a registry: resolve, show the plan with the capabilities each
//! plugin asks for (for an upgrade, what changes), then download, verify and apply each change.

use std::collections::{BTreeMap, BTreeSet};

use semver::VersionReq;
use serde::Serialize;
use ucms_package::archive::{self, Limits};
use ucms_package::index::IndexEntry;
use ucms_package::signature::PackageSignature;
use ucms_registry::client::RegistryClient;
use ucms_resolver::{Change, Lockfile, Request, resolve};

use super::journal::Step;
use super::{ApplyOptions, Origin, PluginError, PluginInfo, PluginManager, PluginSource};
use crate::wit;

/// One change of a plan, with what the site owner consents to.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedChange {
    /// `install`, `upgrade` or `downgrade`.
    pub action: &'static str,
    pub id: String,
    pub from: Option<String>,
    pub to: String,
    pub publisher: String,
    pub description: String,
    /// Every capability the new version asks for.
    pub capabilities: Vec<String>,
    /// For an upgrade: capabilities it asks for that the installed version didn't.
    pub added_capabilities: Vec<String>,
    /// For an upgrade: capabilities it no longer asks for.
    pub removed_capabilities: Vec<String>,
    #[serde(skip)]
    pub entry: IndexEntry,
}

/// What installing some plugins from a registry would change, before anything is changed.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub registry: String,
    pub changes: Vec<PlannedChange>,
}

/// Reports progress while a plan is applied (the CLI draws bars; the API ignores it).
pub trait Progress: Send {
    fn downloading(&mut self, _id: &str, _done: u64, _total: Option<u64>) {}
    fn step(&mut self, _id: &str, _message: &str) {}
}

/// Progress nobody watches.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {}

/// A client of the registry at `url` (or the site's configured one), with the site's trust.
pub fn client(manager: &PluginManager, url: Option<&str>) -> Result<RegistryClient, PluginError> {
    let url = url.or(manager.config().registry.url.as_deref()).ok_or_else(|| {
        PluginError::Refused("no registry to install from\n  hint: pass --registry URL, or set [registry] url in ucms.toml".into())
    })?;
    let trust = manager
        .config()
        .trust
        .store()
        .map_err(PluginError::Settings)?;
    Ok(RegistryClient::new(
        url,
        &manager.data().registry_cache(),
        trust,
    )?)
}

/// Parses `hello`, `hello@^0.1`, `hello@0.2.0` into an id and a requirement.
pub fn parse_want(text: &str) -> Result<(String, VersionReq), PluginError> {
    let (id, req) = match text.split_once('@') {
        Some((id, req)) => (
            id,
            VersionReq::parse(req).map_err(|e| {
                PluginError::Refused(format!("'{req}' is not a version requirement: {e}"))
            })?,
        ),
        None => (text, VersionReq::STAR),
    };
    ucms_manifest::PluginId::new(id).map_err(PluginError::Refused)?;
    Ok((id.to_string(), req))
}

/// Resolves `wants` (and `upgrade`: plugins to move to their newest acceptable versions) against
/// the registry and what is installed.
pub async fn plan(
    manager: &PluginManager,
    client: &mut RegistryClient,
    wants: Vec<(String, VersionReq)>,
    upgrade: BTreeSet<String>,
) -> Result<Plan, PluginError> {
    client.refresh().await?;
    let installed = manager.installed_versions();
    let in_registry: BTreeSet<String> = client
        .snapshot()
        .map(|s| s.packages.keys().cloned().collect())
        .unwrap_or_default();
    let roots: Vec<String> = wants
        .iter()
        .map(|(id, _)| id.clone())
        .chain(
            installed
                .keys()
                .filter(|id| in_registry.contains(*id))
                .cloned(),
        )
        .collect();
    let mut index = client.closure(&roots).await?;
    // Plugins installed from folders take part as they are: their versions stay, their
    // dependencies count.
    for (id, version) in &installed {
        if !index.contains_key(id)
            && let Some(slot) = manager.get(id)
        {
            index.insert(id.clone(), vec![local_entry(&slot.manifest, version)]);
        }
    }
    let lockfile = Lockfile::load(manager.data().root()).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ignoring ucms.lock");
        Lockfile::empty()
    });
    let locked = lockfile.versions();
    let request = Request {
        wants,
        installed: installed.clone(),
        locked,
        upgrade,
        host_api: wit::SUPPORTED_API.to_vec(),
    };
    let resolution = resolve(&index, &request)?;
    let changes: Vec<PlannedChange> = resolution
        .changes(&installed)
        .into_iter()
        .map(|change| {
            let (action, id, from, to) = match change {
                Change::Install { id, version } => ("install", id, None, version),
                Change::Upgrade { id, from, to } => ("upgrade", id, Some(from), to),
                Change::Downgrade { id, from, to } => ("downgrade", id, Some(from), to),
            };
            let entry = resolution.plugins[&id].clone();
            let old: BTreeSet<String> = manager
                .get(&id)
                .map(|s| s.manifest.capabilities.describe().into_iter().collect())
                .unwrap_or_default();
            let new: BTreeSet<String> = entry.capabilities.iter().cloned().collect();
            PlannedChange {
                action,
                from: from.map(|v| v.to_string()),
                to: to.to_string(),
                publisher: entry.publisher.clone(),
                description: entry.description.clone(),
                capabilities: entry.capabilities.clone(),
                added_capabilities: if action == "install" {
                    Vec::new()
                } else {
                    new.difference(&old).cloned().collect()
                },
                removed_capabilities: if action == "install" {
                    Vec::new()
                } else {
                    old.difference(&new).cloned().collect()
                },
                id,
                entry,
            }
        })
        .collect();
    check_against_lock(&lockfile, &changes)?;
    // What the listing shows is judged now, before any download; the package itself is judged
    // again once verified and unpacked.
    let policy = manager.policy().current();
    for change in &changes {
        policy.check_listing(
            &change.id,
            &change.entry.version,
            &change.entry.publisher,
            &change.entry.signature.key_id.to_string(),
        )?;
    }
    Ok(Plan {
        registry: client.base_url().to_string(),
        changes,
    })
}

/// Published versions never change: a version `ucms.lock` recorded from a registry must be
/// offered with the digest recorded then.
fn check_against_lock(lockfile: &Lockfile, changes: &[PlannedChange]) -> Result<(), PluginError> {
    for change in changes {
        if let Some(locked) = lockfile.get(&change.id)
            && locked.version == change.entry.version
            && locked.source.starts_with("registry+")
            && locked.digest != change.entry.digest
        {
            return Err(PluginError::LockMismatch {
                id: change.id.clone(),
                version: change.to.clone(),
                locked: locked.digest.clone(),
                offered: change.entry.digest.clone(),
            });
        }
    }
    Ok(())
}

/// Plugins to install at the versions `ucms.lock` records.
#[derive(Debug, Clone, Default)]
pub struct LockedWants {
    /// Each with an exact requirement (`=1.2.3`).
    pub wants: Vec<(String, VersionReq)>,
    /// The registry they came from, when they all came from one.
    pub registry: Option<String>,
}

/// What `ucms plugin install --locked` asks for: every plugin `ucms.lock` records from a
/// registry at exactly its recorded version, unless that version is installed already; and the
/// registry they came from (when they all came from one).
pub fn locked_wants(manager: &PluginManager) -> Result<LockedWants, PluginError> {
    let lockfile =
        Lockfile::load(manager.data().root()).map_err(|e| PluginError::Refused(e.to_string()))?;
    let installed = manager.installed_versions();
    let mut wants = Vec::new();
    let mut registries = BTreeSet::new();
    for locked in &lockfile.plugins {
        let Some(url) = locked.source.strip_prefix("registry+") else {
            continue;
        };
        if installed.get(&locked.id) == Some(&locked.version) {
            continue;
        }
        registries.insert(url.to_string());
        let req = VersionReq::parse(&format!("={}", locked.version))
            .map_err(|e| PluginError::Refused(format!("ucms.lock: {}: {e}", locked.id)))?;
        wants.push((locked.id.clone(), req));
    }
    let registry = (registries.len() == 1).then(|| registries.into_iter().next().expect("one"));
    Ok(LockedWants { wants, registry })
}

/// An index entry standing for a plugin installed from a folder.
fn local_entry(manifest: &ucms_manifest::Manifest, version: &semver::Version) -> IndexEntry {
    IndexEntry {
        id: manifest.id.to_string(),
        version: version.clone(),
        publisher: manifest.publisher.clone(),
        description: manifest.description.clone(),
        api: manifest.api.to_string(),
        dependencies: manifest
            .dependencies
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        provides: manifest
            .provides
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
        requires: manifest
            .requires
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
        capabilities: manifest.capabilities.describe(),
        categories: manifest.categories.clone(),
        digest: String::new(),
        size: 0,
        signature: PackageSignature {
            key_id: ucms_package::keys::KeyId(String::new()),
            digest: String::new(),
            signature: String::new(),
        },
        yanked: false,
        published_at: 0,
    }
}

/// Applies a plan: each change downloaded, verified against the site's trust, unpacked and
/// installed as its own journaled operation, dependencies first. Stops at the first failure;
/// what was applied before it stays.
pub async fn apply(
    manager: &PluginManager,
    client: &RegistryClient,
    plan: &Plan,
    actor: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<Vec<PluginInfo>, PluginError> {
    let mut done = Vec::new();
    for change in &plan.changes {
        let entry = &change.entry;
        let options = ApplyOptions {
            actor: actor.map(str::to_string),
            allow_downgrade: change.action == "downgrade",
        };
        let journal = manager
            .begin_apply(&entry.id, &entry.version, &options)
            .await?;
        let fetched = async {
            let bytes = client
                .download(entry, &mut |done, total| {
                    progress.downloading(&entry.id, done, total)
                })
                .await?;
            journal.step(Step::Downloaded).await?;
            let key = client.trust().verify_package(
                &bytes,
                Some(&entry.signature),
                &entry.publisher,
                ucms_package::unix_now(),
            )?;
            journal.step(Step::Verified).await?;
            progress.step(
                &entry.id,
                &format!("verified: signed by {} ({})", key.publisher, key.key_id),
            );
            let contents = archive::unpack(&bytes, &Limits::default())
                .map_err(|e| PluginError::Package(e.to_string()))?;
            if contents.manifest.id.as_str() != entry.id
                || contents.manifest.version != entry.version
            {
                return Err(PluginError::Package(format!(
                    "the index lists {} {}, but the package inside is {} {}",
                    entry.id, entry.version, contents.manifest.id, contents.manifest.version
                )));
            }
            let mut source = PluginSource::from_contents(
                contents,
                Origin::Registry {
                    url: plan.registry.clone(),
                    digest: entry.digest.clone(),
                },
            );
            source.signer = Some(crate::policy::Signer {
                publisher: key.publisher.clone(),
                key_id: key.key_id.to_string(),
            });
            Ok(source)
        }
        .await;
        let source = match fetched {
            Ok(source) => source,
            Err(e) => {
                journal.fail(&e.to_string()).await;
                return Err(e);
            }
        };
        progress.step(&entry.id, "compiling and running its install hook");
        done.push(manager.apply_journaled(journal, source, &options).await?);
    }
    Ok(done)
}

/// The ids in a plan, by action, for short summaries.
pub fn summary(plan: &Plan) -> BTreeMap<&'static str, Vec<String>> {
    let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for c in &plan.changes {
        out.entry(c.action)
            .or_default()
            .push(format!("{} {}", c.id, c.to));
    }
    out
}
