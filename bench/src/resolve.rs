//! Resolver time on a synthetic index: 1,000 packages × 20 versions.
//!
//! The index is generated from a fixed seed, shaped like a real ecosystem: packages depend only on
//! packages generated before them (a DAG, as published versions must be), most have a few
//! dependencies, mostly on a hundred foundation packages, two major lines per package whose newer versions tighten their requirements,
//! some old versions need an API this host doesn't provide, and one version in twenty is yanked.
//! Scenarios:
//! - a typical install: one top-level plugin (and its dependency closure) into a site that already
//!   has 30 plugins installed and locked;
//! - an upgrade of one installed plugin, keeping everything else as it is;
//! - a large install: ten top-level plugins at once into an empty site;
//! - a conflict: two plugins whose requirements can't both be met, timed up to the written report.
//!
//! Each is run `--runs` times; the table shows median, p95 and max against the 50 ms budget.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use semver::{Version, VersionReq};
use ucms_package::index::IndexEntry;
use ucms_package::keys::KeyId;
use ucms_package::signature::PackageSignature;
use ucms_resolver::{Request, ResolveError, resolve};

const PACKAGES: usize = 1_000;
const FOUNDATIONS: usize = 100;
const VERSIONS_PER_MAJOR: u64 = 10;
const BUDGET: Duration = Duration::from_millis(50);

/// splitmix64: a deterministic stream, so every run resolves the same index.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn id(i: usize) -> String {
    format!("p{i:04}")
}

fn entry(
    id: &str,
    version: Version,
    api: &str,
    dependencies: BTreeMap<String, String>,
) -> IndexEntry {
    IndexEntry {
        id: id.to_string(),
        version,
        publisher: "bench".into(),
        description: String::new(),
        api: api.into(),
        dependencies,
        provides: BTreeMap::new(),
        requires: BTreeMap::new(),
        capabilities: Vec::new(),
        categories: Vec::new(),
        digest: "sha256:00".into(),
        size: 0,
        signature: PackageSignature {
            key_id: KeyId("bench".into()),
            digest: "sha256:00".into(),
            signature: String::new(),
        },
        yanked: false,
        published_at: 0,
    }
}

/// The synthetic index: `PACKAGES` packages, 20 versions each (1.0.0–1.9.0 and 2.0.0–2.9.0).
pub fn synthetic_index(seed: u64) -> BTreeMap<String, Vec<IndexEntry>> {
    let mut rng = Rng(seed);
    let mut index = BTreeMap::new();
    for i in 0..PACKAGES {
        // The first 100 packages are foundations (content, media, auth helpers...) that
        // others build on; the first 20 of them depend on nothing. Up to five dependencies on
        // packages generated earlier: mostly foundations, sometimes a neighbour.
        let dep_count = if i < 20 { 0 } else { rng.below(6) as usize };
        let mut deps = BTreeSet::new();
        for _ in 0..dep_count {
            let j = if i <= FOUNDATIONS || rng.below(4) != 0 {
                rng.below(i.min(FOUNDATIONS) as u64) as usize
            } else {
                i - 1 - rng.below(50) as usize
            };
            deps.insert(j);
        }
        let mut versions = Vec::new();
        for major in 1..=2u64 {
            for minor in 0..VERSIONS_PER_MAJOR {
                let version = Version::new(major, minor, 0);
                let mut dependencies = BTreeMap::new();
                for &j in &deps {
                    // 1.x asks for ^1 of its dependencies; 2.x moves to ^2 from some minor on,
                    // and later minors need a newer minor of the dependency.
                    let req = if major == 1 {
                        "^1".to_string()
                    } else if minor < 3 {
                        ">=1.5, <3".to_string()
                    } else {
                        format!("^2.{}", (minor / 3).min(VERSIONS_PER_MAJOR - 1))
                    };
                    dependencies.insert(id(j), req);
                }
                // Old releases targeted an API this host no longer provides.
                let api = if major == 1 && minor < 2 {
                    "^0.0.1"
                } else {
                    "^0.1"
                };
                let mut e = entry(&id(i), version, api, dependencies);
                e.yanked = rng.below(20) == 0;
                versions.push(e);
            }
        }
        index.insert(id(i), versions);
    }
    index
}

struct Scenario {
    name: &'static str,
    request: Request,
    /// An index of its own (with extra packages), or `None` for the synthetic one.
    index: Option<BTreeMap<String, Vec<IndexEntry>>>,
    expect_conflict: bool,
}

fn host_api() -> Vec<Version> {
    vec![Version::new(0, 1, 0)]
}

