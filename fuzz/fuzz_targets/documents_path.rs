//! Text → `ucms_documents::Path::parse`, the paths filters, sorts, projections and indexes use.
//!
//! Checks: no panic; an accepted path is within the depth and segment caps, prints back as the
//! same text and parses to the same path, and holds nothing that could break out of the quoted
//! JSON path labels the SQL compilers splice it into (no quote, backslash or control character);
//! looking it up in any JSON value never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ucms_documents::{MAX_PATH_DEPTH, MAX_SEGMENT_BYTES, Path, Segment, reference};

fuzz_target!(|data: &[u8]| {
    let (path_bytes, json_bytes) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(path_bytes);
    let Ok(path) = Path::parse(&text) else { return };
    assert!(path.segments().len() <= MAX_PATH_DEPTH);
    assert_eq!(path.to_string(), text);
    assert_eq!(Path::parse(&path.to_string()).expect("reparses"), path);
    for segment in path.segments() {
        if let Segment::Key(k) = segment {
            assert!(!k.is_empty() && k.len() <= MAX_SEGMENT_BYTES);
            assert!(
                !k.chars()
                    .any(|c| c == '\'' || c == '"' || c == '\\' || c.is_control()),
                "{k:?} would need quoting in SQL"
            );
        }
    }
    if path.as_pseudo().is_none()
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(json_bytes)
    {
        let _ = reference::lookup_data(&value, &path);
        let _ = reference::project(&value, std::slice::from_ref(&path));
    }
});
