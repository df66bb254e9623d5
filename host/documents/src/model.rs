//! The values the store takes and returns.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Path;

/// Where an operation applies: one collection of one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    pub plugin: &'a str,
    pub collection: &'a str,
}

impl<'a> Scope<'a> {
    pub fn new(plugin: &'a str, collection: &'a str) -> Self {
        Self { plugin, collection }
    }
}

/// A stored document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    /// 1 when inserted, +1 on every write.
    pub revision: u64,
    /// Always a JSON object.
    pub data: Value,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What a plugin may store. `None`: unlimited. Checked in the transaction of every write; a write
/// that would go over is refused and nothing is written. Writes that shrink usage are always
/// allowed, even when usage is already over a (lowered) quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub max_documents: Option<u64>,
    /// Sum of the documents' sizes (their compact JSON encoding, in bytes).
    pub max_bytes: Option<u64>,
}

impl Quota {
    pub const UNLIMITED: Self = Self {
        max_documents: None,
        max_bytes: None,
    };
}

/// What a plugin stores, as counted for its [`Quota`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub documents: u64,
    pub bytes: u64,
    pub collections: u64,
}

/// Hard limits on requests, the same for every plugin. Requests beyond them fail with
/// [`DocError::Invalid`](crate::DocError::Invalid) (or `QuotaExceeded` for the per-plugin counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest document, as compact JSON.
    pub max_document_bytes: usize,
    /// Deepest nesting of arrays and objects in a document.
    pub max_document_depth: usize,
    /// Longest document id, in bytes.
    pub max_id_bytes: usize,
    /// Largest `limit` of a query or search page.
    pub max_page: u32,
    /// Largest `offset`; deeper pages are read with the cursor.
    pub max_offset: u32,
    /// Most nodes in a filter tree (every value of an `in` list counts as one).
    pub max_filter_nodes: usize,
    /// Most sort keys in a query.
    pub max_sort_keys: usize,
    /// Most operations in one batch.
    pub max_batch_ops: usize,
    /// Most ids in one `get_many`.
    pub max_get_many: usize,
    pub max_collections_per_plugin: usize,
    pub max_indexes_per_collection: usize,
    /// Most paths in one index.
    pub max_index_fields: usize,
    /// Most paths in a full-text search declaration.
    pub max_search_fields: usize,
    /// Longest search text, in bytes.
    pub max_search_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_document_bytes: 1 << 20,
            max_document_depth: 32,
            max_id_bytes: 256,
            max_page: 1000,
            max_offset: 10_000,
            max_filter_nodes: 200,
            max_sort_keys: 4,
            max_batch_ops: 1000,
            max_get_many: 1000,
            max_collections_per_plugin: 100,
            max_indexes_per_collection: 16,
            max_index_fields: 4,
            max_search_fields: 8,
            max_search_bytes: 1024,
        }
    }
}

/// A condition on documents. See `docs/documents.md` for the exact semantics; in short:
/// comparisons are JSON-typed (`1` ≠ `"1"`, `true` ≠ `1`), a missing field matches only `Ne`,
/// `NotIn` and `Not(..)` of something it does not match, and ranges compare numbers with numbers
/// and strings with strings (by Unicode code point).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Present and equal (a scalar: null, boolean, number or string).
    Eq(Path, Value),
    /// `Not(Eq(..))`: also true when the field is missing.
    Ne(Path, Value),
    /// A number below a number, or a string before a string.
    Lt(Path, Value),
    Lte(Path, Value),
    Gt(Path, Value),
    Gte(Path, Value),
    /// `Eq` to any of the values; false for an empty list.
    In(Path, Vec<Value>),
    /// `Not(In(..))`.
    NotIn(Path, Vec<Value>),
    /// A string containing the string value, or an array with an element equal to the value.
    Contains(Path, Value),
    /// A string starting with the prefix.
    StartsWith(Path, String),
    /// The field is present (even if null).
    Exists(Path),
    /// The field is present and null (missing is not null: use `Or([Not(Exists), IsNull])`).
    IsNull(Path),
    /// All of them (true for an empty list).
    And(Vec<Filter>),
    /// Any of them (false for an empty list).
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sort {
    pub path: Path,
    pub descending: bool,
}

