//! `ucms:host/hooks`: a plugin runs the hook points it owns — those whose first segment is its
//! id (`content.before-save` for `content`). The host calls the plugins that join the point, in
//! priority order; the runner itself lives with the plugins (`crate::plugins::HookRunner`), reached
//! through the small [`HookPoints`] trait so this module doesn't depend on `plugins`.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use wasmtime::component::{HasData, Linker};

use crate::identity::Principal;
use crate::wit::latest::ucms::host::hooks as wit;

/// How deep hooks may nest: a hook that runs a point whose hooks run a point ... at most this many
/// levels below the first caller.
pub const MAX_DEPTH: u8 = 4;

/// Why a hook point produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// A joined plugin refused the value.
    #[error("plugin '{plugin}' rejected it: {message}")]
    Rejected {
        plugin: String,
        message: String,
        code: Option<String>,
    },
    /// The host could not run the point.
    #[error("the hooks could not run: {0}")]
    Failed(String),
    /// The call broke a rule (not the caller's point, too large, nested too deeply).
    #[error("{0}")]
    Invalid(String),
}

impl HookError {
    /// The stable error code (docs/errors.md).
    pub fn code(&self) -> &str {
        match self {
            Self::Rejected { code, .. } => code.as_deref().unwrap_or("hook_rejected"),
            Self::Failed(_) => "hooks_unavailable",
            Self::Invalid(_) => "hook_invalid",
        }
    }
}

/// Runs hook points; implemented by `crate::plugins::HookRunner`.
#[async_trait]
pub trait HookPoints: Send + Sync + 'static {
    /// Runs `point` on `value` for `principal`; `depth` is how many hook calls are already on the
    /// stack (0 for a route or the host itself).
    async fn run_point(
        &self,
        point: &str,
        value: Vec<u8>,
        principal: &Principal,
        depth: u8,
    ) -> Result<Vec<u8>, HookError>;
}

/// Per-plugin state of the capability: the site's runner, held weakly (the runner holds the
/// plugins).
#[derive(Clone)]
pub struct HooksState {
    pub runner: Weak<dyn HookPoints>,
}

impl std::fmt::Debug for HooksState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HooksState")
    }
}

impl HooksState {
    pub fn new(runner: &Arc<dyn HookPoints>) -> Self {
        Self {
            runner: Arc::downgrade(runner),
        }
    }
}

pub struct HooksCtx<'a> {
    pub plugin: &'a str,
    pub principal: &'a Principal,
    pub state: &'a HooksState,
    /// Hook calls already on the stack of this invocation.
    pub depth: u8,
    pub health: &'a crate::runtime::health::Health,
}

struct Hooks;

impl HasData for Hooks {
    type Data<'a> = HooksCtx<'a>;
}

/// Store data that can give the `ucms:host/hooks` host functions their view of the invocation.
pub trait HooksView: Send {
    fn hooks(&mut self) -> HooksCtx<'_>;
}

/// Links `ucms:host/hooks`.
pub fn add_to_linker<T: HooksView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, Hooks>(linker, T::hooks)
}

/// Whether `plugin` owns `point`: the point's first segment is the plugin's id.
pub fn owns(plugin: &str, point: &str) -> bool {
    point
        .split_once('.')
        .is_some_and(|(owner, rest)| owner == plugin && !rest.is_empty())
}

impl wit::Host for HooksCtx<'_> {
    #[tracing::instrument(
        name = "hooks.run",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn run(
        &mut self,
        point: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<Vec<u8>, wit::HookError>> {
        if !owns(self.plugin, &point) {
            let message = format!(
                "plugin '{}' may run only its own hook points ('{}.<name>'), not '{point}'",
                self.plugin, self.plugin
            );
            self.health.refused("hooks", &message);
            return Ok(Err(wit::HookError::Invalid(message)));
        }
        let Some(runner) = self.state.runner.upgrade() else {
            return Ok(Err(wit::HookError::Failed(
                "the site is shutting down".into(),
            )));
        };
        let result = runner
            .run_point(&point, value, self.principal, self.depth)
            .await;
        Ok(result.map_err(|e| match e {
            HookError::Rejected {
                plugin,
                message,
                code,
            } => wit::HookError::Rejected(wit::Rejection {
                plugin,
                message,
                code,
            }),
            HookError::Failed(m) => wit::HookError::Failed(m),
            HookError::Invalid(m) => wit::HookError::Invalid(m),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::owns;

    #[test]
    fn a_plugin_owns_the_points_named_after_it() {
        assert!(owns("content", "content.before-save"));
        assert!(owns("content", "content.a.b"));
        assert!(!owns("content", "contents.before-save"));
        assert!(!owns("content", "other.before-save"));
        assert!(!owns("content", "content."));
        assert!(!owns("content", "content"));
    }
}
