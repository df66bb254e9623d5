//! Hostile tar archives → `.ucpkg` unpack: the entries are built field by field (any name bytes,
//! any type flag, lying sizes, GNU long names, duplicates, links, devices, `..`, absolute paths),
//! then compressed, optionally with a decompression bomb appended.
//!
//! Checks: no panic; an archive with a link, a device or another special entry, an unsafe path,
//! two entries with the same path, or more decompressed bytes than the cap is refused; what is
//! accepted obeys every cap and round-trips.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ucms_fuzz::{LIMITS, RawEntry, manifest, write_tar};
use ucms_package::archive::{Contents, pack, unpack};

#[derive(Arbitrary, Debug)]
enum Name {
    Manifest,
    Wasm,
    Readme,
    Asset(String),
    Raw(Vec<u8>),
    DotDot(u8),
    Absolute,
    DotSlash(Box<Name>),
}

#[derive(Arbitrary, Debug)]
struct Entry {
    name: Name,
    kind: u8,
    link: Vec<u8>,
    data: Vec<u8>,
    lie: Option<u16>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    entries: Vec<Entry>,
    /// Zero bytes (KiB) in one extra asset: compresses to almost nothing.
    bomb_kib: Option<u16>,
    level: u8,
    truncate: Option<u16>,
}

const KINDS: &[u8] = b"0\x005217346";

fn name(n: &Name) -> Vec<u8> {
    match n {
        Name::Manifest => b"ucms-plugin.toml".to_vec(),
        Name::Wasm => b"plugin.wasm".to_vec(),
        Name::Readme => b"README.md".to_vec(),
        Name::Asset(s) => format!("assets/{s}").into_bytes(),
        Name::Raw(b) => b.clone(),
        Name::DotDot(d) => {
            format!("assets/{}x", "../".repeat(usize::from(*d % 4) + 1)).into_bytes()
        }
        Name::Absolute => b"/etc/ucms-plugin.toml".to_vec(),
        Name::DotSlash(inner) => [b"./".as_slice(), &name(inner)].concat(),
    }
}

/// The path the unpacker should see (or `None`: it must refuse it).
fn normal(raw: &[u8]) -> Option<String> {
    let raw = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
    let text = std::str::from_utf8(raw).ok()?;
    if text.starts_with('/') || text.contains('\\') {
        return None;
    }
    let parts: Vec<&str> = text
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

fuzz_target!(|input: Input| {
    let mut entries: Vec<RawEntry> = input
        .entries
        .iter()
        .take(12)
        .map(|e| {
            let mut data = e.data.clone();
            if matches!(e.name, Name::Manifest) && data.len() < 4 {
                data = manifest("tarred").into_bytes();
            }
            RawEntry {
                name: name(&e.name),
                kind: KINDS[usize::from(e.kind) % KINDS.len()],
                link: e.link.clone(),
                data,
                claimed_size: e.lie.map(u64::from),
            }
        })
        .collect();
    if let Some(kib) = input.bomb_kib {
        entries.push(RawEntry {
            name: b"assets/bomb".to_vec(),
            kind: b'0',
            link: Vec::new(),
            data: vec![0; usize::from(kib % 2048) << 10],
            claimed_size: None,
        });
    }
    let tar = write_tar(&entries);
    let mut compressed =
        zstd::encode_all(tar.as_slice(), i32::from(input.level % 4) + 1).expect("zstd encodes");
    if let Some(cut) = input.truncate {
        compressed.truncate(usize::from(cut));
    }
    let Ok(contents) = unpack(&compressed, &LIMITS) else {
        return;
    };

    // Accepted: every entry was a plain file or a directory at a safe path, once; and the whole
    // stream fit the cap. (Lying sizes only shift where entries start; a stream that still parses
    // is judged by what it parsed to, below.)
    let honest = entries
        .iter()
        .all(|e| e.claimed_size.is_none_or(|s| s == e.data.len() as u64));
    if honest && input.truncate.is_none() {
        let mut seen = std::collections::BTreeSet::new();
        for e in &entries {
            assert!(
                matches!(e.kind, b'0' | 0 | b'5'),
                "accepted a {:?} entry",
                e.kind as char
            );
            let path = normal(&e.name).unwrap_or_else(|| {
                panic!("accepted the path {:?}", String::from_utf8_lossy(&e.name))
            });
            if e.kind != b'5' {
                assert!(seen.insert(path.clone()), "accepted {path} twice");
            }
        }
        assert!(
            tar.len() as u64 <= LIMITS.max_uncompressed + 1024,
            "a {}-byte stream got through",
            tar.len()
        );
    }
    check(&contents);
});

fn check(contents: &Contents) {
    for (path, bytes) in &contents.assets {
        assert!(
            path.split('/')
                .all(|p| !p.is_empty() && p != ".." && p != "."),
            "{path:?}"
        );
        assert!(bytes.len() as u64 <= LIMITS.max_file);
    }
    assert!(contents.assets.len() <= LIMITS.max_entries);
    let packed = pack(contents);
    if packed.len() as u64 <= LIMITS.max_compressed {
        assert_eq!(
            &unpack(&packed, &LIMITS).expect("repacked unpacks"),
            contents
        );
    }
}
