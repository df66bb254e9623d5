//! What the fuzz targets share: small unpacking caps, a fixed registry key, a tar writer that
//! writes what `tar::Builder` refuses to (`..`, absolute paths, links, devices, duplicates), and
//! TOML string quoting.
//!
//! The targets live in `fuzz_targets/`, one file each, in cargo-fuzz's layout; `cargo xtask fuzz`
//! builds and runs them on stable Rust (see docs/fuzzing.md).

use std::sync::OnceLock;

use ucms_package::archive::Limits;
use ucms_package::keys::SecretKey;

/// Caps small enough that every run is fast, and that a modest archive can exceed each of them.
pub const LIMITS: Limits = Limits {
    max_compressed: 64 << 10,
    max_uncompressed: 256 << 10,
    max_file: 128 << 10,
    max_entries: 32,
};

/// The registry key the metadata target trusts; its seeds are signed with it. A fixture for the
/// fuzz targets only: it signs nothing else.
pub fn registry_key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/fuzz-registry.key");
        SecretKey::load(&path).expect("fuzz/keys/fuzz-registry.key loads")
    })
}

/// A publisher key the registry key endorses in the seeds.
pub fn publisher_key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/fuzz-publisher.key");
        SecretKey::load(&path).expect("fuzz/keys/fuzz-publisher.key loads")
    })
}

/// `s` as a TOML basic string (JSON's escapes are valid TOML).
pub fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// One raw tar entry: any name bytes, any type flag, any data.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub name: Vec<u8>,
    /// The type flag byte: b'0' file, b'5' directory, b'2' symlink, b'1' hard link, ...
    pub kind: u8,
    pub link: Vec<u8>,
    pub data: Vec<u8>,
    /// The size the header claims, when it is not the data's.
    pub claimed_size: Option<u64>,
}

/// Writes `entries` as a tar stream, byte by byte. Names longer than the 100-byte header field
/// get a GNU long-name entry first, as GNU tar writes them.
pub fn write_tar(entries: &[RawEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        if e.name.len() > 100 {
            let mut long = e.name.clone();
            long.push(0);
            push_entry(&mut out, b"././@LongLink", b'L', b"", &long, None);
        }
        let name = &e.name[..e.name.len().min(100)];
        push_entry(&mut out, name, e.kind, &e.link, &e.data, e.claimed_size);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn push_entry(
    out: &mut Vec<u8>,
    name: &[u8],
    kind: u8,
    link: &[u8],
    data: &[u8],
    claimed: Option<u64>,
) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], claimed.unwrap_or(data.len() as u64));
    octal(&mut h[136..148], 0);
    h[156] = kind;
    let link = &link[..link.len().min(100)];
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    octal(&mut h[148..155], u64::from(sum));
    h[155] = b' ';
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

/// Writes `value` as NUL-terminated octal filling `field`; values that don't fit are truncated to
/// the field, which is itself something the reader must survive.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    let text = &text.as_bytes()[text.len().saturating_sub(digits)..];
    field[..text.len()].copy_from_slice(text);
    field[digits] = 0;
}

/// A minimal valid manifest with `id`.
pub fn manifest(id: &str) -> String {
    format!(
        "id = \"{id}\"\nversion = \"1.0.0\"\npublisher = \"fuzz\"\ndescription = \"d\"\napi = \"^0.2\"\n"
    )
}
