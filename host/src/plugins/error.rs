use ucms_manifest::ManifestError;

use crate::policy::PolicyRefusal;
use crate::runtime::invocation::InvocationError;
use crate::runtime::limits::CeilingExceeded;

/// Why a plugin can't be installed, loaded or changed. Every variant says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot read the plugin at {path}: {reason}\n  hint: {hint}")]
    Source {
        path: String,
        reason: String,
        hint: String,
    },
    #[error("the plugin's component does not compile: {0:#}")]
    Compile(anyhow::Error),
    #[error(transparent)]
    Component(#[from] ucms_package::component::ComponentError),
    #[error(transparent)]
    Limits(#[from] CeilingExceeded),
    #[error("the site's policy refuses it: {0}")]
    Policy(#[from] PolicyRefusal),
    #[error("{0:#}")]
    Settings(anyhow::Error),
    #[error("the component can't be linked: {0:#}")]
    Link(anyhow::Error),
    #[error(
        "the manifest declares {0}\n  hint: fix the declaration in [capabilities.documents], or the stored documents it conflicts with"
    )]
    Declaration(String),
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
    #[error("another {} of '{id}' is in progress (by {owner}); wait for it to finish", operation.as_str())]
    InProgress {
        id: String,
        operation: super::journal::Operation,
        owner: String,
    },
    #[error(transparent)]
    Trust(#[from] ucms_package::trust::TrustError),
    #[error(transparent)]
    Registry(#[from] ucms_registry::client::ClientError),
    #[error(transparent)]
    Resolve(#[from] ucms_resolver::ResolveError),
    #[error("the package is not valid: {0}")]
    Package(String),
    #[error("{0}")]
    Refused(String),
    /// The registry offers different bytes for a version than `ucms.lock` recorded.
    #[error(
        "{id} {version}: the registry offers a package with digest {offered}, but ucms.lock recorded {locked} when it was installed\n  \
         published versions never change, so the registry or the lockfile has been tampered with; nothing was installed\n  \
         hint: ask the registry's operator; if the lockfile is wrong, remove its entry for {id}"
    )]
    LockMismatch {
        id: String,
        version: String,
        locked: String,
        offered: String,
    },
}

impl PluginError {
    /// A stable code for APIs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Manifest(_) => "invalid_manifest",
            Self::Source { .. } => "invalid_plugin_source",
            Self::Compile(_) => "invalid_component",
            Self::Component(e) => {
                use ucms_package::component::ComponentError as C;
                match e {
                    C::NotAComponent(_) => "invalid_component",
                    C::UndeclaredImport { .. } => "undeclared_import",
                    C::UnsupportedImport { .. } => "unsupported_import",
                    C::ForbiddenImport { .. } => "forbidden_import",
                    C::MissingExport(_) => "missing_export",
                    C::ApiMismatch(_) => "api_mismatch",
                    C::Unsupported(_) => "unsupported_feature",
                    _ => "invalid_component",
                }
            }
            Self::Limits(_) => "limit_above_ceiling",
            Self::Policy(_) => "policy_refused",
            Self::Settings(_) => "invalid_settings",
            Self::Link(_) => "link_failed",
            Self::Declaration(_) => "declaration_failed",
            Self::AlreadyInstalled { .. } => "already_installed",
            Self::NotInstalled(_) => "plugin_not_found",
            Self::HookRefused { .. } => "hook_refused",
            Self::HookFailed { .. } => "hook_failed",
            Self::Tampered { .. } => "plugin_files_changed",
            Self::Storage(_) => "storage_error",
            Self::InProgress { .. } => "operation_in_progress",
            Self::Trust(_) => "package_untrusted",
            Self::Registry(e) => match e.code() {
                "digest_mismatch" => "digest_mismatch",
                "metadata_rollback" => "metadata_rollback",
                "metadata_expired" => "metadata_expired",
                _ => "registry_error",
            },
            Self::Resolve(_) => "resolution_failed",
            Self::Package(_) => "invalid_package",
            Self::Refused(_) => "refused",
            Self::LockMismatch { .. } => "digest_mismatch",
        }
    }
}
