//! Turns pubgrub's derivation tree into sentences a site owner can act on.
//!
//! Every leaf of the tree is a fact ("commerce 2.1.0 needs content ^3", "you asked for media
//! ^1.4", "hello 0.3.0 needs ucms:host ^0.2, but this host provides 0.1.0"). The report leads with
//! the clash when two packages need incompatible versions of a third, then lists the facts.

use std::collections::BTreeMap;

use pubgrub::{DerivationTree, External, Ranges};
use semver::Version;

use crate::{HOST_API, Index, Pkg, Provider};

type Tree = DerivationTree<Pkg, Ranges<Version>, String>;

/// One leaf of the tree, as a sentence and, for dependencies, who needs what.
struct Fact {
    sentence: String,
    /// (dependent, dependency, requirement text) for "X needs Y R".
    need: Option<(String, String, String)>,
}

pub(crate) fn explain<I: Index>(tree: &Tree, provider: &Provider<'_, I>) -> String {
    let mut facts: Vec<Fact> = Vec::new();
    collect(tree, provider, &mut facts);
    let mut seen = std::collections::BTreeSet::new();
    facts.retain(|f| seen.insert(f.sentence.clone()));

    // Two dependents that need different things of the same package: the heart of most conflicts.
    let mut by_dependency: BTreeMap<&str, Vec<&Fact>> = BTreeMap::new();
    for fact in &facts {
        if let Some((_, dependency, _)) = &fact.need {
            by_dependency
                .entry(dependency.as_str())
                .or_default()
                .push(fact);
        }
    }
    let headline = by_dependency
        .values()
        .find_map(|needs| {
            let first = needs[0];
            let other = needs
                .iter()
                .find(|f| f.need.as_ref().map(|n| &n.0) != first.need.as_ref().map(|n| &n.0))?;
            Some(format!("{}, but {}", first.sentence, other.sentence))
        })
        .or_else(|| {
            facts
                .iter()
                .rev()
                .find(|f| !f.sentence.starts_with("you asked"))
                .map(|f| f.sentence.clone())
        })
        .unwrap_or_else(|| "the requirements can't all be met".to_string());

    let mut out = format!("cannot install: {headline}\n  because:");
    for fact in &facts {
        out.push_str("\n  - ");
        out.push_str(&fact.sentence);
    }
    let host = facts
        .iter()
        .any(|f| f.need.as_ref().is_some_and(|n| n.1 == HOST_API));
    out.push_str(if host {
        "\n  hint: choose a version built for this host's API, or upgrade UCMS"
    } else {
        "\n  hint: relax a requirement, upgrade the plugin that holds the others back, or choose other versions"
    });
    out
}

fn collect<I: Index>(tree: &Tree, provider: &Provider<'_, I>, facts: &mut Vec<Fact>) {
    match tree {
        DerivationTree::Derived(derived) => {
            collect(&derived.cause1, provider, facts);
            collect(&derived.cause2, provider, facts);
        }
        DerivationTree::External(external) => {
            if let Some(fact) = describe(external, provider) {
                facts.push(fact);
            }
        }
    }
}