impl Sort {
    pub fn asc(path: Path) -> Self {
        Self {
            path,
            descending: false,
        }
    }

    pub fn desc(path: Path) -> Self {
        Self {
            path,
            descending: true,
        }
    }
}

/// A page of documents: filter, order, position.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    pub filter: Option<Filter>,
    /// Sort keys, most significant first; ties are broken by id (in the direction of the last
    /// key, ascending without sort).
    pub sort: Vec<Sort>,
    /// Documents per page, up to [`Limits::max_page`]; 0 returns no documents (with `with_total`,
    /// just the count).
    pub limit: u32,
    /// Documents to skip (after the cursor's position, if there is one).
    pub offset: u32,
    /// [`Page::next_cursor`] of the previous page of the same query.
    pub cursor: Option<String>,
    /// Projection: return only these paths of each document's data (keys only, no array
    /// indexes). `None`: whole documents.
    pub fields: Option<Vec<Path>>,
    /// Also count every document that matches the filter.
    pub with_total: bool,
}

/// Documents of a [`Query`].
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub documents: Vec<Document>,
    /// Where the next page starts; `None` when this is the last page.
    pub next_cursor: Option<String>,
    pub total: Option<u64>,
    /// Whether a declared (or built-in) index served the filter or the sort: for metrics
    /// (`index` vs `scan`). Results never depend on it.
    pub indexed: bool,
}

/// A full-text search.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Search {
    /// Words and `"quoted phrases"`; `-word` excludes, `or` between two terms makes either do.
    pub text: String,
    pub filter: Option<Filter>,
    pub limit: u32,
    pub offset: u32,
    pub fields: Option<Vec<Path>>,
    pub with_total: bool,
}

/// Hits of a [`Search`], best first.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// A document and its relevance (higher is better; only comparable within one search).
    pub hits: Vec<(Document, f64)>,
    pub total: Option<u64>,
}

/// A declared index. `unique`: no two documents may have equal values at all of the paths;
/// documents where one of them is missing, null, an array or an object are not constrained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSpec {
    pub name: String,
    pub fields: Vec<Path>,
    pub unique: bool,
}

/// Full-text search over these paths (the strings in them, however deeply nested), in a language
/// (`english`, `french`, `simple`, ... see `docs/documents.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchSpec {
    pub fields: Vec<Path>,
    pub language: String,
}

/// One write of a [`batch`](crate::Documents::batch).
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Insert {
        collection: String,
        id: Option<String>,
        data: Value,
    },
    Replace {
        collection: String,
        id: String,
        data: Value,
        expected_revision: Option<u64>,
    },
    /// An RFC 7386 JSON merge patch.
    Patch {
        collection: String,
        id: String,
        patch: Value,
        expected_revision: Option<u64>,
    },
    Delete {
        collection: String,
        id: String,
        expected_revision: Option<u64>,
    },
}

impl WriteOp {
    pub fn collection(&self) -> &str {
        match self {
            Self::Insert { collection, .. }
            | Self::Replace { collection, .. }
            | Self::Patch { collection, .. }
            | Self::Delete { collection, .. } => collection,
        }
    }
}

/// The outcome of one [`WriteOp`].
#[derive(Debug, Clone, PartialEq)]
pub enum WriteResult {
    /// The document as written (insert, replace, patch).
    Written(Document),
    /// Whether a document was deleted.
    Deleted(bool),
}

/// A boxed future, as `futures::future::BoxFuture`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The host's own statements for a batch's transaction: called after the batch's writes and
/// before the commit, with the open transaction (run statements with [`ucms_db::on_tx!`]). An
/// error rolls back everything, documents included ([`DocError::Aborted`](crate::DocError)).
///
/// ```no_run
/// use ucms_documents::AlsoInTx;
///
/// let also: AlsoInTx = Box::new(move |tx| {
///     Box::pin(async move {
///         ucms_db::on_tx!(tx, |conn| sqlx::query("DELETE FROM kv WHERE plugin = $1")
///             .bind("hello")
///             .execute(conn)
///             .await
///             .map(|_| ()))?;
///         Ok(())
///     })
/// });
/// # drop(also);
/// ```
pub type AlsoInTx =
    Box<dyn for<'t> FnOnce(&'t mut ucms_db::Tx) -> BoxFuture<'t, anyhow::Result<()>> + Send>;
