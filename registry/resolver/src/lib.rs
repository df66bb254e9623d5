//! Which plugin versions to install: dependency resolution with [`pubgrub`].
//!
//! Inputs: what the site owner asked for, what is installed, what the lockfile pins, the index
//! entries of every package that could be involved, and the `ucms:host` API versions this host
//! provides (a fixed constraint: a plugin whose `api` the host doesn't meet can't be chosen).
//! Versions are sets of the versions that exist, so semver's rules (pre-releases included) are
//! applied exactly by [`semver::VersionReq::matches`]. Yanked versions are never chosen unless
//! already installed or locked. Installed and locked versions are preferred, so an install or an
//! upgrade changes as little as it can. After resolution, every `requires` interface must be
//! provided by some chosen plugin.
//!
//! When there is no solution, [`ResolveError::Conflict`] explains it in sentences taken from
//! pubgrub's derivation tree: "commerce 2.1.0 needs content ^3, but media 1.4.0 needs content ^2".

mod lockfile;
mod report;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use pubgrub::{
    Dependencies, DependencyConstraints, DependencyProvider, PackageResolutionStatistics, Ranges,
};
use semver::{Version, VersionReq};
use ucms_package::index::IndexEntry;

pub use lockfile::{FILE as LOCKFILE, LockedPlugin, Lockfile, LockfileError};

/// The package name of the host API in resolution and reports.
pub const HOST_API: &str = "ucms:host";

/// A package in resolution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pkg {
    /// What was asked for.
    Root,
    /// The host's API, whose versions are the ones this host provides.
    Host,
    Plugin(String),
}

impl fmt::Display for Pkg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => f.write_str("your request"),
            Self::Host => f.write_str(HOST_API),
            Self::Plugin(id) => f.write_str(id),
        }
    }
}

/// Where the resolver reads package versions. Everything must be fetched beforehand: resolution
/// itself does no I/O.
pub trait Index {
    /// Every known version of `id`, any order; `None` when the package is unknown.
    fn versions(&self, id: &str) -> Option<&[IndexEntry]>;

    /// The ids this index knows (fetched so far), to suggest plugins in messages.
    fn known(&self) -> Vec<String> {
        Vec::new()
    }
}

impl Index for BTreeMap<String, Vec<IndexEntry>> {
    fn versions(&self, id: &str) -> Option<&[IndexEntry]> {
        self.get(id).map(Vec::as_slice)
    }

    fn known(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// What to resolve.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Plugins asked for, with a requirement (`*` for any).
    pub wants: Vec<(String, VersionReq)>,
    /// Installed plugins and their versions: they stay installed.
    pub installed: BTreeMap<String, Version>,
    /// Versions pinned by `ucms.lock`.
    pub locked: BTreeMap<String, Version>,
    /// Plugins to move to their newest acceptable version instead of keeping what is installed.
    pub upgrade: BTreeSet<String>,
    /// The `ucms:host` API versions this host provides.
    pub host_api: Vec<Version>,
}

/// The chosen version of every plugin involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub plugins: BTreeMap<String, IndexEntry>,
}

/// What applying a resolution changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Install {
        id: String,
        version: Version,
    },
    Upgrade {
        id: String,
        from: Version,
        to: Version,
    },
    Downgrade {
        id: String,
        from: Version,
        to: Version,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error("no plugin named '{0}' is in the registry")]
    UnknownPlugin(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    MissingInterface(Box<MissingInterface>),
}

/// A plugin requires an interface no chosen plugin provides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{plugin} {version} requires the interface {interface} {req}, but no plugin that would be installed provides it{}",
    if providers.is_empty() { String::new() } else { format!("\n  hint: install one that does: {}", providers.join(", ")) }
)]
pub struct MissingInterface {
    pub plugin: String,
    pub version: Version,
    pub interface: String,
    pub req: String,
    pub providers: Vec<String>,
}

struct Provider<'a, I: Index> {
    index: &'a I,
    request: &'a Request,
}

