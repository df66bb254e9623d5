//! Resolution scenarios, and the reports a site owner reads when there is no solution.

use std::collections::BTreeMap;

use semver::{Version, VersionReq};
use ucms_package::index::IndexEntry;
use ucms_package::keys::KeyId;
use ucms_package::signature::PackageSignature;
use ucms_resolver::{Change, LockedPlugin, Lockfile, Request, ResolveError, resolve};

fn entry(id: &str, version: &str, deps: &[(&str, &str)]) -> IndexEntry {
    IndexEntry {
        id: id.into(),
        version: Version::parse(version).unwrap(),
        publisher: "acme".into(),
        description: String::new(),
        api: "^0.1".into(),
        dependencies: deps
            .iter()
            .map(|(d, r)| (d.to_string(), r.to_string()))
            .collect(),
        provides: BTreeMap::new(),
        requires: BTreeMap::new(),
        capabilities: Vec::new(),
        categories: Vec::new(),
        digest: format!("sha256:{id}{version}"),
        size: 1,
        signature: PackageSignature {
            key_id: KeyId("ed25519:0".into()),
            digest: String::new(),
            signature: String::new(),
        },
        yanked: false,
        published_at: 0,
    }
}

fn index(entries: Vec<IndexEntry>) -> BTreeMap<String, Vec<IndexEntry>> {
    let mut map: BTreeMap<String, Vec<IndexEntry>> = BTreeMap::new();
    for e in entries {
        map.entry(e.id.clone()).or_default().push(e);
    }
    map
}

fn want(id: &str, req: &str) -> (String, VersionReq) {
    (id.into(), VersionReq::parse(req).unwrap())
}

fn request(wants: &[(&str, &str)]) -> Request {
    Request {
        wants: wants.iter().map(|(i, r)| want(i, r)).collect(),
        host_api: vec![Version::new(0, 1, 0)],
        ..Request::default()
    }
}

fn chosen(
    index: &BTreeMap<String, Vec<IndexEntry>>,
    request: &Request,
) -> BTreeMap<String, String> {
    resolve(index, request)
        .unwrap()
        .plugins
        .into_iter()
        .map(|(id, e)| (id, e.version.to_string()))
        .collect()
}

