//! The one error type of the document store. Messages are written for the plugin developer who
//! reads them: what was wrong, and what to do about it. Database details are logged, never put in
//! a message.

/// Why a document operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// The request itself is wrong (a bad path, filter, value, name or cursor; a document too big;
    /// a limit exceeded). Retrying the same request fails the same way.
    #[error("{0}")]
    Invalid(String),
    /// The document to change does not exist.
    #[error("document `{id}` does not exist in collection `{collection}`")]
    NotFound { collection: String, id: String },
    /// The document changed since the caller read it (optimistic concurrency).
    #[error(
        "document `{id}` is at revision {actual}, not {expected}: someone changed it since you read it; read it again and redo the change"
    )]
    Conflict {
        id: String,
        expected: u64,
        actual: u64,
    },
    /// A unique index already holds a document with the same values.
    #[error(
        "unique index `{index}` of collection `{collection}` already has a document with the same {fields}; change the value or update that document instead"
    )]
    Unique {
        collection: String,
        index: String,
        /// The indexed paths, comma-separated.
        fields: String,
    },
    /// An insert named an id that is taken.
    #[error(
        "document `{id}` already exists in collection `{collection}`: replace or patch it, or insert without an id to get a new one"
    )]
    AlreadyExists { collection: String, id: String },
    /// The plugin's quota (or a per-plugin limit such as the number of collections) is used up.
    /// Nothing was written.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The database failed. The details are in the host's log.
    #[error("the document store is unavailable ({0}); try again later")]
    Unavailable(String),
    /// Operation `op` (0-based) of a [`batch`](crate::Documents::batch) failed; the whole batch
    /// was rolled back.
    #[error("operation {op} of the batch failed and nothing was written: {source}")]
    Batch { op: usize, source: Box<DocError> },
    /// The host's own statements in a batch (`also`) failed; the whole batch was rolled back.
    #[error("the batch was rolled back: {0:#}")]
    Aborted(anyhow::Error),
}

impl DocError {
    /// The error itself, looking through [`DocError::Batch`].
    pub fn root(&self) -> &DocError {
        match self {
            Self::Batch { source, .. } => source.root(),
            other => other,
        }
    }

    /// For a batch, the index of the operation that failed.
    pub fn batch_op(&self) -> Option<usize> {
        match self {
            Self::Batch { op, .. } => Some(*op),
            _ => None,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

/// An internal failure: a [`DocError`] for the caller, or a sign that the cached description of a
/// collection is stale (its table is gone: another node dropped it), which the public methods
/// answer by reloading and retrying once.
#[derive(Debug)]
pub(crate) enum Fail {
    Doc(DocError),
    Stale,
}

impl From<DocError> for Fail {
    fn from(e: DocError) -> Self {
        Self::Doc(e)
    }
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        if is_missing_table(&e) {
            return Self::Stale;
        }
        Self::Doc(unavailable(e))
    }
}

pub(crate) type Result<T, E = Fail> = std::result::Result<T, E>;

/// Logs a database error and turns it into [`DocError::Unavailable`] with a short reason.
pub(crate) fn unavailable(e: sqlx::Error) -> DocError {
    tracing::error!(error = %e, "document store database error");
    let reason = match &e {
        sqlx::Error::PoolTimedOut => "the database connection pool is exhausted",
        sqlx::Error::PoolClosed => "the database is shutting down",
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => "the database cannot be reached",
        sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => {
            "the query was cancelled"
        }
        _ => "a database error, logged by the host",
    };
    DocError::Unavailable(reason.to_owned())
}

pub(crate) fn is_missing_table(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("42P01")
                || db.message().starts_with("no such table: ucms_doc_")
        }
        _ => false,
    }
}
