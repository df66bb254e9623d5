//! How a store enforces what a plugin may consume.
//!
//! The limits themselves are resolved when the plugin loads, from its manifest within the
//! policy's ceilings ([`crate::policy::limits`]). Memory is enforced here by [`StoreLimiter`],
//! wall time and CPU time by the epoch callback in [`super::invocation`], bodies, outbound calls
//! and rates by the capabilities that move them.

use std::time::Duration;

use wasmtime::ResourceLimiter;

pub use crate::policy::limits::{
    CeilingExceeded, HOST_CEILING_QUOTAS, HOST_CEILINGS, HOST_DEFAULT_QUOTAS, HOST_DEFAULTS,
    Limits, Quotas,
};

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

/// A guest spent its CPU budget for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the plugin used up its CPU budget of {} ms", .0.as_millis())]
pub struct CpuBudgetExceeded(pub Duration);

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
