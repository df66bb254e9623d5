//! Bytes → `.ucpkg` unpack (zstd, then tar, then the manifest), under small caps.
//!
//! Checks: no panic and no allocation past the caps; what unpacks obeys them (sizes, entry
//! count, asset paths relative and free of `..`); it packs again reproducibly and unpacks to the
//! same contents.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ucms_fuzz::LIMITS;
use ucms_package::archive::{Contents, pack, unpack};

pub fn check(contents: &Contents) {
    let mut total = contents.manifest_text.len() + contents.wasm.len();
    total += contents.readme.as_ref().map_or(0, String::len);
    total += contents.changelog.as_ref().map_or(0, String::len);
    assert!(contents.wasm.len() as u64 <= LIMITS.max_file);
    assert!(contents.assets.len() <= LIMITS.max_entries);
    for (path, bytes) in &contents.assets {
        assert!(
            !path.is_empty() && !path.starts_with('/') && !path.contains('\\'),
            "{path:?}"
        );
        assert!(
            path.split('/')
                .all(|p| !p.is_empty() && p != ".." && p != "."),
            "{path:?}"
        );
        assert!(bytes.len() as u64 <= LIMITS.max_file);
        total += bytes.len();
    }
    assert!(total as u64 <= LIMITS.max_uncompressed);
    let packed = pack(contents);
    assert_eq!(packed, pack(contents), "packing is reproducible");
    if packed.len() as u64 <= LIMITS.max_compressed {
        let again = unpack(&packed, &LIMITS).expect("a packed package unpacks");
        assert_eq!(&again, contents);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(contents) = unpack(data, &LIMITS) {
        check(&contents);
    }
});
