//! The one error type of the HTTP API: a status, a stable code and a message, rendered as
//! `{"error": {"code": "...", "message": "..."}}`. Internal details go to the log, not the caller.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::identity::AuthError;
use crate::plugins::PluginError;
use crate::runtime::invocation::InvocationError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
            .with_header(http::header::WWW_AUTHENTICATE, "Bearer realm=\"ucms\"")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// A failure of the host itself: logged in full, reported without details.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the server failed to handle the request; the details are in its log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<InvocationError> for ApiError {
    fn from(error: InvocationError) -> Self {
        let status = match &error {
            InvocationError::Busy { .. } | InvocationError::SiteBusy { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            InvocationError::Timeout { .. } | InvocationError::CpuLimit { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &error {
            // The panic message and host errors stay in the log.
            InvocationError::Panicked { .. } | InvocationError::Internal { .. } => {
                format!("{error}; the details are in the server log")
            }
            _ => error.to_string(),
        };
        let api = Self::new(status, error.code(), message);
        match error {
            InvocationError::Busy { .. } | InvocationError::SiteBusy { .. } => {
                api.with_header(http::header::RETRY_AFTER, "1")
            }
            _ => api,
        }
    }
}

impl From<PluginError> for ApiError {
    fn from(error: PluginError) -> Self {
        let status = match &error {
            PluginError::NotInstalled(_) => StatusCode::NOT_FOUND,
            PluginError::AlreadyInstalled { .. } => StatusCode::CONFLICT,
            PluginError::Storage(_) => return Self::internal(error),
            PluginError::HookFailed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            PluginError::Policy(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, error.code(), error.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let (status, code) = match &error {
            AuthError::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            AuthError::Expired(_) => (StatusCode::UNAUTHORIZED, "token_expired"),
            AuthError::Revoked => (StatusCode::UNAUTHORIZED, "token_revoked"),
            AuthError::Disabled => (StatusCode::UNAUTHORIZED, "account_disabled"),
            AuthError::BadCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            AuthError::Locked { retry_after } => {
                return Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "account_locked",
                    error.to_string(),
                )
                .with_header(
                    http::header::RETRY_AFTER,
                    &retry_after.as_secs().max(1).to_string(),
                );
            }
            AuthError::Throttled { retry_after } => {
                return Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    error.to_string(),
                )
                .with_header(
                    http::header::RETRY_AFTER,
                    &retry_after.as_secs().max(1).to_string(),
                );
            }
            AuthError::Internal(inner) => return Self::internal(format!("{error}: {inner:#}")),
        };
        Self::new(status, code, error.to_string()).with_header(
            http::header::WWW_AUTHENTICATE,
            &format!(
                "Bearer realm=\"ucms\", error=\"invalid_token\", error_description=\"{error}\""
            ),
        )
    }
}
