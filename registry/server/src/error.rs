//! Registry errors, rendered as `{"error": {"code": "...", "message": "..."}}` like the host's.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("{message}")]
    Api {
        status: StatusCode,
        code: &'static str,
        message: String,
        retry_after: Option<u64>,
    },
    #[error("the registry failed: {0:#}")]
    Internal(anyhow::Error),
}

impl RegistryError {
    fn api(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Api {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::api(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::api(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::api(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::api(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::api(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// A write's database error, where a foreign-key violation means the row it refers to is
    /// missing: `not_found` with `missing`'s message, anything else as it is.
    pub fn or_missing(error: sqlx::Error, missing: impl FnOnce() -> String) -> Self {
        match error {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                Self::not_found(missing())
            }
            other => other.into(),
        }
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::api(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::api(StatusCode::PAYLOAD_TOO_LARGE, "package_too_large", message)
    }
    pub fn rate_limited(retry_after: u64) -> Self {
        Self::Api {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: format!(
                "too many write requests with this token; try again in {retry_after} s"
            ),
            retry_after: Some(retry_after),
        }
    }

    /// Too many attempts of something other than a token's writes (sign-in, sign-up).
    pub fn too_many(message: impl Into<String>, retry_after: u64) -> Self {
        Self::Api {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "rate_limited",
            message: message.into(),
            retry_after: Some(retry_after),
        }
    }

    /// The stable code, for clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Api { code, .. } => code,
            Self::Internal(_) => "internal_error",
        }
    }
}

impl From<sqlx::Error> for RegistryError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code, message, retry_after) = match self {
            Self::Api {
                status,
                code,
                message,
                retry_after,
            } => (status, code, message, retry_after),
            Self::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "registry internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "the registry failed to handle the request; the details are in its log"
                        .to_string(),
                    None,
                )
            }
        };
        let mut response = (
            status,
            Json(serde_json::json!({ "error": { "code": code, "message": message } })),
        )
            .into_response();
        if let Some(secs) = retry_after
            && let Ok(value) = http::HeaderValue::from_str(&secs.to_string())
        {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, value);
        }
        response
    }
}
