use std::fmt;

/// A `Result` whose error is an [`Error`], what route handlers and plugin hooks return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error a handler returns; it becomes a JSON error response
/// (`{"error": {"code": "...", "message": "..."}}`) with its status code.
///
/// Host-call failures convert into it with `?`, each module documenting its statuses and codes: a
/// storage outage becomes a 503, a quota breach a 507, a stale revision or a taken unique value a
/// 409, a missing document a 404, an invalid kv or cache key a 500 (it is the plugin's bug, not
/// the caller's) but an invalid document filter or cursor a 400 (it usually comes from the
/// caller). Match on [`Error::code`] to answer in your own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: u16,
    code: String,
    message: String,
}

impl Error {
    /// An error with any status and a machine-readable `code` (`snake_case` by convention).
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// 403: the caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    /// 404: nothing here.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }

    /// 422: the request is well-formed but its content is not acceptable.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(422, "unprocessable", message)
    }

    /// 500: something went wrong inside the plugin.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }

    /// 503: a dependency is unavailable; retrying later may work.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "unavailable", message)
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Self::internal(format!("JSON (de)serialization failed: {error}"))
    }
}
