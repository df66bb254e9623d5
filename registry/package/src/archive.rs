//! The `.ucpkg` archive: tar compressed with zstd.
//!
//! Packing is reproducible: entries sorted by path, zero mtimes, fixed modes and owners, a fixed
//! compression level, so the same inputs always give the same bytes (and the same digest).
//! Unpacking trusts nothing: only regular files at expected paths, no absolute paths, `..`,
//! links, devices or duplicates, and every count and size capped — including the decompressed
//! size, read through a bounded reader, so a small archive that inflates to gigabytes is refused
//! after the cap rather than filling memory.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path};

use ucms_manifest::{MANIFEST_FILE, Manifest};

/// The component's path inside a package.
pub const COMPONENT_FILE: &str = "plugin.wasm";
const README: &str = "README.md";
const CHANGELOG: &str = "CHANGELOG.md";
const ASSETS: &str = "assets/";
const ZSTD_LEVEL: i32 = 15;

/// What a package holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Contents {
    pub manifest_text: String,
    pub manifest: Manifest,
    pub wasm: Vec<u8>,
    pub readme: Option<String>,
    pub changelog: Option<String>,
    /// Files under `assets/`, by path below it.
    pub assets: BTreeMap<String, Vec<u8>>,
}

/// Caps applied while unpacking.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The archive as downloaded.
    pub max_compressed: u64,
    /// Everything inside, decompressed.
    pub max_uncompressed: u64,
    /// Any one file.
    pub max_file: u64,
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_compressed: 64 << 20,
            max_uncompressed: 256 << 20,
            max_file: 128 << 20,
            max_entries: 2000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{0}")]
    Manifest(#[from] ucms_manifest::ManifestError),
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnpackError {
    #[error("the package is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("the package decompresses to more than {limit} bytes (a decompression bomb?)")]
    Inflates { limit: u64 },
    #[error("the package has more than {limit} entries")]
    TooManyEntries { limit: usize },
    #[error("entry '{entry}' is {size} bytes, over the per-file limit of {limit} bytes")]
    FileTooLarge {
        entry: String,
        size: u64,
        limit: u64,
    },
    #[error("entry '{entry}' has an unsafe path ({reason})")]
    UnsafePath { entry: String, reason: &'static str },
    #[error("entry '{entry}' is a {kind}; packages hold only regular files")]
    NotAFile { entry: String, kind: String },
    #[error("entry '{entry}' appears twice")]
    Duplicate { entry: String },
    #[error(
        "entry '{entry}' is not part of the package format (expected ucms-plugin.toml, plugin.wasm, README.md, CHANGELOG.md or assets/...)"
    )]
    Unexpected { entry: String },
    #[error("the package has no {0}")]
    Missing(&'static str),
    #[error("entry '{entry}' is not UTF-8 text")]
    NotText { entry: String },
    #[error("the package's manifest is not valid: {0}")]
    Manifest(String),
    #[error("the package is not a valid zstd-compressed tar archive: {0}")]
    Corrupt(String),
}

/// `hello-0.1.0.ucpkg`
pub fn file_name(id: &str, version: &semver::Version) -> String {
    format!("{id}-{version}.ucpkg")
}

/// Reads a plugin folder (`ucms-plugin.toml`, `plugin.wasm`, and optionally `README.md`,
/// `CHANGELOG.md` and `assets/`) into package contents.
pub fn read_folder(dir: &Path) -> Result<Contents, PackError> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|error| PackError::Read {
            path: dir.join(name).display().to_string(),
            error,
        })
    };
    let optional_text = |name: &str| -> Result<Option<String>, PackError> {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(PackError::Read {
                path: dir.join(name).display().to_string(),
                error,
            }),
        }
    };
    let manifest_text =
        String::from_utf8(read(MANIFEST_FILE)?).map_err(|_| PackError::Invalid {
            path: MANIFEST_FILE.into(),
            reason: "not UTF-8".into(),
        })?;
    let manifest =
        Manifest::parse(&manifest_text).map_err(|e| e.in_file(&dir.join(MANIFEST_FILE)))?;
    let wasm = read(COMPONENT_FILE)?;
    let mut assets = BTreeMap::new();
    let assets_dir = dir.join("assets");
    if assets_dir.is_dir() {
        collect_assets(&assets_dir, &assets_dir, &mut assets)?;
    }
    Ok(Contents {
        manifest_text,
        manifest,
        wasm,
        readme: optional_text(README)?,
        changelog: optional_text(CHANGELOG)?,
        assets,
    })
}