impl<I: Index> Provider<'_, I> {
    /// The versions of `id` matching `req`, as a set of the versions that exist.
    fn matching(&self, id: &str, req: &VersionReq) -> Ranges<Version> {
        let mut set = Ranges::empty();
        for entry in self.index.versions(id).unwrap_or_default() {
            if req.matches(&entry.version) {
                set = set.union(&Ranges::singleton(entry.version.clone()));
            }
        }
        set
    }

    fn host_matching(&self, req: &VersionReq) -> Ranges<Version> {
        self.request
            .host_api
            .iter()
            .filter(|v| req.matches(v))
            .fold(Ranges::empty(), |set, v| {
                set.union(&Ranges::singleton(v.clone()))
            })
    }

    /// Whether a yanked version may still be chosen: it is what's installed or locked.
    fn pinned(&self, id: &str, version: &Version) -> bool {
        self.request.installed.get(id) == Some(version)
            || self.request.locked.get(id) == Some(version)
    }

    fn entry(&self, id: &str, version: &Version) -> Option<&IndexEntry> {
        self.index
            .versions(id)?
            .iter()
            .find(|e| &e.version == version)
    }
}

impl<I: Index> DependencyProvider for Provider<'_, I> {
    type P = Pkg;
    type V = Version;
    type VS = Ranges<Version>;
    type M = String;
    type Priority = (u8, Reverse<usize>);
    type Err = std::convert::Infallible;

    fn prioritize(
        &self,
        package: &Pkg,
        range: &Ranges<Version>,
        _stats: &PackageResolutionStatistics,
    ) -> Self::Priority {
        match package {
            Pkg::Root | Pkg::Host => (2, Reverse(0)),
            // Fewest candidates first: decisions that can't be wrong come early.
            Pkg::Plugin(id) => {
                let candidates = self
                    .index
                    .versions(id)
                    .unwrap_or_default()
                    .iter()
                    .filter(|e| range.contains(&e.version))
                    .count();
                (1, Reverse(candidates))
            }
        }
    }

    fn choose_version(
        &self,
        package: &Pkg,
        range: &Ranges<Version>,
    ) -> Result<Option<Version>, Self::Err> {
        Ok(match package {
            Pkg::Root => Some(Version::new(0, 0, 0)),
            Pkg::Host => self
                .request
                .host_api
                .iter()
                .filter(|v| range.contains(v))
                .max()
                .cloned(),
            Pkg::Plugin(id) => {
                let usable: Vec<&IndexEntry> = self
                    .index
                    .versions(id)
                    .unwrap_or_default()
                    .iter()
                    .filter(|e| {
                        range.contains(&e.version) && (!e.yanked || self.pinned(id, &e.version))
                    })
                    .collect();
                let preferred = (!self.request.upgrade.contains(id))
                    .then(|| {
                        self.request
                            .installed
                            .get(id)
                            .or_else(|| self.request.locked.get(id))
                    })
                    .flatten()
                    .filter(|v| usable.iter().any(|e| &e.version == *v))
                    .cloned();
                preferred.or_else(|| usable.iter().map(|e| e.version.clone()).max())
            }
        })
    }

    fn get_dependencies(
        &self,
        package: &Pkg,
        version: &Version,
    ) -> Result<Dependencies<Pkg, Ranges<Version>, String>, Self::Err> {
        let mut deps: Vec<(Pkg, Ranges<Version>)> = Vec::new();
        match package {
            Pkg::Root => {
                for (id, req) in &self.request.wants {
                    deps.push((Pkg::Plugin(id.clone()), self.matching(id, req)));
                }
                for id in self.request.installed.keys() {
                    if !self.request.wants.iter().any(|(w, _)| w == id) {
                        deps.push((
                            Pkg::Plugin(id.clone()),
                            self.matching(id, &VersionReq::STAR),
                        ));
                    }
                }
            }
            Pkg::Host => {}
            Pkg::Plugin(id) => {
                let Some(entry) = self.entry(id, version) else {
                    return Ok(Dependencies::Unavailable(format!(
                        "{id} {version} is not in the registry"
                    )));
                };
                let Some(api) = entry.api_req() else {
                    return Ok(Dependencies::Unavailable(format!(
                        "{id} {version} has an invalid api requirement '{}'",
                        entry.api
                    )));
                };
                deps.push((Pkg::Host, self.host_matching(&api)));
                for (dep, req_text) in &entry.dependencies {
                    let Ok(req) = VersionReq::parse(req_text) else {
                        return Ok(Dependencies::Unavailable(format!(
                            "{id} {version} has an invalid requirement '{req_text}' on {dep}"
                        )));
                    };
                    if self.index.versions(dep).is_none() {
                        return Ok(Dependencies::Unavailable(format!(
                            "{id} {version} needs {dep} {req_text}, which is not in the registry"
                        )));
                    }
                    deps.push((Pkg::Plugin(dep.clone()), self.matching(dep, &req)));
                }
            }
        }
        Ok(Dependencies::Available(
            deps.into_iter().collect::<DependencyConstraints<_, _>>(),
        ))
    }
}

