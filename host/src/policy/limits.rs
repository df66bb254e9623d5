//! What a plugin may consume: the limits and quotas it runs under, resolved from its manifest
//! within the policy's defaults and ceilings when it loads. The runtime and the capabilities
//! enforce them (`crate::runtime::limits`).

use std::time::Duration;

use serde::Serialize;
use ucms_manifest::Manifest;

use super::LimitValues;

/// The limits one plugin runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub memory_mib: u32,
    /// Wall-clock deadline per call.
    pub timeout_ms: u32,
    /// CPU time per call.
    pub cpu_ms: u32,
    pub max_request_body_kib: u32,
    pub max_response_body_kib: u32,
    pub max_concurrency: u32,
    pub max_outbound_requests: u32,
    /// Outbound bytes per invocation, request and response bodies together.
    pub max_outbound_kib: u32,
    pub events_per_minute: u32,
    pub log_lines_per_minute: u32,
}

/// What a plugin may store, and its hooks' longest deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quotas {
    pub max_documents: u64,
    pub documents_mib: u64,
    pub blobs_mib: u64,
    pub max_blob_mib: u64,
    /// The ceiling of a hook's `timeout-ms` (hooks keep their own deadlines).
    pub hook_timeout_ms: u32,
}

/// What a plugin gets when neither its manifest nor the policy says otherwise.
pub const HOST_DEFAULTS: Limits = Limits {
    memory_mib: 64,
    timeout_ms: 5_000,
    cpu_ms: 2_000,
    max_request_body_kib: 1024,
    max_response_body_kib: 4096,
    max_concurrency: 64,
    max_outbound_requests: 16,
    max_outbound_kib: 8 * 1024,
    events_per_minute: 6_000,
    log_lines_per_minute: 6_000,
};

/// The most a manifest may ask for unless the policy sets other ceilings.
pub const HOST_CEILINGS: Limits = Limits {
    memory_mib: 256,
    timeout_ms: 60_000,
    cpu_ms: 60_000,
    max_request_body_kib: 64 * 1024,
    max_response_body_kib: 64 * 1024,
    max_concurrency: 512,
    max_outbound_requests: 100,
    max_outbound_kib: 256 * 1024,
    events_per_minute: 600_000,
    log_lines_per_minute: 60_000,
};

/// Quotas when the manifest asks for none.
pub const HOST_DEFAULT_QUOTAS: Quotas = Quotas {
    max_documents: 1_000_000,
    documents_mib: 1024,
    blobs_mib: 1024,
    max_blob_mib: 100,
    hook_timeout_ms: 30_000,
};

/// The most a manifest may ask for unless the policy sets other ceilings.
pub const HOST_CEILING_QUOTAS: Quotas = Quotas {
    max_documents: 100_000_000,
    documents_mib: 100 * 1024,
    blobs_mib: 1024 * 1024,
    max_blob_mib: 5 * 1024,
    hook_timeout_ms: 30_000,
};

/// A manifest asks for more than the policy allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "plugin '{plugin}' asks for {key} = {asked}, over the ceiling of {ceiling} (policy rule {rule})\n  hint: ask for at most {ceiling} in ucms-plugin.toml, or raise the ceiling in the policy ([policy.ceilings] {key}, or [policy.overrides.{plugin}.ceilings] {key} for this plugin only)"
)]
pub struct CeilingExceeded {
    pub plugin: String,
    /// The key in `[policy.ceilings]`.
    pub key: &'static str,
    pub asked: u64,
    pub ceiling: u64,
    /// `[policy.ceilings] memory-mib` or `[policy.overrides.ID.ceilings] memory-mib`.
    pub rule: String,
}

/// Picks one value: what the manifest asked for (refused above the ceiling), else the policy's
/// default or the host's, capped by the ceiling.
struct Picker<'a> {
    plugin: &'a str,
    defaults: &'a LimitValues,
    site: &'a LimitValues,
    own: &'a LimitValues,
}

