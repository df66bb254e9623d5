//! Hooks: synchronous filters other plugins add to your operations, and the ones you join.
//!
//! **Running a point you own.** A hook point is a dotted name whose first segment is your plugin id
//! (`content.before-save` belongs to `content`). [`run`] (or [`run_json`]) calls every enabled
//! plugin that joined it, in priority order, passing the value along, and returns the value the
//! last one left — or the [`Rejection`] that stopped the chain. Requires the `hooks` capability.
//!
//! ```no_run
//! use ucms_sdk::{Request, Response, Result, hooks};
//!
//! fn save(req: Request) -> Result<Response> {
//!     let item: serde_json::Value = req.json()?;
//!     // A rejection becomes a 422 with the hook's message.
//!     let item = hooks::run_json("content.before-save", &item)?;
//!     Ok(Response::json(&item))
//! }
//! ```
//!
//! **Joining another plugin's point.** Declare it under `[[hooks]]` in the manifest (point,
//! priority, `on-failure`, `timeout-ms`) and register a handler in [`crate::Plugin::hooks`]:
//!
//! ```no_run
//! use ucms_sdk::hooks::{HookCall, HookOutcome, Hooks};
//!
//! fn add_slug(call: HookCall) -> HookOutcome {
//!     let Ok(mut item) = call.json::<serde_json::Value>() else {
//!         return HookOutcome::Rejected("the item is not JSON".into());
//!     };
//!     let slug = item["title"].as_str().unwrap_or_default().to_lowercase().replace(' ', "-");
//!     item["slug"] = slug.into();
//!     HookOutcome::json(&item)
//! }
//!
//! fn hooks() -> Hooks {
//!     Hooks::new().on("content.before-save", add_slug)
//! }
//! # let _ = hooks;
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::exports::ucms::plugin::hooks as export;
use crate::bindings::ucms::host::hooks as raw;
use crate::{Error, Principal};

/// A joined plugin's refusal, as the caller of [`run`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The plugin that refused.
    pub plugin: String,
    pub message: String,
    pub code: Option<String>,
}

/// Why [`run`] returned no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookError {
    /// A hook refused the value: don't go ahead with the operation.
    Rejected(Rejection),
    /// The host could not run the point right now.
    Failed(String),
    /// The call broke a rule (not your point, value too large, hooks nested too deeply).
    Invalid(String),
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rejected(r) => write!(f, "{} (refused by plugin '{}')", r.message, r.plugin),
            Self::Failed(m) => write!(f, "the hooks could not run: {m}"),
            Self::Invalid(m) => write!(f, "invalid hook call: {m}"),
        }
    }
}

impl std::error::Error for HookError {}

/// A rejection is a 422 with the hook's message (and its code, or `hook_rejected`); a failure a
/// 503; an invalid call a 500 (it is the plugin's bug).
impl From<HookError> for Error {
    fn from(e: HookError) -> Self {
        match e {
            HookError::Rejected(r) => Error::new(
                422,
                r.code.unwrap_or_else(|| "hook_rejected".into()),
                r.message,
            ),
            HookError::Failed(m) => Error::new(503, "hooks_unavailable", m),
            HookError::Invalid(m) => Error::new(500, "hook_invalid", m),
        }
    }
}

/// Runs the hook point `point` (yours: `<plugin id>.<name>`) on `value`.
pub fn run(point: &str, value: &[u8]) -> Result<Vec<u8>, HookError> {
    raw::run(point, value).map_err(|e| match e {
        raw::HookError::Rejected(r) => HookError::Rejected(Rejection {
            plugin: r.plugin,
            message: r.message,
            code: r.code,
        }),
        raw::HookError::Failed(m) => HookError::Failed(m),
        raw::HookError::Invalid(m) => HookError::Invalid(m),
    })
}

/// Runs `point` on `value` as JSON and parses what the hooks left.
pub fn run_json<T: Serialize + DeserializeOwned>(point: &str, value: &T) -> crate::Result<T> {
    let bytes = serde_json::to_vec(value)?;
    let out = run(point, &bytes)?;
    serde_json::from_slice(&out).map_err(|e| {
        Error::internal(format!(
            "the hooks of '{point}' left a value that doesn't parse: {e}"
        ))
    })
}

/// One call of a hook you joined.
#[derive(Debug, Clone)]
pub struct HookCall {
    pub point: String,
    /// The value as the previous hook left it.
    pub value: Vec<u8>,
    /// Who the operation runs for.
    pub principal: Principal,
}

impl HookCall {
    /// The value parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> crate::Result<T> {
        serde_json::from_slice(&self.value).map_err(|e| {
            Error::bad_request(format!(
                "the value of '{}' is not the expected JSON: {e}",
                self.point
            ))
        })
    }
}

/// What a hook does with the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// Pass it on as it came.
    Unchanged,
    /// Pass this on instead.
    Changed(Vec<u8>),
    /// Refuse it; the message reaches the caller and no later hook runs.
    Rejected(String),
}

impl HookOutcome {
    /// `Changed` with `value` as JSON.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => Self::Changed(bytes),
            Err(e) => Self::Rejected(format!("the hook could not encode its value: {e}")),
        }
    }

    fn into_raw(self) -> export::HookOutcome {
        match self {
            Self::Unchanged => export::HookOutcome::Unchanged,
            Self::Changed(v) => export::HookOutcome::Changed(v),
            Self::Rejected(m) => export::HookOutcome::Rejected(m),
        }
    }
}

/// A hook handler.
pub type HookHandler = fn(HookCall) -> HookOutcome;

/// The hook points this plugin joins, each with its handler; see [`crate::Plugin::hooks`].
#[derive(Debug, Default, Clone)]
pub struct Hooks {
    handlers: Vec<(String, HookHandler)>,
}

impl Hooks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles `point`, which the manifest must join under `[[hooks]]`.
    pub fn on(mut self, point: &str, handler: HookHandler) -> Self {
        self.handlers.push((point.to_string(), handler));
        self
    }

    pub(crate) fn dispatch(
        &self,
        point: String,
        value: Vec<u8>,
        principal: Principal,
    ) -> export::HookOutcome {
        match self.handlers.iter().find(|(p, _)| *p == point) {
            Some((_, handler)) => handler(HookCall {
                point,
                value,
                principal,
            })
            .into_raw(),
            None => export::HookOutcome::Rejected(format!(
                "the manifest joins '{point}' but the plugin's Hooks have no handler for it"
            )),
        }
    }
}
