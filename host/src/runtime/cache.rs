//! Precompiled components on disk.
//!
//! A file is named by the component's SHA-256 and the engine's compatibility hash, so a wasmtime
//! upgrade or a changed engine setting misses the cache instead of loading incompatible code.
//! Files are written to a temporary name and renamed, so a crash never leaves a half-written entry.
//! Any failure here is logged and costs only a recompile.

use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    pub fn open(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the compiled-component cache {}: {e}",
                dir.display()
            )
        })?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, digest: &str, engine_hash: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{engine_hash}.cwasm"))
    }

    pub fn load(&self, engine: &Engine, digest: &str, engine_hash: &str) -> Option<Component> {
        let path = self.path(digest, engine_hash);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file is one this process family wrote with `Component::serialize` for an
        // engine with the same compatibility hash, into the operator's data directory (whoever can
        // write there controls the site anyway). wasmtime still checks the header and version.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "discarding an unusable compiled component");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    pub fn store(&self, component: &Component, digest: &str, engine_hash: &str) {
        let path = self.path(digest, engine_hash);
        let result = component
            .serialize()
            .map_err(anyhow::Error::from)
            .and_then(|bytes| {
                let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &path)?;
                Ok(())
            });
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "cannot cache a compiled component");
        }
    }
}