impl Picker<'_> {
    fn pick<T: Copy + Ord + Into<u64>>(
        &self,
        key: &'static str,
        asked: Option<T>,
        field: impl Fn(&LimitValues) -> Option<T>,
        host_default: T,
        host_ceiling: T,
    ) -> Result<T, CeilingExceeded> {
        let (ceiling, rule) = match (field(self.own), field(self.site)) {
            (Some(c), _) => (
                c,
                format!("[policy.overrides.{}.ceilings] {key}", self.plugin),
            ),
            (None, Some(c)) => (c, format!("[policy.ceilings] {key}")),
            (None, None) => (
                host_ceiling,
                format!("[policy.ceilings] {key} (the host's default)"),
            ),
        };
        match asked {
            Some(asked) if asked > ceiling => Err(CeilingExceeded {
                plugin: self.plugin.to_string(),
                key,
                asked: asked.into(),
                ceiling: ceiling.into(),
                rule,
            }),
            Some(asked) => Ok(asked),
            None => Ok(field(self.defaults).unwrap_or(host_default).min(ceiling)),
        }
    }
}

impl Limits {
    /// The limits for `manifest`: what it asks for, else the policy's or host's default, each
    /// capped by the plugin's own ceiling, the site's, or the host's. Asking above it is an error.
    pub fn resolve(
        manifest: &Manifest,
        defaults: &LimitValues,
        site: &LimitValues,
        own: &LimitValues,
    ) -> Result<Self, CeilingExceeded> {
        let p = Picker {
            plugin: manifest.id.as_str(),
            defaults,
            site,
            own,
        };
        let a = &manifest.limits;
        let (d, c) = (HOST_DEFAULTS, HOST_CEILINGS);
        Ok(Self {
            memory_mib: p.pick(
                "memory-mib",
                a.memory_mib,
                |v| v.memory_mib,
                d.memory_mib,
                c.memory_mib,
            )?,
            timeout_ms: p.pick(
                "timeout-ms",
                a.timeout_ms,
                |v| v.timeout_ms,
                d.timeout_ms,
                c.timeout_ms,
            )?,
            cpu_ms: p.pick("cpu-ms", a.cpu_ms, |v| v.cpu_ms, d.cpu_ms, c.cpu_ms)?,
            max_request_body_kib: p.pick(
                "max-request-body-kib",
                a.max_request_body_kib,
                |v| v.max_request_body_kib,
                d.max_request_body_kib,
                c.max_request_body_kib,
            )?,
            max_response_body_kib: p.pick(
                "max-response-body-kib",
                a.max_response_body_kib,
                |v| v.max_response_body_kib,
                d.max_response_body_kib,
                c.max_response_body_kib,
            )?,
            max_concurrency: p.pick(
                "max-concurrency",
                a.max_concurrency,
                |v| v.max_concurrency,
                d.max_concurrency,
                c.max_concurrency,
            )?,
            max_outbound_requests: p.pick(
                "max-outbound-requests",
                a.max_outbound_requests,
                |v| v.max_outbound_requests,
                d.max_outbound_requests,
                c.max_outbound_requests,
            )?,
            max_outbound_kib: p.pick(
                "max-outbound-kib",
                a.max_outbound_kib,
                |v| v.max_outbound_kib,
                d.max_outbound_kib,
                c.max_outbound_kib,
            )?,
            events_per_minute: p.pick(
                "events-per-minute",
                a.events_per_minute,
                |v| v.events_per_minute,
                d.events_per_minute,
                c.events_per_minute,
            )?,
            log_lines_per_minute: p.pick(
                "log-lines-per-minute",
                a.log_lines_per_minute,
                |v| v.log_lines_per_minute,
                d.log_lines_per_minute,
                c.log_lines_per_minute,
            )?,
        })
    }

    pub fn memory_bytes(&self) -> usize {
        self.memory_mib as usize * 1024 * 1024
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.timeout_ms))
    }

    pub fn cpu_budget(&self) -> Duration {
        Duration::from_millis(u64::from(self.cpu_ms))
    }

    pub fn max_request_body(&self) -> usize {
        self.max_request_body_kib as usize * 1024
    }

    pub fn max_response_body(&self) -> usize {
        self.max_response_body_kib as usize * 1024
    }

    pub fn max_outbound_bytes(&self) -> u64 {
        u64::from(self.max_outbound_kib) * 1024
    }
}

