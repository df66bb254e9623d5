//! What a plugin may consume, and how the store enforces it.
//!
//! Limits are defaulted by the host, narrowed or widened by the manifest within the operator's
//! ceilings, and fixed when the plugin loads ([`Limits::resolve`]). Memory is enforced by
//! [`StoreLimiter`], time by the epoch deadline in [`super::invocation`], bodies and outbound calls by
//! the capabilities that move them.

use std::time::Duration;

use serde::Serialize;
use ucms_manifest::LimitsRequest;
use wasmtime::ResourceLimiter;

use crate::config::{LimitValues, LimitsConfig};

/// The limits one plugin runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub memory_mib: u32,
    pub timeout_ms: u32,
    pub max_request_body_kib: u32,
    pub max_response_body_kib: u32,
    pub max_concurrency: u32,
    pub max_outbound_requests: u32,
}

/// What a plugin gets when neither its manifest nor the operator says otherwise.
pub const HOST_DEFAULTS: Limits = Limits {
    memory_mib: 64,
    timeout_ms: 5_000,
    max_request_body_kib: 1024,
    max_response_body_kib: 4096,
    max_concurrency: 64,
    max_outbound_requests: 16,
};

/// The most a manifest may ask for unless the operator sets other ceilings.
pub const HOST_CEILINGS: Limits = Limits {
    memory_mib: 256,
    timeout_ms: 60_000,
    max_request_body_kib: 64 * 1024,
    max_response_body_kib: 64 * 1024,
    max_concurrency: 512,
    max_outbound_requests: 100,
};

/// A manifest asks for more than the operator allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the manifest asks for limits.{key} = {asked}, over the operator's ceiling of {ceiling}\n  hint: ask for at most {ceiling} in ucms-plugin.toml, or raise the ceiling in ucms.toml ([limits.ceiling] {key}, or [plugins.{plugin}.limits] {key} for this plugin only)"
)]
pub struct CeilingExceeded {
    pub plugin: String,
    pub key: &'static str,
    pub asked: u32,
    pub ceiling: u32,
}

impl Limits {
    /// The limits for `plugin`: its manifest's request, else the operator's or host's default, each
    /// capped by the operator's (or host's) ceiling. Asking above a ceiling is an error.
    pub fn resolve(
        plugin: &str,
        asked: &LimitsRequest,
        operator: &LimitsConfig,
        per_plugin: &LimitValues,
    ) -> Result<Self, CeilingExceeded> {
        let pick = |key: &'static str,
                    asked: Option<u32>,
                    default: Option<u32>,
                    ceiling: Option<u32>,
                    per_plugin: Option<u32>,
                    host_default: u32,
                    host_ceiling: u32|
         -> Result<u32, CeilingExceeded> {
            let ceiling = per_plugin.or(ceiling).unwrap_or(host_ceiling);
            match asked {
                Some(asked) if asked > ceiling => Err(CeilingExceeded {
                    plugin: plugin.to_string(),
                    key,
                    asked,
                    ceiling,
                }),
                Some(asked) => Ok(asked),
                None => Ok(default.unwrap_or(host_default).min(ceiling)),
            }
        };
        let (d, c, p) = (&operator.default, &operator.ceiling, per_plugin);
        let (hd, hc) = (HOST_DEFAULTS, HOST_CEILINGS);
        Ok(Self {
            memory_mib: pick(
                "memory-mib",
                asked.memory_mib,
                d.memory_mib,
                c.memory_mib,
                p.memory_mib,
                hd.memory_mib,
                hc.memory_mib,
            )?,
            timeout_ms: pick(
                "timeout-ms",
                asked.timeout_ms,
                d.timeout_ms,
                c.timeout_ms,
                p.timeout_ms,
                hd.timeout_ms,
                hc.timeout_ms,
            )?,
            max_request_body_kib: pick(
                "max-request-body-kib",
                asked.max_request_body_kib,
                d.max_request_body_kib,
                c.max_request_body_kib,
                p.max_request_body_kib,
                hd.max_request_body_kib,
                hc.max_request_body_kib,
            )?,
            max_response_body_kib: pick(
                "max-response-body-kib",
                asked.max_response_body_kib,
                d.max_response_body_kib,
                c.max_response_body_kib,
                p.max_response_body_kib,
                hd.max_response_body_kib,
                hc.max_response_body_kib,
            )?,
            max_concurrency: pick(
                "max-concurrency",
                asked.max_concurrency,
                d.max_concurrency,
                c.max_concurrency,
                p.max_concurrency,
                hd.max_concurrency,
                hc.max_concurrency,
            )?,
            max_outbound_requests: pick(
                "max-outbound-requests",
                asked.max_outbound_requests,
                d.max_outbound_requests,
                c.max_outbound_requests,
                p.max_outbound_requests,
                hd.max_outbound_requests,
                hc.max_outbound_requests,
            )?,
        })
    }

