//! The one error type of the blob store.

/// What went wrong with a blob operation. Messages say what was wrong and what to do next; they never
/// carry credentials, paths or database details (those are logged with `tracing` instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// A bad key, content type, plugin id, cursor or call sequence.
    #[error("{0}")]
    Invalid(String),
    /// The blob (or its stored object) does not exist.
    #[error("the blob does not exist")]
    NotFound,
    /// A byte range that does not fit the blob.
    #[error("{0}")]
    Range(String),
    /// Storing the blob would take the plugin over its byte quota.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The blob is larger than the per-blob limit.
    #[error("{0}")]
    TooLarge(String),
    /// The object store or the metadata database failed; the detail is in the host log.
    #[error("{0}")]
    Unavailable(String),
}

impl BlobError {
    /// A stable, short name for the variant: for metrics, logs and the WIT error mapping.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::NotFound => "not-found",
            Self::Range(_) => "range",
            Self::QuotaExceeded(_) => "quota-exceeded",
            Self::TooLarge(_) => "too-large",
            Self::Unavailable(_) => "unavailable",
        }
    }

    /// Logs a database failure and returns the caller-facing error.
    pub(crate) fn database(error: sqlx::Error) -> Self {
        tracing::error!(error = %error, "blob metadata database error");
        Self::Unavailable(
            "the blob metadata database is unavailable; try again later (the host log has the detail)"
                .into(),
        )
    }
}