impl Quotas {
    /// The quotas for `manifest`'s `documents` and `blobs` grants and the deadlines of its hooks,
    /// resolved like [`Limits::resolve`].
    pub fn resolve(
        manifest: &Manifest,
        defaults: &LimitValues,
        site: &LimitValues,
        own: &LimitValues,
    ) -> Result<Self, CeilingExceeded> {
        let p = Picker {
            plugin: manifest.id.as_str(),
            defaults,
            site,
            own,
        };
        let caps = &manifest.capabilities;
        let docs = caps.documents.as_ref();
        let blobs = caps.blobs.as_ref();
        let (d, c) = (HOST_DEFAULT_QUOTAS, HOST_CEILING_QUOTAS);
        let longest_hook = manifest.hooks.iter().map(|h| h.timeout_ms).max();
        Ok(Self {
            max_documents: p.pick(
                "max-documents",
                docs.and_then(|g| g.max_documents),
                |v| v.max_documents,
                d.max_documents,
                c.max_documents,
            )?,
            documents_mib: p.pick(
                "documents-mib",
                docs.and_then(|g| g.max_mib),
                |v| v.documents_mib,
                d.documents_mib,
                c.documents_mib,
            )?,
            blobs_mib: p.pick(
                "blobs-mib",
                blobs.and_then(|g| g.max_mib),
                |v| v.blobs_mib,
                d.blobs_mib,
                c.blobs_mib,
            )?,
            max_blob_mib: p.pick(
                "max-blob-mib",
                blobs.and_then(|g| g.max_blob_mib),
                |v| v.max_blob_mib,
                d.max_blob_mib,
                c.max_blob_mib,
            )?,
            hook_timeout_ms: p.pick(
                "hook-timeout-ms",
                longest_hook,
                |v| v.hook_timeout_ms,
                d.hook_timeout_ms,
                c.hook_timeout_ms,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(limits: &str) -> Manifest {
        Manifest::parse(&format!(
            "id = \"p\"\nversion = \"1.0.0\"\npublisher = \"t\"\ndescription = \"d\"\napi = \"^0.2\"\n[limits]\n{limits}\n[capabilities.documents]\nmax-documents = 500\n"
        ))
        .unwrap()
    }

    #[test]
    fn manifest_requests_are_capped_by_the_policy() {
        let site = LimitValues {
            memory_mib: Some(128),
            ..Default::default()
        };
        let defaults = LimitValues {
            timeout_ms: Some(2000),
            ..Default::default()
        };
        let none = LimitValues::default();
        let limits =
            Limits::resolve(&manifest("memory-mib = 96"), &defaults, &site, &none).unwrap();
        assert_eq!(limits.memory_mib, 96);
        assert_eq!(limits.timeout_ms, 2000);
        assert_eq!(limits.max_concurrency, HOST_DEFAULTS.max_concurrency);

        let greedy = manifest("memory-mib = 512");
        let err = Limits::resolve(&greedy, &defaults, &site, &none).unwrap_err();
        assert_eq!((err.key, err.asked, err.ceiling), ("memory-mib", 512, 128));
        assert_eq!(err.rule, "[policy.ceilings] memory-mib");
        assert!(
            err.to_string()
                .contains("[policy.overrides.p.ceilings] memory-mib"),
            "{err}"
        );

        let raised = LimitValues {
            memory_mib: Some(1024),
            ..Default::default()
        };
        assert_eq!(
            Limits::resolve(&greedy, &defaults, &site, &raised)
                .unwrap()
                .memory_mib,
            512
        );

        let quotas = Quotas::resolve(&greedy, &defaults, &site, &none).unwrap();
        assert_eq!(quotas.max_documents, 500);
        let tight = LimitValues {
            max_documents: Some(100),
            ..Default::default()
        };
        let err = Quotas::resolve(&greedy, &defaults, &tight, &none).unwrap_err();
        assert_eq!(
            (err.key, err.asked, err.ceiling),
            ("max-documents", 500, 100)
        );
    }
}
