//! Route patterns and request paths: the table validation and dispatch share
//! (`ucms_manifest::RouteTable`), fed directly and through a manifest's `[[routes]]`.
//!
//! Checks: no panic inserting any pattern or matching any path; every pattern a manifest accepts
//! builds; a match names a route of the requested method; a static route matches itself; a
//! parameter route matches its own pattern with the parameters filled in, and hands them back.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ucms_fuzz::{manifest, toml_str};
use ucms_manifest::{Manifest, Method, RouteMiss, RouteTable};

#[derive(Arbitrary, Debug)]
struct Input {
    routes: Vec<(u8, String)>,
    requests: Vec<(u8, String)>,
    fill: String,
}

fn method(b: u8) -> Method {
    Method::ALL[usize::from(b) % Method::ALL.len()]
}

fuzz_target!(|input: Input| {
    let routes = &input.routes[..input.routes.len().min(16)];
    let mut raw = RouteTable::default();
    for (i, (m, path)) in routes.iter().enumerate() {
        let _ = raw.insert(method(*m), path, i);
    }
    for (m, path) in input.requests.iter().take(16) {
        if let Ok(hit) = raw.at(method(*m), path) {
            assert!(hit.index < routes.len());
        }
    }

    let mut text = manifest("routes");
    text.push_str("[permissions]\n\"p\" = \"d\"\n");
    for (m, path) in routes {
        text.push_str(&format!(
            "[[routes]]\nmethod = \"{}\"\npath = {}\npermission = \"p\"\n",
            method(*m),
            toml_str(path)
        ));
    }
    let Ok(m) = Manifest::parse(&text) else {
        return;
    };
    let table = RouteTable::build(&m.routes).expect("validated routes build");
    for (m_byte, path) in input.requests.iter().take(16) {
        let wanted = method(*m_byte);
        match table.at(wanted, path) {
            Ok(hit) => assert_eq!(m.routes[hit.index].method, wanted),
            Err(RouteMiss::MethodNotAllowed(others)) => {
                assert!(!others.is_empty() && !others.contains(&wanted))
            }
            Err(RouteMiss::NotFound) => {}
        }
    }
    // A value without '/' fills one parameter segment.
    let fill: String = input
        .fill
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(12)
        .collect();
    let fill = if fill.is_empty() {
        "x".to_string()
    } else {
        fill
    };
    for (i, route) in m.routes.iter().enumerate() {
        if !route.path.contains('{') {
            let hit = table.at(route.method, &route.path).unwrap_or_else(|e| {
                panic!("{} {:?} misses itself: {e:?}", route.method, route.path)
            });
            assert_eq!(hit.index, i);
            continue;
        }
        let mut concrete = String::new();
        let mut names = Vec::new();
        let mut rest = route.path.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            concrete.push_str(&rest[..open]);
            names.push(
                rest[open + 1..open + close]
                    .trim_start_matches('*')
                    .to_string(),
            );
            concrete.push_str(&fill);
            rest = &rest[open + close + 1..];
        }
        concrete.push_str(rest);
        if concrete.contains('{') || concrete.contains('}') {
            continue;
        }
        // Another route may win the concrete path (a static one, say); whichever does must be
        // of this method, and this route's own match must hand back its parameters.
        let hit = table
            .at(route.method, &concrete)
            .unwrap_or_else(|e| panic!("{} {} misses {concrete}: {e:?}", route.method, route.path));
        if hit.index == i {
            let got: Vec<&str> = hit.params.iter().map(|(k, _)| k.as_str()).collect();
            let want: Vec<&str> = names.iter().map(String::as_str).collect();
            assert_eq!(got, want, "{} against {concrete}", route.path);
            assert!(hit.params.iter().all(|(_, v)| v == &fill));
        }
    }
});