fn collect_assets(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), PackError> {
    let entries = std::fs::read_dir(dir).map_err(|error| PackError::Read {
        path: dir.display().to_string(),
        error,
    })?;
    for entry in entries {
        let entry = entry.map_err(|error| PackError::Read {
            path: dir.display().to_string(),
            error,
        })?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|error| PackError::Read {
            path: path.display().to_string(),
            error,
        })?;
        if kind.is_dir() {
            collect_assets(root, &path, out)?;
        } else if kind.is_file() {
            let relative = path
                .strip_prefix(root)
                .ok()
                .and_then(|p| p.to_str())
                .map(|p| p.replace('\\', "/"))
                .ok_or_else(|| PackError::Invalid {
                    path: path.display().to_string(),
                    reason: "asset paths must be UTF-8".into(),
                })?;
            let bytes = std::fs::read(&path).map_err(|error| PackError::Read {
                path: path.display().to_string(),
                error,
            })?;
            out.insert(relative, bytes);
        } else {
            return Err(PackError::Invalid {
                path: path.display().to_string(),
                reason: "only regular files can be packed (no links)".into(),
            });
        }
    }
    Ok(())
}

/// The archive bytes for `contents`: the same contents always give the same bytes.
pub fn pack(contents: &Contents) -> Vec<u8> {
    let mut files: Vec<(String, &[u8])> = vec![
        (MANIFEST_FILE.to_string(), contents.manifest_text.as_bytes()),
        (COMPONENT_FILE.to_string(), &contents.wasm),
    ];
    if let Some(readme) = &contents.readme {
        files.push((README.to_string(), readme.as_bytes()));
    }
    if let Some(changelog) = &contents.changelog {
        files.push((CHANGELOG.to_string(), changelog.as_bytes()));
    }
    for (path, bytes) in &contents.assets {
        files.push((format!("{ASSETS}{path}"), bytes));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));

    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        builder
            .append_data(&mut header, &path, bytes)
            .expect("writing a tar entry to memory can't fail");
    }
    let tar = builder
        .into_inner()
        .expect("finishing a tar in memory can't fail");
    let mut encoder = zstd::Encoder::new(Vec::new(), ZSTD_LEVEL).expect("zstd encoder");
    encoder
        .write_all(&tar)
        .expect("compressing to memory can't fail");
    encoder.finish().expect("compressing to memory can't fail")
}

