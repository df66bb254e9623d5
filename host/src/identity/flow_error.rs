//! The error type of the sign-in flows (token endpoint, MFA, OpenID Connect).

use super::AuthError;

/// Why a sign-in flow refused, with the stable code the API reports.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The request itself is wrong (400).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Credentials or a grant were not accepted (401).
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// Authenticated, but not allowed (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// Not found or not configured (404).
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// A state conflict (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A remote party (the OpenID provider) failed (502).
    #[error("{message}")]
    Upstream { code: &'static str, message: String },
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl FlowError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Unauthorized { code, .. }
            | Self::Forbidden { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::Upstream { code, .. } => code,
            Self::Auth(_) => "auth",
        }
    }

    pub(super) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub(super) fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthorized {
            code,
            message: message.into(),
        }
    }

    pub(super) fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Auth(AuthError::internal(e))
    }
}
