//! The policy in force, and reloading it while the site runs.
//!
//! The rules come from `[policy]` of the configuration file, or from the file it names (the
//! configuration knows which: `Config::policy_source`). Reloading reads them again; rules that
//! don't parse or validate are refused with the reason, and the policy in force stays.
//! `ucms serve` checks the file every second (by size and modification time), reloads on SIGHUP
//! and on `POST /api/ucms/policy/reload`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use super::{Policy, PolicyError, PolicyRules};

/// Where the rules in force came from, and so where a reload reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// Given directly (tests, embedders, a configuration without a file): never reloaded.
    Fixed,
    /// `[policy]` of this configuration file, with `UCMS_POLICY__…` variables applied.
    ConfigFile(PathBuf),
    /// The file `[policy] file` names.
    File(PathBuf),
}

/// What a reload did.
#[derive(Debug, Clone)]
pub enum Reloaded {
    Unchanged,
    Changed(Arc<Policy>),
}

/// The policy in force, swapped atomically on reload.
pub struct PolicyStore {
    current: ArcSwap<Policy>,
    source: PolicySource,
    /// Size and modification time of the file last read, to notice edits without reading it;
    /// held through a reload, so two reloads (the watcher's and an API call) don't interleave.
    stamp: Mutex<Option<(u64, SystemTime)>>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStore")
            .field("source", &self.source)
            .field("digest", &self.current.load().digest)
            .finish()
    }
}

impl PolicyStore {
    /// The policy in force, read from `source` (see `crate::config::Config::policy_source`).
    pub fn new(policy: Policy, source: PolicySource) -> Self {
        let store = Self {
            current: ArcSwap::from_pointee(policy),
            source,
            stamp: Mutex::new(None),
        };
        *store.stamp.lock().unwrap_or_else(|e| e.into_inner()) = store.file_stamp();
        store
    }

    /// A policy that is never reloaded.
    pub fn fixed(policy: Policy) -> Self {
        Self::new(policy, PolicySource::Fixed)
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    pub fn source(&self) -> &PolicySource {
        &self.source
    }

    fn watched(&self) -> Option<&Path> {
        match &self.source {
            PolicySource::Fixed => None,
            PolicySource::ConfigFile(p) | PolicySource::File(p) => Some(p),
        }
    }

    fn file_stamp(&self) -> Option<(u64, SystemTime)> {
        let meta = std::fs::metadata(self.watched()?).ok()?;
        Some((meta.len(), meta.modified().ok()?))
    }

    /// The watched file's size and modification time when it differ from the ones it had when
    /// last read (`None`: unchanged, or nothing to watch).
    pub fn changed_on_disk(&self) -> Option<(u64, SystemTime)> {
        let now = self.file_stamp();
        (now.is_some() && *self.stamp.lock().unwrap_or_else(|e| e.into_inner()) != now)
            .then_some(now)
            .flatten()
    }

    /// Reads the rules again with `read` (which knows how to read each source). Invalid rules
    /// are refused and the policy in force stays.
    pub fn reload(
        &self,
        read: impl FnOnce(&PolicySource) -> Result<Policy, PolicyError>,
    ) -> Result<Reloaded, PolicyError> {
        if self.source == PolicySource::Fixed {
            return Ok(Reloaded::Unchanged);
        }
        let mut held = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = self.file_stamp();
        let read = read(&self.source);
        // What was read is settled, good or bad: the file is read again when it changes again
        // (also when it changed while it was being read).
        *held = if self.file_stamp() == stamp {
            stamp
        } else {
            None
        };
        let policy = read?;
        if policy.digest == self.current.load().digest {
            return Ok(Reloaded::Unchanged);
        }
        let policy = Arc::new(policy);
        self.current.store(policy.clone());
        Ok(Reloaded::Changed(policy))
    }
}

/// Reads a policy file: the `[policy]` rules without the `policy.` prefix.
pub fn read_file(path: &Path) -> Result<Policy, PolicyError> {
    let origin = path.display().to_string();
    let fail = |key: &str, message: String| PolicyError {
        origin: origin.clone(),
        key: key.into(),
        message,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| fail("file", format!("cannot read it: {e}")))?;
    let rules: PolicyRules = toml::from_str(&text).map_err(|e| fail("toml", e.to_string()))?;
    if rules.file.is_some() {
        return Err(fail(
            "file",
            "a policy file can't name another policy file".into(),
        ));
    }
    Policy::compile(rules, &origin)
}