/// Resolves `request` against `index`.
pub fn resolve<I: Index>(index: &I, request: &Request) -> Result<Resolution, ResolveError> {
    for (id, _) in &request.wants {
        if index.versions(id).is_none() {
            return Err(ResolveError::UnknownPlugin(id.clone()));
        }
    }
    let provider = Provider { index, request };
    let solution = match pubgrub::resolve(&provider, Pkg::Root, Version::new(0, 0, 0)) {
        Ok(solution) => solution,
        Err(pubgrub::PubGrubError::NoSolution(tree)) => {
            return Err(ResolveError::Conflict(report::explain(&tree, &provider)));
        }
        Err(other) => return Err(ResolveError::Conflict(other.to_string())),
    };
    let mut plugins = BTreeMap::new();
    for (pkg, version) in solution {
        if let Pkg::Plugin(id) = pkg {
            let entry = provider
                .entry(&id, &version)
                .cloned()
                .expect("the solver only chooses versions that exist");
            plugins.insert(id, entry);
        }
    }
    check_interfaces(index, &plugins)?;
    Ok(Resolution { plugins })
}

fn check_interfaces<I: Index>(
    index: &I,
    plugins: &BTreeMap<String, IndexEntry>,
) -> Result<(), ResolveError> {
    for entry in plugins.values() {
        for (interface, req_text) in &entry.requires {
            let req = VersionReq::parse(req_text).unwrap_or(VersionReq::STAR);
            let provided = plugins.values().any(|p| {
                p.provides
                    .get(interface)
                    .and_then(|v| Version::parse(v).ok())
                    .is_some_and(|v| req.matches(&v))
            });
            if !provided {
                return Err(ResolveError::MissingInterface(Box::new(MissingInterface {
                    plugin: entry.id.clone(),
                    version: entry.version.clone(),
                    interface: interface.clone(),
                    req: req_text.clone(),
                    providers: providers_of(index, interface, &req),
                })));
            }
        }
    }
    Ok(())
}

/// Plugins in the index (among those fetched) with a version that provides `interface`.
fn providers_of<I: Index>(index: &I, interface: &str, req: &VersionReq) -> Vec<String> {
    let mut out = Vec::new();
    for id in index.known() {
        let provides = index.versions(&id).unwrap_or_default().iter().any(|e| {
            e.provides
                .get(interface)
                .and_then(|v| Version::parse(v).ok())
                .is_some_and(|v| req.matches(&v))
        });
        if provides {
            out.push(id);
        }
    }
    out
}

impl Resolution {
    /// The changes from `installed` to this resolution, in dependency order (dependencies first).
    pub fn changes(&self, installed: &BTreeMap<String, Version>) -> Vec<Change> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for id in self.plugins.keys() {
            self.visit(id, &mut seen, &mut order);
        }
        order
            .into_iter()
            .filter_map(|id| {
                let to = self.plugins[&id].version.clone();
                match installed.get(&id) {
                    None => Some(Change::Install { id, version: to }),
                    Some(from) if *from < to => Some(Change::Upgrade {
                        id,
                        from: from.clone(),
                        to,
                    }),
                    Some(from) if *from > to => Some(Change::Downgrade {
                        id,
                        from: from.clone(),
                        to,
                    }),
                    Some(_) => None,
                }
            })
            .collect()
    }

    fn visit(&self, id: &str, seen: &mut BTreeSet<String>, order: &mut Vec<String>) {
        if !seen.insert(id.to_string()) {
            return;
        }
        if let Some(entry) = self.plugins.get(id) {
            for dep in entry.dependencies.keys() {
                self.visit(dep, seen, order);
            }
            order.push(id.to_string());
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Install { id, version } => write!(f, "install {id} {version}"),
            Self::Upgrade { id, from, to } => write!(f, "upgrade {id} {from} → {to}"),
            Self::Downgrade { id, from, to } => write!(f, "downgrade {id} {from} → {to}"),
        }
    }
}