/// A reader that fails once more than `limit` bytes have come through it.
struct Bounded<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            self.exceeded = true;
            return Err(std::io::Error::other("decompressed size limit exceeded"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Unpacks and checks an archive.
pub fn unpack(bytes: &[u8], limits: &Limits) -> Result<Contents, UnpackError> {
    if bytes.len() as u64 > limits.max_compressed {
        return Err(UnpackError::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_compressed,
        });
    }
    let decoder = zstd::Decoder::new(bytes).map_err(|e| UnpackError::Corrupt(e.to_string()))?;
    let mut bounded = Bounded {
        inner: decoder,
        left: limits.max_uncompressed,
        exceeded: false,
    };
    let result = read_entries(&mut bounded, limits);
    if bounded.exceeded {
        return Err(UnpackError::Inflates {
            limit: limits.max_uncompressed,
        });
    }
    result
}

fn read_entries<R: Read>(reader: &mut R, limits: &Limits) -> Result<Contents, UnpackError> {
    let mut archive = tar::Archive::new(reader);
    let corrupt = |e: std::io::Error| UnpackError::Corrupt(e.to_string());
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut count = 0;
    for entry in archive.entries().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        count += 1;
        if count > limits.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        // Not lossily: two names that differ only in invalid bytes would become one name, and
        // the name unpacked would not be the name in the archive (found by the package_tar
        // fuzz target).
        let raw_path = match String::from_utf8(entry.path_bytes().into_owned()) {
            Ok(path) => path,
            Err(e) => {
                return Err(UnpackError::UnsafePath {
                    entry: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                    reason: "it is not UTF-8",
                });
            }
        };
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            check_path(&raw_path)?;
            continue;
        }
        if !kind.is_file() {
            return Err(UnpackError::NotAFile {
                entry: raw_path,
                kind: describe(kind),
            });
        }
        let path = check_path(&raw_path)?;
        let known = [MANIFEST_FILE, COMPONENT_FILE, README, CHANGELOG].contains(&path.as_str())
            || path
                .strip_prefix(ASSETS)
                .is_some_and(|rest| !rest.is_empty());
        if !known {
            return Err(UnpackError::Unexpected { entry: path });
        }
        let size = entry.header().size().map_err(corrupt)?;
        if size > limits.max_file {
            return Err(UnpackError::FileTooLarge {
                entry: path,
                size,
                limit: limits.max_file,
            });
        }
        if files.contains_key(&path) {
            return Err(UnpackError::Duplicate { entry: path });
        }
        let mut data = Vec::with_capacity(size as usize);
        entry
            .take(limits.max_file + 1)
            .read_to_end(&mut data)
            .map_err(corrupt)?;
        if data.len() as u64 > limits.max_file {
            return Err(UnpackError::FileTooLarge {
                entry: path,
                size: data.len() as u64,
                limit: limits.max_file,
            });
        }
        files.insert(path, data);
    }
    let text = |files: &mut BTreeMap<String, Vec<u8>>,
                name: &str|
     -> Result<Option<String>, UnpackError> {
        files
            .remove(name)
            .map(|b| {
                String::from_utf8(b).map_err(|_| UnpackError::NotText {
                    entry: name.to_string(),
                })
            })
            .transpose()
    };
    let manifest_text =
        text(&mut files, MANIFEST_FILE)?.ok_or(UnpackError::Missing(MANIFEST_FILE))?;
    let manifest =
        Manifest::parse(&manifest_text).map_err(|e| UnpackError::Manifest(e.to_string()))?;
    let wasm = files
        .remove(COMPONENT_FILE)
        .ok_or(UnpackError::Missing(COMPONENT_FILE))?;
    let readme = text(&mut files, README)?;
    let changelog = text(&mut files, CHANGELOG)?;
    // Only assets are left: every other name was refused as it was read.
    let assets = files
        .into_iter()
        .filter_map(|(path, bytes)| {
            path.strip_prefix(ASSETS)
                .map(|rest| (rest.to_string(), bytes))
        })
        .collect();
    Ok(Contents {
        manifest_text,
        manifest,
        wasm,
        readme,
        changelog,
        assets,
    })
}

/// A normalized, safe relative path, or the reason it isn't one.
fn check_path(raw: &str) -> Result<String, UnpackError> {
    let unsafe_path = |reason| UnpackError::UnsafePath {
        entry: raw.to_string(),
        reason,
    };
    if raw.is_empty() {
        return Err(unsafe_path("empty"));
    }
    if raw.contains('\0') || raw.contains('\\') {
        return Err(unsafe_path("it contains a NUL or a backslash"));
    }
    let mut parts = Vec::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(part) => {
                parts.push(part.to_str().ok_or_else(|| unsafe_path("not UTF-8"))?)
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path("it climbs out with '..'")),
            Component::RootDir | Component::Prefix(_) => return Err(unsafe_path("it is absolute")),
        }
    }
    if parts.is_empty() {
        return Err(unsafe_path("empty"));
    }
    Ok(parts.join("/"))
}

fn describe(kind: tar::EntryType) -> String {
    match kind {
        tar::EntryType::Symlink => "symbolic link".into(),
        tar::EntryType::Link => "hard link".into(),
        tar::EntryType::Char => "character device".into(),
        tar::EntryType::Block => "block device".into(),
        tar::EntryType::Fifo => "FIFO".into(),
        other => format!("{other:?} entry"),
    }
}