fn scenarios(index: &BTreeMap<String, Vec<IndexEntry>>) -> anyhow::Result<Vec<Scenario>> {
    // A site with 30 plugins installed: what resolving 30 packages from the lower half chose.
    let base = Request {
        wants: (300..330).map(|i| (id(i), VersionReq::STAR)).collect(),
        host_api: host_api(),
        ..Request::default()
    };
    let resolved = resolve(index, &base).map_err(|e| anyhow::anyhow!("the base site: {e}"))?;
    let installed: BTreeMap<String, Version> = resolved
        .plugins
        .iter()
        .filter(|(id, _)| base.wants.iter().any(|(w, _)| w == *id))
        .map(|(id, e)| (id.clone(), e.version.clone()))
        .collect();
    let locked: BTreeMap<String, Version> = resolved
        .plugins
        .iter()
        .map(|(id, e)| (id.clone(), e.version.clone()))
        .collect();
    let with_site = |wants: Vec<(String, VersionReq)>, upgrade: BTreeSet<String>| Request {
        wants,
        installed: installed.clone(),
        locked: locked.clone(),
        upgrade,
        host_api: host_api(),
    };
    let mut all_installed: Vec<(String, VersionReq)> = installed
        .keys()
        .map(|id| (id.clone(), VersionReq::STAR))
        .collect();
    all_installed.push((id(990), VersionReq::STAR));
    let upgrade_one: Vec<(String, VersionReq)> = installed
        .keys()
        .map(|id| (id.clone(), VersionReq::STAR))
        .collect();

    // Two plugins pinned to different majors of a shared dependency.
    let mut conflict = index.clone();
    let a = entry(
        "conflict-a",
        Version::new(1, 0, 0),
        "^0.1",
        BTreeMap::from([(id(500), "^1".to_string())]),
    );
    let b = entry(
        "conflict-b",
        Version::new(1, 0, 0),
        "^0.1",
        BTreeMap::from([(id(500), "^2".to_string())]),
    );
    conflict.insert(a.id.clone(), vec![a]);
    conflict.insert(b.id.clone(), vec![b]);

    Ok(vec![
        Scenario {
            name: "typical install",
            request: with_site(all_installed, BTreeSet::new()),
            index: None,
            expect_conflict: false,
        },
        Scenario {
            name: "upgrade one plugin",
            request: with_site(upgrade_one, BTreeSet::from([id(315)])),
            index: None,
            expect_conflict: false,
        },
        Scenario {
            name: "install 10 at once",
            request: Request {
                wants: (990..1000).map(|i| (id(i), VersionReq::STAR)).collect(),
                host_api: host_api(),
                ..Request::default()
            },
            index: None,
            expect_conflict: false,
        },
        Scenario {
            name: "conflict report",
            request: Request {
                wants: vec![
                    ("conflict-a".into(), VersionReq::STAR),
                    ("conflict-b".into(), VersionReq::STAR),
                ],
                host_api: host_api(),
                ..Request::default()
            },
            index: Some(conflict),
            expect_conflict: true,
        },
    ])
}

pub fn run(runs: usize, seed: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let index = synthetic_index(seed);
    let versions: usize = index.values().map(Vec::len).sum();
    let edges: usize = index
        .values()
        .flat_map(|v| v.iter().map(|e| e.dependencies.len()))
        .sum();
    println!(
        "synthetic index: {} packages, {versions} versions, {edges} dependency edges (seed {seed}, built in {:.0?})",
        index.len(),
        started.elapsed()
    );
    let scenarios = scenarios(&index)?;
    {
        println!("{runs} runs per scenario; budget {BUDGET:?}\n");
        println!(
            "{:<20} {:>9} {:>10} {:>10} {:>10} {:>12}",
            "scenario", "plugins", "median", "p95", "max", "median/budget"
        );
        for s in &scenarios {
            let idx = s.index.as_ref().unwrap_or(&index);
            let mut times = Vec::with_capacity(runs);
            let mut chosen = 0;
            for _ in 0..runs {
                let t = Instant::now();
                let result = resolve(idx, &s.request);
                let elapsed = t.elapsed();
                match (result, s.expect_conflict) {
                    (Ok(r), false) => chosen = r.plugins.len(),
                    (Err(ResolveError::Conflict(report)), true) => {
                        anyhow::ensure!(
                            report.contains("conflict-a") && report.contains("conflict-b"),
                            "the conflict report names both sides: {report}"
                        );
                    }
                    (Ok(_), true) => anyhow::bail!("{}: expected a conflict", s.name),
                    (Err(e), _) => anyhow::bail!("{}: {e}", s.name),
                }
                times.push(elapsed);
            }
            times.sort();
            let median = times[times.len() / 2];
            let p95 = times[(times.len() * 95 / 100).min(times.len() - 1)];
            let max = *times.last().expect("runs > 0");
            println!(
                "{:<20} {:>9} {:>10.2?} {:>10.2?} {:>10.2?} {:>12.3}",
                s.name,
                if s.expect_conflict {
                    "-".to_string()
                } else {
                    chosen.to_string()
                },
                median,
                p95,
                max,
                median.as_secs_f64() / BUDGET.as_secs_f64()
            );
        }
    }
    Ok(())
}