    pub fn memory_bytes(&self) -> usize {
        self.memory_mib as usize * 1024 * 1024
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.timeout_ms))
    }

    pub fn max_request_body(&self) -> usize {
        self.max_request_body_kib as usize * 1024
    }

    pub fn max_response_body(&self) -> usize {
        self.max_response_body_kib as usize * 1024
    }
}

/// The highest memory ceiling any plugin can get, which sizes the engine's memory slots.
pub fn max_memory_ceiling_mib(
    operator: &LimitsConfig,
    plugin_overrides: impl Iterator<Item = Option<u32>>,
) -> u32 {
    let site = operator
        .ceiling
        .memory_mib
        .unwrap_or(HOST_CEILINGS.memory_mib);
    plugin_overrides.flatten().fold(site, u32::max)
}

/// A guest tried to grow its memory past its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the plugin tried to grow its memory to {desired} bytes, over its limit of {limit} bytes")]
pub struct MemoryLimitExceeded {
    pub limit: usize,
    pub desired: usize,
}

/// A guest ran past its invocation's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the plugin ran past its deadline of {} ms", .0.as_millis())]
pub struct DeadlineExceeded(pub Duration);

/// Enforces the memory limit of one store, and remembers its high-water mark.
#[derive(Debug)]
pub struct StoreLimiter {
    memory_limit: usize,
    peak_memory: usize,
}

impl StoreLimiter {
    pub fn new(memory_limit: usize) -> Self {
        Self {
            memory_limit,
            peak_memory: 0,
        }
    }

    pub fn peak_memory(&self) -> usize {
        self.peak_memory
    }
}

impl ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(MemoryLimitExceeded {
                limit: self.memory_limit,
                desired,
            }
            .into());
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_requests_are_capped_by_the_operator() {
        let operator = LimitsConfig {
            ceiling: LimitValues {
                memory_mib: Some(128),
                ..Default::default()
            },
            default: LimitValues {
                timeout_ms: Some(2000),
                ..Default::default()
            },
            ..Default::default()
        };
        let asked = LimitsRequest {
            memory_mib: Some(96),
            ..Default::default()
        };
        let limits = Limits::resolve("p", &asked, &operator, &LimitValues::default()).unwrap();
        assert_eq!(limits.memory_mib, 96);
        assert_eq!(limits.timeout_ms, 2000);
        assert_eq!(limits.max_concurrency, HOST_DEFAULTS.max_concurrency);

        let greedy = LimitsRequest {
            memory_mib: Some(512),
            ..Default::default()
        };
        let err = Limits::resolve("p", &greedy, &operator, &LimitValues::default()).unwrap_err();
        assert_eq!((err.key, err.asked, err.ceiling), ("memory-mib", 512, 128));
        assert!(err.to_string().contains("[plugins.p.limits] memory-mib"));

        let raised = LimitValues {
            memory_mib: Some(1024),
            ..Default::default()
        };
        assert_eq!(
            Limits::resolve("p", &greedy, &operator, &raised)
                .unwrap()
                .memory_mib,
            512
        );
    }
}
