//! The hook runner: runs a hook point through the enabled plugins that join it.
//!
//! A plugin joins a point with `[[hooks]]` in its manifest (priority, `on-failure`,
//! `timeout-ms`). [`HookRunner`] keeps, per point, the joined plugins of the current snapshot,
//! ordered by priority then plugin id (rebuilt whenever the plugin manager publishes a snapshot).
//! [`HookRunner::run`] calls each in a fresh instance, for the caller's principal, with the hook's
//! deadline: `changed(v)` passes `v` on, `rejected(msg)` stops the chain, and a trap, error or
//! missed deadline follows the hook's `on-failure` (`reject` refuses with a message naming the
//! plugin and the failure; `skip` logs a warning, counts it and passes the value on unchanged).
//! Host code and plugins (through `ucms:host/hooks`) use this one path.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use ucms_manifest::{Hook, OnFailure};

use super::{LoadedPlugin, PluginState, Slot};
pub use crate::capabilities::hooks::{HookError, HookPoints, MAX_DEPTH};
use crate::identity::Principal;
use crate::metrics::Metrics;
use crate::wit::latest::exports::ucms::plugin::hooks::HookOutcome;

/// The largest value a hook point carries, in and out of every hook.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
struct Joined {
    plugin: Arc<LoadedPlugin>,
    hook: Hook,
}

/// Runs hook points; one per site, shared by the plugin manager and every plugin granted `hooks`.
pub struct HookRunner {
    points: ArcSwap<HashMap<String, Vec<Joined>>>,
    metrics: Metrics,
}

impl std::fmt::Debug for HookRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookRunner")
            .field("points", &self.points.load().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl HookRunner {
    pub fn new(metrics: Metrics) -> Self {
        Self {
            points: ArcSwap::default(),
            metrics,
        }
    }

    /// Rebuilds the table of joined plugins from a snapshot: enabled plugins only.
    pub(crate) fn replace(&self, slots: &BTreeMap<String, Arc<Slot>>) {
        let mut points: HashMap<String, Vec<Joined>> = HashMap::new();
        for slot in slots.values() {
            let Some(plugin) = slot.loaded.as_ref() else {
                continue;
            };
            if slot.state != PluginState::Enabled {
                continue;
            }
            for hook in &slot.manifest.hooks {
                points.entry(hook.point.clone()).or_default().push(Joined {
                    plugin: plugin.clone(),
                    hook: hook.clone(),
                });
            }
        }
        for joined in points.values_mut() {
            joined.sort_by(|a, b| {
                (a.hook.priority, a.plugin.ctx().id.as_str())
                    .cmp(&(b.hook.priority, b.plugin.ctx().id.as_str()))
            });
        }
        self.points.store(Arc::new(points));
    }

    /// The plugins joined to `point`, in the order they run, with their priorities.
    pub fn joined(&self, point: &str) -> Vec<(String, i32)> {
        self.points
            .load()
            .get(point)
            .map(|chain| {
                chain
                    .iter()
                    .map(|j| (j.plugin.ctx().id.to_string(), j.hook.priority))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs `point` on `value` for `principal`, from host code.
    pub async fn run(
        &self,
        point: &str,
        value: Vec<u8>,
        principal: &Principal,
    ) -> Result<Vec<u8>, HookError> {
        self.run_point(point, value, principal, 0).await
    }
}

#[async_trait]
impl HookPoints for HookRunner {
    async fn run_point(
        &self,
        point: &str,
        mut value: Vec<u8>,
        principal: &Principal,
        depth: u8,
    ) -> Result<Vec<u8>, HookError> {
        if depth >= MAX_DEPTH {
            return Err(HookError::Invalid(format!(
                "hooks nest more than {MAX_DEPTH} levels deep at '{point}'; a hook may not keep running hook points"
            )));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(HookError::Invalid(format!(
                "the value for '{point}' is {} bytes, over the limit of {MAX_VALUE_BYTES} bytes",
                value.len()
            )));
        }
        let chain = self.points.load().get(point).cloned().unwrap_or_default();
        for joined in chain {
            let id = joined.plugin.ctx().id.to_string();
            let hook = &joined.hook;
            let started = Instant::now();
            let result = joined
                .plugin
                .handle_hook(
                    point,
                    value.clone(),
                    principal.clone(),
                    std::time::Duration::from_millis(u64::from(hook.timeout_ms)),
                    depth + 1,
                )
                .await;
            let elapsed = started.elapsed();
            let failure = match result {
                Ok(HookOutcome::Unchanged) => {
                    self.metrics.hook_call(&id, point, "unchanged", elapsed);
                    continue;
                }
                Ok(HookOutcome::Changed(next)) if next.len() <= MAX_VALUE_BYTES => {
                    self.metrics.hook_call(&id, point, "changed", elapsed);
                    value = next;
                    continue;
                }
                Ok(HookOutcome::Changed(next)) => format!(
                    "it returned {} bytes, over the limit of {MAX_VALUE_BYTES} bytes",
                    next.len()
                ),
                Ok(HookOutcome::Rejected(message)) => {
                    self.metrics.hook_call(&id, point, "rejected", elapsed);
                    tracing::info!(plugin = %id, point, "hook rejected the value");
                    return Err(HookError::Rejected {
                        plugin: id,
                        message,
                        code: None,
                    });
                }
                Err(error) => format!("{} ({error})", error.code()),
            };
            match hook.on_failure {
                OnFailure::Reject => {
                    self.metrics
                        .hook_call(&id, point, "failed_rejected", elapsed);
                    tracing::warn!(plugin = %id, point, failure = %failure, "hook failed; the value is rejected (on-failure = \"reject\")");
                    return Err(HookError::Rejected {
                        message: format!(
                            "the hook of plugin '{id}' on '{point}' failed: {failure}"
                        ),
                        plugin: id,
                        code: Some("hook_failed".into()),
                    });
                }
                OnFailure::Skip => {
                    self.metrics
                        .hook_call(&id, point, "failed_skipped", elapsed);
                    tracing::warn!(plugin = %id, point, failure = %failure, "hook failed; skipped (on-failure = \"skip\")");
                }
            }
        }
        Ok(value)
    }
}
