//! `ucms-plugin.toml` text → `Manifest::parse` (TOML, then every validation rule).
//!
//! Checks: no panic (error positions are computed from spans into the text); an error has a
//! message; what validation accepts the host can use: its routes build the same table
//! `LoadedPlugin` builds, its capability summary (consent screens, the index) and its qualified
//! permissions render, and its topic patterns match.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ucms_manifest::{Manifest, RouteTable};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Manifest::parse(&text) {
        Ok(m) => {
            let table = RouteTable::build(&m.routes)
                .unwrap_or_else(|e| panic!("validated routes don't build: {e}"));
            for (i, route) in m.routes.iter().enumerate() {
                if !route.path.contains('{') {
                    let hit = table.at(route.method, &route.path).unwrap_or_else(|e| {
                        panic!("{} {} misses itself: {e:?}", route.method, route.path)
                    });
                    assert_eq!(hit.index, i, "a static route must find itself");
                }
            }
            let _ = m.capabilities.describe();
            for local in m.permissions.keys() {
                assert!(m.qualified_permission(local).starts_with(m.id.as_str()));
            }
            for s in &m.subscriptions {
                let _ = m.subscribes_to(s.topic.as_str());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