fn conflict(index: &BTreeMap<String, Vec<IndexEntry>>, request: &Request) -> String {
    match resolve(index, request) {
        Err(ResolveError::Conflict(report)) => report,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn a_diamond_resolves_to_the_newest_shared_version() {
    let idx = index(vec![
        entry("app", "1.0.0", &[("left", "^1"), ("right", "^1")]),
        entry("left", "1.0.0", &[("base", ">=1.0, <1.5")]),
        entry("right", "1.0.0", &[("base", "^1.2")]),
        entry("base", "1.0.0", &[]),
        entry("base", "1.2.0", &[]),
        entry("base", "1.4.1", &[]),
        entry("base", "1.6.0", &[]),
    ]);
    let got = chosen(&idx, &request(&[("app", "*")]));
    assert_eq!(got["base"], "1.4.1", "{got:?}");
    assert_eq!(got.len(), 4);
}

#[test]
fn a_conflict_names_both_sides() {
    let idx = index(vec![
        entry("commerce", "2.1.0", &[("content", "^3")]),
        entry("media", "1.4.0", &[("content", "^2")]),
        entry("content", "2.5.0", &[]),
        entry("content", "3.1.0", &[]),
    ]);
    let report = conflict(&idx, &request(&[("commerce", "^2.1"), ("media", "^1.4")]));
    assert!(
        report.contains("commerce 2.1.0 needs content ^3"),
        "{report}"
    );
    assert!(report.contains("media 1.4.0 needs content ^2"), "{report}");
    insta::assert_snapshot!("conflict", report);
}

#[test]
fn a_plugin_for_another_host_api_is_refused() {
    let idx = index(vec![{
        let mut e = entry("hello", "0.3.0", &[]);
        e.api = "^0.2".into();
        e
    }]);
    let report = conflict(&idx, &request(&[("hello", "*")]));
    assert!(
        report.contains("hello 0.3.0 needs ucms:host ^0.2, but this host provides 0.1.0"),
        "{report}"
    );
    insta::assert_snapshot!("host_api", report);

    // An older version that fits the host is chosen instead.
    let mut idx = idx;
    idx.get_mut("hello")
        .unwrap()
        .push(entry("hello", "0.2.0", &[]));
    assert_eq!(chosen(&idx, &request(&[("hello", "*")]))["hello"], "0.2.0");
}

#[test]
fn yanked_versions_are_skipped_unless_already_in_use() {
    let mut yanked = entry("hello", "0.2.0", &[]);
    yanked.yanked = true;
    let idx = index(vec![entry("hello", "0.1.0", &[]), yanked]);
    assert_eq!(chosen(&idx, &request(&[("hello", "*")]))["hello"], "0.1.0");

    let report = conflict(&idx, &request(&[("hello", "^0.2")]));
    insta::assert_snapshot!("yanked", report);

    let mut locked = request(&[("hello", "^0.2")]);
    locked.locked.insert("hello".into(), Version::new(0, 2, 0));
    assert_eq!(
        chosen(&idx, &locked)["hello"],
        "0.2.0",
        "a locked yanked version still resolves"
    );
}

#[test]
fn installs_change_as_little_as_possible() {
    let idx = index(vec![
        entry("content", "2.0.0", &[]),
        entry("content", "2.3.0", &[]),
        entry("media", "1.0.0", &[("content", "^2")]),
    ]);
    let mut req = request(&[("media", "*")]);
    req.installed
        .insert("content".into(), Version::new(2, 0, 0));
    let resolution = resolve(&idx, &req).unwrap();
    assert_eq!(
        resolution.plugins["content"].version,
        Version::new(2, 0, 0),
        "the installed version is kept"
    );
    assert_eq!(
        resolution.changes(&req.installed),
        vec![Change::Install {
            id: "media".into(),
            version: Version::new(1, 0, 0)
        }]
    );

    req.upgrade.insert("content".into());
    let resolution = resolve(&idx, &req).unwrap();
    assert_eq!(
        resolution.changes(&req.installed),
        vec![
            Change::Upgrade {
                id: "content".into(),
                from: Version::new(2, 0, 0),
                to: Version::new(2, 3, 0)
            },
            Change::Install {
                id: "media".into(),
                version: Version::new(1, 0, 0)
            },
        ],
        "dependencies come first"
    );
}

#[test]
fn required_interfaces_need_a_provider() {
    let mut shop = entry("shop", "1.0.0", &[]);
    shop.requires.insert("content/entries".into(), "^1".into());
    let mut content = entry("content", "1.2.0", &[]);
    content
        .provides
        .insert("content/entries".into(), "1.2.0".into());
    let idx = index(vec![shop.clone(), content]);
    let err = resolve(&idx, &request(&[("shop", "*")])).unwrap_err();
    assert!(
        matches!(err, ResolveError::MissingInterface { .. }),
        "{err}"
    );
    insta::assert_snapshot!("missing_interface", err.to_string());
    let got = chosen(&idx, &request(&[("shop", "*"), ("content", "*")]));
    assert_eq!(got.len(), 2);
}

#[test]
fn unknown_plugins_and_dependencies_are_named() {
    let idx = index(vec![entry("app", "1.0.0", &[("ghost", "^1")])]);
    assert_eq!(
        resolve(&idx, &request(&[("nothing", "*")])).unwrap_err(),
        ResolveError::UnknownPlugin("nothing".into())
    );
    let report = conflict(&idx, &request(&[("app", "*")]));
    assert!(
        report.contains("app 1.0.0 needs ghost ^1, which is not in the registry"),
        "{report}"
    );
}

#[test]
fn the_lockfile_round_trips_sorted() {
    let dir = std::env::temp_dir().join(format!("ucms-lock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut lock = Lockfile::load(&dir).unwrap();
    assert!(lock.plugins.is_empty());
    for id in ["zeta", "alpha"] {
        lock.set(LockedPlugin {
            id: id.into(),
            version: Version::new(1, 0, 0),
            digest: "sha256:00".into(),
            source: "registry+http://127.0.0.1:7070".into(),
        });
    }
    lock.save(&dir).unwrap();
    let text = std::fs::read_to_string(dir.join("ucms.lock")).unwrap();
    assert!(text.find("alpha").unwrap() < text.find("zeta").unwrap());
    let back = Lockfile::load(&dir).unwrap();
    assert_eq!(back.versions().len(), 2);
    std::fs::write(dir.join("ucms.lock"), "version = 7\n").unwrap();
    assert!(
        Lockfile::load(&dir)
            .unwrap_err()
            .to_string()
            .contains("format version 7")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