fn describe<I: Index>(
    external: &External<Pkg, Ranges<Version>, String>,
    provider: &Provider<'_, I>,
) -> Option<Fact> {
    match external {
        External::NotRoot(..) => None,
        External::NoVersions(Pkg::Host, _) => Some(Fact {
            sentence: format!("this host provides {HOST_API} {}", host_versions(provider)),
            need: None,
        }),
        External::NoVersions(Pkg::Plugin(id), range) => Some(Fact {
            sentence: no_versions(id, range, provider),
            need: None,
        }),
        External::NoVersions(Pkg::Root, _) => None,
        External::Custom(_, _, reason) => Some(Fact {
            sentence: reason.clone(),
            need: None,
        }),
        External::FromDependencyOf(Pkg::Root, _, Pkg::Plugin(dep), _) => {
            let req = provider
                .request
                .wants
                .iter()
                .find(|(id, _)| id == dep)
                .map(|(_, req)| req.to_string())
                .unwrap_or_else(|| match provider.request.installed.get(dep) {
                    Some(v) => format!("(installed: {v})"),
                    None => "*".into(),
                });
            let sentence = if provider.request.wants.iter().any(|(id, _)| id == dep) {
                format!("you asked for {dep} {req}")
            } else {
                format!("{dep} is installed {req} and stays installed")
            };
            Some(Fact {
                sentence,
                need: Some(("you".into(), dep.clone(), req)),
            })
        }
        External::FromDependencyOf(Pkg::Plugin(id), versions, Pkg::Host, _) => {
            let (shown, entry) = dependent(id, versions, provider)?;
            Some(Fact {
                sentence: format!(
                    "{id} {shown} needs {HOST_API} {}, but this host provides {}",
                    entry.api,
                    host_versions(provider)
                ),
                need: Some((id.clone(), HOST_API.into(), entry.api.clone())),
            })
        }
        External::FromDependencyOf(Pkg::Plugin(id), versions, Pkg::Plugin(dep), _) => {
            let (shown, entry) = dependent(id, versions, provider)?;
            let req = entry
                .dependencies
                .get(dep)
                .cloned()
                .unwrap_or_else(|| "*".into());
            Some(Fact {
                sentence: format!("{id} {shown} needs {dep} {req}"),
                need: Some((id.clone(), dep.clone(), req)),
            })
        }
        External::FromDependencyOf(..) => None,
    }
}

/// How to name the versions of a dependent in a sentence, and the entry whose requirements to
/// quote (the newest of them: pubgrub groups versions that need the same things).
fn dependent<'a, I: Index>(
    id: &str,
    versions: &Ranges<Version>,
    provider: &'a Provider<'_, I>,
) -> Option<(String, &'a ucms_package::index::IndexEntry)> {
    let mut inside: Vec<&ucms_package::index::IndexEntry> = provider
        .index
        .versions(id)?
        .iter()
        .filter(|e| versions.contains(&e.version))
        .collect();
    inside.sort_by(|a, b| a.version.cmp(&b.version));
    let newest = *inside.last()?;
    let shown = match inside.as_slice() {
        [one] => one.version.to_string(),
        [first, .., last] if inside.len() > 3 => format!("{} to {}", first.version, last.version),
        many => join_or(
            &many
                .iter()
                .map(|e| e.version.to_string())
                .collect::<Vec<_>>(),
        ),
    };
    Some((shown, newest))
}

fn no_versions<I: Index>(id: &str, range: &Ranges<Version>, provider: &Provider<'_, I>) -> String {
    let Some(all) = provider.index.versions(id) else {
        return format!("there is no plugin '{id}' in the registry");
    };
    let matching: Vec<&ucms_package::index::IndexEntry> =
        all.iter().filter(|e| range.contains(&e.version)).collect();
    if matching.is_empty() {
        let available: Vec<String> = all
            .iter()
            .filter(|e| !e.yanked)
            .map(|e| e.version.to_string())
            .collect();
        return format!(
            "no version of {id} meets that (available: {})",
            if available.is_empty() {
                "none".into()
            } else {
                join_or(&available)
            }
        );
    }
    let yanked: Vec<String> = matching
        .iter()
        .filter(|e| e.yanked)
        .map(|e| e.version.to_string())
        .collect();
    if yanked.len() == matching.len() {
        format!(
            "{id} {} {} yanked",
            join_or(&yanked),
            if yanked.len() == 1 { "is" } else { "are" }
        )
    } else {
        format!(
            "no usable version of {id} is left among {}",
            join_or(
                &matching
                    .iter()
                    .map(|e| e.version.to_string())
                    .collect::<Vec<_>>()
            )
        )
    }
}

fn host_versions<I: Index>(provider: &Provider<'_, I>) -> String {
    join_or(
        &provider
            .request
            .host_api
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
    )
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
