use ucms_manifest::{Capability, ManifestError};

use crate::runtime::invocation::InvocationError;
use crate::runtime::limits::CeilingExceeded;

/// Why a plugin can't be installed, loaded or changed. Every variant says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    #[error("cannot read the plugin at {path}: {reason}\n  hint: {hint}")]
    Source {
        path: String,
        reason: String,
        hint: String,
    },
    #[error("the plugin's component does not compile: {0:#}")]
    Compile(anyhow::Error),
    #[error(
        "the component imports {interface}, but ucms-plugin.toml does not grant `{capability}`\n  hint: add `{capability} = true` (with its scopes) under [capabilities], or stop using that interface"
    )]
    UndeclaredImport {
        interface: String,
        capability: Capability,
    },
    #[error(
        "the component imports {interface}, which this host doesn't provide (it provides ucms:host {supported})\n  hint: {hint}"
    )]
    UnsupportedImport {
        interface: String,
        supported: String,
        hint: String,
    },
    #[error("the component imports {interface}: {reason}")]
    ForbiddenImport { interface: String, reason: String },
    #[error(
        "the component does not export {0}\n  hint: build it with the UCMS SDK (ucms_sdk::export!) or implement the ucms:plugin world"
    )]
    MissingExport(String),
    #[error("{0}")]
    ApiMismatch(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Limits(#[from] CeilingExceeded),
    #[error("{0:#}")]
    Settings(anyhow::Error),
    #[error("the component can't be linked: {0:#}")]
    Link(anyhow::Error),
    #[error(
        "plugin '{id}' {version} is already installed\n  hint: remove it first (ucms plugin remove {id}), or install a different version"
    )]
    AlreadyInstalled { id: String, version: String },
    #[error("no plugin '{0}' is installed\n  hint: `ucms plugin list` shows the installed plugins")]
    NotInstalled(String),
    #[error("the plugin's {hook} hook refused: {message}")]
    HookRefused { hook: &'static str, message: String },
    #[error("the plugin's {hook} hook failed: {source}")]
    HookFailed {
        hook: &'static str,
        #[source]
        source: InvocationError,
    },
    #[error(
        "the installed files of plugin '{id}' don't match what was installed ({reason})\n  hint: reinstall the plugin"
    )]
    Tampered { id: String, reason: String },
    #[error("{0:#}")]
    Storage(anyhow::Error),
}

impl PluginError {
    /// A stable code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Manifest(_) => "invalid_manifest",
            Self::Source { .. } => "invalid_plugin_source",
            Self::Compile(_) => "invalid_component",
            Self::UndeclaredImport { .. } => "undeclared_import",
            Self::UnsupportedImport { .. } => "unsupported_import",
            Self::ForbiddenImport { .. } => "forbidden_import",
            Self::MissingExport(_) => "missing_export",
            Self::ApiMismatch(_) => "api_mismatch",
            Self::Unsupported(_) => "unsupported_feature",
            Self::Limits(_) => "limit_above_ceiling",
            Self::Settings(_) => "invalid_settings",
            Self::Link(_) => "link_failed",
            Self::AlreadyInstalled { .. } => "already_installed",
            Self::NotInstalled(_) => "plugin_not_found",
            Self::HookRefused { .. } => "hook_refused",
            Self::HookFailed { .. } => "hook_failed",
            Self::Tampered { .. } => "plugin_files_changed",
            Self::Storage(_) => "storage_error",
        }
    }
}
