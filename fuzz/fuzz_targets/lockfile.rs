//! Text → `ucms.lock` (`ucms_resolver::lockfile::Lockfile::parse`).
//!
//! Checks: no panic; what parses writes back (`to_text`, what `save` writes) to text that parses
//! to the same plugins, sorted by id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ucms_resolver::Lockfile;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Lockfile::parse(&text, "ucms.lock") {
        Ok(lock) => {
            let written = lock.to_text();
            let again = Lockfile::parse(&written, "ucms.lock")
                .unwrap_or_else(|e| panic!("a written lockfile doesn't parse: {e}\n{written}"));
            let mut sorted = lock.clone();
            sorted.plugins.sort_by(|a, b| a.id.cmp(&b.id));
            assert_eq!(again, sorted);
            let _ = lock.versions();
        }
        Err(e) => assert!(e.to_string().contains("hint:")),
    }
});
