//! JSON documents in named collections, private to the plugin. Requires the `documents`
//! capability (`[capabilities.documents]`).
//!
//! A [`Collection<T>`] stores values of one serde type `T` (which must serialize to a JSON
//! object) and hands them back as [`Doc<T>`]: the value plus its id, revision and timestamps. A
//! collection is created by its first write. Every write bumps the revision (from 1); a write that
//! names the revision it expects fails with a 409 when someone else wrote first.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use ucms_sdk::documents::{Collection, Filter};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Note {
//!     title: String,
//!     tags: Vec<String>,
//!     author: Author,
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Author {
//!     name: String,
//! }
//!
//! # fn main() -> ucms_sdk::Result<()> {
//! let notes = Collection::<Note>::new("notes");
//!
//! let doc = notes.insert(&Note {
//!     title: "Hello".into(),
//!     tags: vec!["intro".into()],
//!     author: Author { name: "Ada".into() },
//! })?;
//!
//! // Optimistic concurrency: fails with 409 `revision_conflict` if someone else wrote it since.
//! let mut note = doc.data;
//! note.title = "Hello, world".into();
//! let doc = notes.replace(&doc.id, &note, Some(doc.revision))?;
//!
//! // Query: a filter tree, sorting, keyset pagination, an optional total.
//! let page = notes
//!     .query()
//!     .filter(Filter::eq("author.name", "Ada").and(Filter::contains("tags", "intro")))
//!     .sort_desc("_updated")
//!     .limit(20)
//!     .with_total()
//!     .fetch()?;
//! for doc in &page.documents {
//!     println!("{} (rev {}): {}", doc.id, doc.revision, doc.data.title);
//! }
//! if let Some(cursor) = page.next_cursor {
//!     let next = notes.query().sort_desc("_updated").limit(20).after(cursor).fetch()?;
//! #   let _ = next;
//! }
//!
//! // Full-text search over the fields the manifest (or `ensure_search`) declares.
//! let hits = notes.search("hello -draft").limit(10).fetch()?;
//! # let _ = (doc, hits);
//! # Ok(())
//! # }
//! ```
//!
//! Paths in filters, sorts and `fields` are dot-separated field names (`author.name`; a number
//! indexes an array). `_id`, `_revision`, `_created` and `_updated` name the document's own
//! attributes. A query is sorted by its sort keys, then by id, so its order is total and its
//! cursors are stable. See `docs/documents.md` for the exact semantics.
//!
//! Several writes (and the events they cause) commit together, all or nothing, with a [`Batch`].
//!
//! # Errors
//!
//! Failures convert into [`Error`] with these statuses and codes:
//!
//! | host error | status | code |
//! |---|---|---|
//! | invalid name, path, filter, cursor or document | 400 | `document_invalid` |
//! | no such document | 404 | `document_not_found` |
//! | stale `expected_revision` | 409 | `revision_conflict` |
//! | a unique index already holds the value | 409 | `unique_violation` |
//! | a document with this id exists | 409 | `document_exists` |
//! | the plugin's document quota | 507 | `documents_quota_exceeded` |
//! | the store is unavailable | 503 | `documents_unavailable` |
//! | a write in a batch failed | as the write alone | as the write alone |
//!
//! A stored document that doesn't deserialize into `T` is a 500 `document_type_mismatch`.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bindings::ucms::host::documents as raw;
use crate::{Error, Result};

/// The WIT's query record (`query-spec`; its first draft named it `query`, like the function).
type RawQuery = raw::QuerySpec;

impl From<raw::DocumentError> for Error {
    fn from(error: raw::DocumentError) -> Self {
        match error {
            raw::DocumentError::Invalid(m) => Error::new(400, "document_invalid", m),
            raw::DocumentError::NotFound(m) => Error::new(404, "document_not_found", m),
            raw::DocumentError::Conflict(c) => {
                let actual = if c.actual == 0 {
                    "it no longer exists".to_string()
                } else {
                    format!("it is at revision {}", c.actual)
                };
                Error::new(
                    409,
                    "revision_conflict",
                    format!(
                        "document '{}' was expected at revision {}, but {actual}: someone else changed it first",
                        c.id, c.expected
                    ),
                )
            }
            raw::DocumentError::UniqueViolation(m) => Error::new(409, "unique_violation", m),
            raw::DocumentError::AlreadyExists(m) => Error::new(409, "document_exists", m),
            raw::DocumentError::QuotaExceeded(m) => Error::new(507, "documents_quota_exceeded", m),
            raw::DocumentError::BatchFailed(f) => {
                let (status, code) = match f.code.as_str() {
                    "invalid" => (400, "document_invalid"),
                    "not-found" => (404, "document_not_found"),
                    "conflict" => (409, "revision_conflict"),
                    "unique-violation" => (409, "unique_violation"),
                    "already-exists" => (409, "document_exists"),
                    "quota-exceeded" => (507, "documents_quota_exceeded"),
                    "unavailable" => (503, "documents_unavailable"),
                    _ => (500, "batch_failed"),
                };
                Error::new(
                    status,
                    code,
                    format!(
                        "write {} of the batch failed, so nothing was applied: {}",
                        f.index, f.message
                    ),
                )
            }
            raw::DocumentError::Unavailable(m) => Error::new(503, "documents_unavailable", m),
        }
    }
}

/// A stored document: the value and what the store keeps about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Doc<T = serde_json::Value> {
    pub id: String,
    /// Starts at 1 and grows by one with every write.
    pub revision: u64,
    /// Unix times in milliseconds.
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub data: T,
}

impl<T> Doc<T> {
    /// The same metadata with the value changed by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Doc<U> {
        Doc {
            id: self.id,
            revision: self.revision,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            data: f(self.data),
        }
    }
}

impl<T: DeserializeOwned> Doc<T> {
    fn from_raw(collection: &str, raw: raw::Document) -> Result<Self> {
        let data = serde_json::from_str(&raw.data).map_err(|e| {
            Error::new(
                500,
                "document_type_mismatch",
                format!(
                    "document '{}' in '{collection}' is not the expected type: {e}",
                    raw.id
                ),
            )
        })?;
        Ok(Self {
            id: raw.id,
            revision: raw.revision,
            created_at_ms: raw.created_at_ms,
            updated_at_ms: raw.updated_at_ms,
            data,
        })
    }
}

/// A named collection of documents of type `T`.
///
/// It is only a name and a type: making one costs nothing and touches no storage. Two
/// `Collection`s with the same name are the same collection.
pub struct Collection<T> {
    name: String,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Collection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Collection").field(&self.name).finish()
    }
}

impl<T> Clone for Collection<T> {
    fn clone(&self) -> Self {
        Self::new(self.name.clone())
    }
}

impl<T> Collection<T> {
    /// The collection `name` (letters, digits, `_` and `-`).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            _type: PhantomData,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Removes the document `id`; true when there was one. With `expected_revision`, a 409 when
    /// the stored revision differs (or the document is gone).
    pub fn delete(&self, id: &str, expected_revision: Option<u64>) -> Result<bool> {
        Ok(raw::delete(&self.name, id, expected_revision)?)
    }

    /// How many documents match `filter` (`None`: all of them).
    ///
    /// ```no_run
    /// # use ucms_sdk::documents::{Collection, Filter};
    /// # fn main() -> ucms_sdk::Result<()> {
    /// let notes = Collection::<serde_json::Value>::new("notes");
    /// let all = notes.count(None)?;
    /// let tagged = notes.count(Filter::contains("tags", "rust"))?;
    /// # let _ = (all, tagged);
    /// # Ok(())
    /// # }
    /// ```
    pub fn count(&self, filter: impl Into<Option<Filter>>) -> Result<u64> {
        let filter = filter.into().map(|f| f.to_raw()).transpose()?;
        Ok(raw::count(&self.name, filter.as_ref())?)
    }

    /// Creates the index `name` over `fields` (in order) if it doesn't exist; an existing index
    /// of that name must match. With `unique`, two documents may not share the same values.
    /// Indexes are usually declared in the manifest instead.
    pub fn ensure_index(&self, name: &str, fields: &[&str], unique: bool) -> Result<()> {
        let index = raw::Index {
            name: name.to_string(),
            fields: fields.iter().map(|f| (*f).to_string()).collect(),
            unique,
        };
        Ok(raw::ensure_index(&self.name, &index)?)
    }

    /// Drops the index `name`; true when it existed.
    pub fn drop_index(&self, name: &str) -> Result<bool> {
        Ok(raw::drop_index(&self.name, name)?)
    }

    /// The collection's indexes.
    pub fn indexes(&self) -> Result<Vec<Index>> {
        Ok(raw::list_indexes(&self.name)?
            .into_iter()
            .map(|i| Index {
                name: i.name,
                fields: i.fields,
                unique: i.unique,
            })
            .collect())
    }

    /// Enables full-text search over `fields` with the stemming rules of `language` (`english`,
    /// `simple`, ...); changing them rebuilds the search index. Usually declared in the manifest.
    pub fn ensure_search(&self, fields: &[&str], language: &str) -> Result<()> {
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_string()).collect();
        Ok(raw::ensure_search(&self.name, &fields, language)?)
    }
}

impl<T: Serialize + DeserializeOwned> Collection<T> {
    /// Stores `value` under a generated id.
    pub fn insert(&self, value: &T) -> Result<Doc<T>> {
        let data = serde_json::to_string(value)?;
        Doc::from_raw(&self.name, raw::insert(&self.name, None, &data)?)
    }

    /// Stores `value` under `id`; a 409 `document_exists` when the id is taken.
    pub fn insert_with_id(&self, id: &str, value: &T) -> Result<Doc<T>> {
        let data = serde_json::to_string(value)?;
        Doc::from_raw(&self.name, raw::insert(&self.name, Some(id), &data)?)
    }

    /// The document `id`, if there is one.
    pub fn get(&self, id: &str) -> Result<Option<Doc<T>>> {
        raw::get(&self.name, id)?
            .map(|d| Doc::from_raw(&self.name, d))
            .transpose()
    }

    /// The documents with these ids, in the same order; `None` for an id that doesn't exist.
    pub fn get_many<I, S>(&self, ids: I) -> Result<Vec<Option<Doc<T>>>>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let ids: Vec<String> = ids.into_iter().map(Into::into).collect();
        raw::get_many(&self.name, &ids)?
            .into_iter()
            .map(|d| d.map(|d| Doc::from_raw(&self.name, d)).transpose())
            .collect()
    }

    /// Replaces the whole document `id` with `value`; a 404 when there is none. With
    /// `expected_revision`, a 409 when the stored revision differs.
    pub fn replace(&self, id: &str, value: &T, expected_revision: Option<u64>) -> Result<Doc<T>> {
        let data = serde_json::to_string(value)?;
        Doc::from_raw(
            &self.name,
            raw::replace(&self.name, id, &data, expected_revision)?,
        )
    }

    /// Applies a JSON merge patch (RFC 7386) to the document `id`: fields set to `null` are
    /// removed, objects merge, anything else replaces. With `expected_revision`, a 409 when the
    /// stored revision differs.
    ///
    /// ```no_run
    /// # use ucms_sdk::documents::Collection;
    /// # fn main() -> ucms_sdk::Result<()> {
    /// let notes = Collection::<serde_json::Value>::new("notes");
    /// notes.patch("n1", serde_json::json!({ "title": "New title", "draft": null }), None)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn patch(
        &self,
        id: &str,
        patch: serde_json::Value,
        expected_revision: Option<u64>,
    ) -> Result<Doc<T>> {
        let patch = serde_json::to_string(&patch)?;
        Doc::from_raw(
            &self.name,
            raw::patch(&self.name, id, &patch, expected_revision)?,
        )
    }

    /// Starts a query over the collection; see [`Query`].
    pub fn query(&self) -> Query<T> {
        Query {
            collection: self.name.clone(),
            _type: PhantomData,
            filter: None,
            sort: Vec::new(),
            limit: 0,
            offset: 0,
            cursor: None,
            fields: None,
            with_total: false,
        }
    }

    /// Starts a full-text search for `text` (words; phrases in double quotes; `-word` to exclude)
    /// over the fields declared for the collection; see [`Search`].
    pub fn search(&self, text: impl Into<String>) -> Search<T> {
        Search {
            collection: self.name.clone(),
            _type: PhantomData,
            text: text.into(),
            filter: None,
            limit: 0,
            offset: 0,
            fields: None,
            with_total: false,
        }
    }
}

/// An index of a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    pub fields: Vec<String>,
    pub unique: bool,
}

/// A query under construction; [`Query::fetch`] runs it.
///
/// ```no_run
/// # use ucms_sdk::documents::{Collection, Filter};
/// # fn main() -> ucms_sdk::Result<()> {
/// let notes = Collection::<serde_json::Value>::new("notes");
/// let page = notes
///     .query()
///     .filter(Filter::starts_with("slug", "2024-"))
///     .sort("title")
///     .limit(50)
///     .fetch()?;
/// # let _ = page;
/// # Ok(())
/// # }
/// ```
#[must_use = "a query does nothing until fetched"]
pub struct Query<T> {
    collection: String,
    _type: PhantomData<fn() -> T>,
    filter: Option<Filter>,
    sort: Vec<(String, bool)>,
    limit: u32,
    offset: u32,
    cursor: Option<String>,
    fields: Option<Vec<String>>,
    with_total: bool,
}

impl<T> std::fmt::Debug for Query<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("collection", &self.collection)
            .field("filter", &self.filter)
            .field("sort", &self.sort)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("cursor", &self.cursor)
            .field("fields", &self.fields)
            .field("with_total", &self.with_total)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Query<T> {
    /// Only documents matching `filter`; a second call combines both with AND.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(match self.filter.take() {
            None => filter,
            Some(previous) => previous.and(filter),
        });
        self
    }

    /// Sorts by `path`, ascending; further sort keys break ties, and the id breaks the last ones.
    pub fn sort(self, path: impl Into<String>) -> Self {
        self.sort_by(path, false)
    }

    /// Sorts by `path`, descending.
    pub fn sort_desc(self, path: impl Into<String>) -> Self {
        self.sort_by(path, true)
    }

    /// Sorts by `path`, descending or not.
    pub fn sort_by(mut self, path: impl Into<String>, descending: bool) -> Self {
        self.sort.push((path.into(), descending));
        self
    }

    /// At most `limit` documents (the host caps it at 1000; 0 means its default, 25).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Skips the first `offset` matches. Prefer [`Query::after`] for paging deep.
    pub fn offset(mut self, offset: u32) -> Self {
        self.offset = offset;
        self
    }

    /// Continues after the page whose [`Page::next_cursor`] this is (keyset pagination). The
    /// query must otherwise be the same as the one that produced the cursor.
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Returns only these paths of each document. `T` must then accept the partial documents
    /// (`#[serde(default)]`), or fetch with [`Query::fetch_as`] into another type.
    pub fn fields<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fields = Some(fields.into_iter().map(Into::into).collect());
        self
    }

    /// Also counts every match into [`Page::total`] (costs a second query).
    pub fn with_total(mut self) -> Self {
        self.with_total = true;
        self
    }

    /// Runs the query.
    pub fn fetch(self) -> Result<Page<T>> {
        self.fetch_as()
    }

    /// Runs the query, reading the documents as `U` (for projections with [`Query::fields`]).
    pub fn fetch_as<U: DeserializeOwned>(self) -> Result<Page<U>> {
        let query = RawQuery {
            filter: self.filter.map(|f| f.to_raw()).transpose()?,
            sort: self
                .sort
                .into_iter()
                .map(|(path, descending)| raw::SortKey { path, descending })
                .collect(),
            limit: self.limit,
            offset: self.offset,
            cursor: self.cursor,
            fields: self.fields,
            with_total: self.with_total,
        };
        let name = &self.collection;
        let page = raw::query(name, &query)?;
        Ok(Page {
            documents: page
                .documents
                .into_iter()
                .map(|d| Doc::from_raw(name, d))
                .collect::<Result<_>>()?,
            next_cursor: page.next_cursor,
            total: page.total,
        })
    }

    /// The first match, if any.
    pub fn first(self) -> Result<Option<Doc<T>>> {
        Ok(self.limit(1).fetch()?.documents.into_iter().next())
    }
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T = serde_json::Value> {
    pub documents: Vec<Doc<T>>,
    /// Pass to [`Query::after`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// Every match, when the query asked [`Query::with_total`].
    pub total: Option<u64>,
}

impl<T> IntoIterator for Page<T> {
    type Item = Doc<T>;
    type IntoIter = std::vec::IntoIter<Doc<T>>;

    fn into_iter(self) -> Self::IntoIter {
        self.documents.into_iter()
    }
}

/// A full-text search under construction; [`Search::fetch`] runs it. Results come best first.
///
/// ```no_run
/// # use ucms_sdk::documents::{Collection, Filter};
/// # fn main() -> ucms_sdk::Result<()> {
/// let notes = Collection::<serde_json::Value>::new("notes");
/// let results = notes
///     .search("\"release notes\" -draft")
///     .filter(Filter::contains("tags", "rust"))
///     .limit(10)
///     .fetch()?;
/// for hit in results.hits {
///     println!("{:.2} {}", hit.score, hit.doc.id);
/// }
/// # Ok(())
/// # }
/// ```
#[must_use = "a search does nothing until fetched"]
pub struct Search<T> {
    collection: String,
    _type: PhantomData<fn() -> T>,
    text: String,
    filter: Option<Filter>,
    limit: u32,
    offset: u32,
    fields: Option<Vec<String>>,
    with_total: bool,
}

impl<T> std::fmt::Debug for Search<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Search")
            .field("collection", &self.collection)
            .field("text", &self.text)
            .field("filter", &self.filter)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("fields", &self.fields)
            .field("with_total", &self.with_total)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Search<T> {
    /// Also counts every match (`SearchPage::total`), at the cost of a second query.
    pub fn with_total(mut self) -> Self {
        self.with_total = true;
        self
    }

    /// Only documents matching `filter`; a second call combines both with AND.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(match self.filter.take() {
            None => filter,
            Some(previous) => previous.and(filter),
        });
        self
    }

    /// At most `limit` hits (0 means the host's default).
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Skips the first `offset` hits.
    pub fn offset(mut self, offset: u32) -> Self {
        self.offset = offset;
        self
    }

    /// Returns only these paths of each document; see [`Query::fields`].
    pub fn fields<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fields = Some(fields.into_iter().map(Into::into).collect());
        self
    }

    /// Runs the search.
    pub fn fetch(self) -> Result<SearchPage<T>> {
        self.fetch_as()
    }

    /// Runs the search, reading the documents as `U`.
    pub fn fetch_as<U: DeserializeOwned>(self) -> Result<SearchPage<U>> {
        let query = raw::SearchQuery {
            text: self.text,
            filter: self.filter.map(|f| f.to_raw()).transpose()?,
            limit: self.limit,
            offset: self.offset,
            fields: self.fields,
            with_total: self.with_total,
        };
        let name = &self.collection;
        let page = raw::search(name, &query)?;
        Ok(SearchPage {
            hits: page
                .hits
                .into_iter()
                .map(|h| {
                    Ok(Hit {
                        doc: Doc::from_raw(name, h.document)?,
                        score: h.score,
                    })
                })
                .collect::<Result<_>>()?,
            total: page.total,
        })
    }
}

/// One page of search results, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPage<T = serde_json::Value> {
    pub hits: Vec<Hit<T>>,
    /// Every match, when the store counts them.
    pub total: Option<u64>,
}

/// A search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit<T = serde_json::Value> {
    pub doc: Doc<T>,
    /// Higher is more relevant.
    pub score: f64,
}

/// A filter over documents: comparisons of the values at paths, combined with and/or/not.
///
/// ```
/// use ucms_sdk::documents::Filter;
///
/// let recent_by_ada = Filter::eq("author.name", "Ada")
///     .and(Filter::gte("_updated", 1_700_000_000_000_i64))
///     .and(Filter::is_in("status", ["published", "review"]).or(Filter::exists("pinned")));
/// let not_drafts = Filter::not(Filter::eq("draft", true));
/// let either = Filter::any([recent_by_ada, not_drafts]);
/// # let _ = either;
/// ```
///
/// Values are anything serde serializes (`&str`, numbers, `bool`, `Option`, your own types);
/// they are compared as JSON. The module-level [`and`], [`or`] and [`not`] are the same as
/// [`Filter::all`], [`Filter::any`] and [`Filter::not`].
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    node: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Compare {
        op: Op,
        path: String,
        /// JSON text, or why the value could not be serialized (reported when the filter is used).
        value: std::result::Result<String, String>,
    },
    Exists(String),
    IsNull(String),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    NotIn,
    Contains,
    StartsWith,
}

fn json<V: Serialize>(value: V) -> std::result::Result<String, String> {
    serde_json::to_string(&value).map_err(|e| e.to_string())
}

impl Filter {
    fn compare(
        op: Op,
        path: impl Into<String>,
        value: std::result::Result<String, String>,
    ) -> Self {
        Self {
            node: Node::Compare {
                op,
                path: path.into(),
                value,
            },
        }
    }

    /// The value at `path` equals `value`.
    pub fn eq(path: impl Into<String>, value: impl Serialize) -> Self {
        Self::compare(Op::Eq, path, json(value))
    }

    /// The value at `path` differs from `value`.
    pub fn ne(path: impl Into<String>, value: impl Serialize) -> Self {
        Self::compare(Op::Ne, path, json(value))
    }

    pub fn lt(path: impl Into<String>, value: impl Serialize) -> Self {
        Self::compare(Op::Lt, path, json(value))
    }

    pub fn lte(path: impl Into<String>, value: impl Serialize) -> Self {
        Self::compare(Op::Lte, path, json(value))
    }

    pub fn gt(path: impl Into<String>, value: impl Serialize) -> Self {
        Self::compare(Op::Gt, path, json(value))
    }

    pub fn gte(path: impl Into<String>, value: impl Serialize) -> Self {
        Self::compare(Op::Gte, path, json(value))
    }

    /// The value at `path` is one of `values`.
    pub fn is_in<V: Serialize>(
        path: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        Self::compare(Op::In, path, json_list(values))
    }

    /// The value at `path` is none of `values`.
    pub fn not_in<V: Serialize>(
        path: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        Self::compare(Op::NotIn, path, json_list(values))
    }

    /// The string at `path` contains `value` as a substring, or the array at `path` contains
    /// `value` as an element.
    pub fn contains(path: impl Into<String>, value: impl Serialize) -> Self {
        Self::compare(Op::Contains, path, json(value))
    }

    /// The string at `path` starts with `prefix`.
    pub fn starts_with(path: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self::compare(Op::StartsWith, path, json(prefix.into()))
    }

    /// `path` is present (even when null).
    pub fn exists(path: impl Into<String>) -> Self {
        Self {
            node: Node::Exists(path.into()),
        }
    }

    /// `path` is present and null.
    pub fn is_null(path: impl Into<String>) -> Self {
        Self {
            node: Node::IsNull(path.into()),
        }
    }

    /// Every one of `filters` matches.
    pub fn all(filters: impl IntoIterator<Item = Filter>) -> Self {
        let mut children = Vec::new();
        for f in filters {
            match f.node {
                Node::And(grandchildren) => children.extend(grandchildren),
                other => children.push(other),
            }
        }
        Self {
            node: Node::And(children),
        }
    }

    /// At least one of `filters` matches.
    pub fn any(filters: impl IntoIterator<Item = Filter>) -> Self {
        let mut children = Vec::new();
        for f in filters {
            match f.node {
                Node::Or(grandchildren) => children.extend(grandchildren),
                other => children.push(other),
            }
        }
        Self {
            node: Node::Or(children),
        }
    }

    /// `filter` does not match.
    #[allow(clippy::should_implement_trait)]
    pub fn not(filter: Filter) -> Self {
        match filter.node {
            Node::Not(inner) => Self { node: *inner },
            node => Self {
                node: Node::Not(Box::new(node)),
            },
        }
    }

    /// This filter and `other` both match.
    pub fn and(self, other: Filter) -> Self {
        Self::all([self, other])
    }

    /// This filter or `other` matches.
    pub fn or(self, other: Filter) -> Self {
        Self::any([self, other])
    }

    /// The flattened form the host takes: children before their parents, the root last.
    pub(crate) fn to_raw(&self) -> Result<raw::Filter> {
        let mut nodes = Vec::new();
        let root = flatten(&self.node, &mut nodes)?;
        Ok(raw::Filter { nodes, root })
    }
}

impl std::ops::Not for Filter {
    type Output = Filter;

    fn not(self) -> Filter {
        Filter::not(self)
    }
}

impl std::ops::BitAnd for Filter {
    type Output = Filter;

    fn bitand(self, other: Filter) -> Filter {
        self.and(other)
    }
}

impl std::ops::BitOr for Filter {
    type Output = Filter;

    fn bitor(self, other: Filter) -> Filter {
        self.or(other)
    }
}

/// Every one of `filters` matches; the same as [`Filter::all`].
pub fn and(filters: impl IntoIterator<Item = Filter>) -> Filter {
    Filter::all(filters)
}

/// At least one of `filters` matches; the same as [`Filter::any`].
pub fn or(filters: impl IntoIterator<Item = Filter>) -> Filter {
    Filter::any(filters)
}

/// `filter` does not match; the same as [`Filter::not`].
pub fn not(filter: Filter) -> Filter {
    Filter::not(filter)
}

fn json_list<V: Serialize>(
    values: impl IntoIterator<Item = V>,
) -> std::result::Result<String, String> {
    let values = values
        .into_iter()
        .map(serde_json::to_value)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    json(values)
}

fn flatten(node: &Node, out: &mut Vec<raw::FilterNode>) -> Result<u32> {
    let flat = match node {
        Node::Compare { op, path, value } => {
            let value = value.clone().map_err(|e| {
                Error::internal(format!(
                    "the filter value for '{path}' could not be serialized: {e}"
                ))
            })?;
            let c = raw::Comparison {
                path: path.clone(),
                value,
            };
            match op {
                Op::Eq => raw::FilterNode::Eq(c),
                Op::Ne => raw::FilterNode::Ne(c),
                Op::Lt => raw::FilterNode::Lt(c),
                Op::Lte => raw::FilterNode::Lte(c),
                Op::Gt => raw::FilterNode::Gt(c),
                Op::Gte => raw::FilterNode::Gte(c),
                Op::In => raw::FilterNode::InList(c),
                Op::NotIn => raw::FilterNode::NotIn(c),
                Op::Contains => raw::FilterNode::Contains(c),
                Op::StartsWith => raw::FilterNode::StartsWith(c),
            }
        }
        Node::Exists(path) => raw::FilterNode::Exists(path.clone()),
        Node::IsNull(path) => raw::FilterNode::IsNull(path.clone()),
        Node::And(children) => raw::FilterNode::And(
            children
                .iter()
                .map(|c| flatten(c, out))
                .collect::<Result<_>>()?,
        ),
        Node::Or(children) => raw::FilterNode::Or(
            children
                .iter()
                .map(|c| flatten(c, out))
                .collect::<Result<_>>()?,
        ),
        Node::Not(child) => raw::FilterNode::Not(flatten(child, out)?),
    };
    out.push(flat);
    Ok(u32::try_from(out.len() - 1).unwrap_or(u32::MAX))
}

/// Several writes, and the events they cause, applied in one transaction: all or nothing.
///
/// The events are published as [`crate::events::publish`] would (so the manifest must grant
/// their topics), and exist if and only if the writes were committed.
///
/// ```no_run
/// use serde::{Deserialize, Serialize};
/// use ucms_sdk::documents::{Batch, Collection};
///
/// #[derive(Serialize, Deserialize)]
/// struct Order { total_cents: u64 }
/// #[derive(Serialize, Deserialize)]
/// struct Stock { left: u32 }
///
/// # fn main() -> ucms_sdk::Result<()> {
/// let orders = Collection::<Order>::new("orders");
/// let stock = Collection::<Stock>::new("stock");
/// let results = Batch::new()
///     .insert(&orders, &Order { total_cents: 4200 })
///     .patch(&stock, "sku-1", serde_json::json!({ "left": 4 }), Some(7))
///     .publish("orders.placed", Some("sku-1"), &serde_json::json!({ "total_cents": 4200 }))
///     .commit()?;
/// let order_id = &results[0].doc().expect("an insert writes a document").id;
/// # let _ = order_id;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
#[must_use = "a batch does nothing until committed"]
pub struct Batch {
    writes: Vec<raw::Write>,
    events: Vec<raw::EventOut>,
    /// The first value that failed to serialize, reported by `commit`.
    error: Option<Error>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    fn data<V: Serialize + ?Sized>(&mut self, value: &V) -> String {
        match serde_json::to_string(value) {
            Ok(data) => data,
            Err(e) => {
                self.error.get_or_insert_with(|| Error::from(e));
                String::new()
            }
        }
    }

    /// Inserts `value` under a generated id.
    pub fn insert<T: Serialize>(mut self, collection: &Collection<T>, value: &T) -> Self {
        let data = self.data(value);
        self.writes.push(raw::Write::Insert(raw::InsertOp {
            collection: collection.name.clone(),
            id: None,
            data,
        }));
        self
    }

    /// Inserts `value` under `id`.
    pub fn insert_with_id<T: Serialize>(
        mut self,
        collection: &Collection<T>,
        id: &str,
        value: &T,
    ) -> Self {
        let data = self.data(value);
        self.writes.push(raw::Write::Insert(raw::InsertOp {
            collection: collection.name.clone(),
            id: Some(id.to_string()),
            data,
        }));
        self
    }

    /// Replaces the document `id` with `value`.
    pub fn replace<T: Serialize>(
        mut self,
        collection: &Collection<T>,
        id: &str,
        value: &T,
        expected_revision: Option<u64>,
    ) -> Self {
        let data = self.data(value);
        self.writes.push(raw::Write::Replace(raw::ReplaceOp {
            collection: collection.name.clone(),
            id: id.to_string(),
            data,
            expected_revision,
        }));
        self
    }

    /// Applies a JSON merge patch to the document `id`.
    pub fn patch<T>(
        mut self,
        collection: &Collection<T>,
        id: &str,
        patch: serde_json::Value,
        expected_revision: Option<u64>,
    ) -> Self {
        let data = self.data(&patch);
        self.writes.push(raw::Write::Patch(raw::ReplaceOp {
            collection: collection.name.clone(),
            id: id.to_string(),
            data,
            expected_revision,
        }));
        self
    }

    /// Deletes the document `id`.
    pub fn delete<T>(
        mut self,
        collection: &Collection<T>,
        id: &str,
        expected_revision: Option<u64>,
    ) -> Self {
        self.writes.push(raw::Write::Delete(raw::DeleteOp {
            collection: collection.name.clone(),
            id: id.to_string(),
            expected_revision,
        }));
        self
    }

    /// Publishes `payload` as JSON on `topic` (with an ordering `key`) if the batch commits.
    pub fn publish<P: Serialize + ?Sized>(
        mut self,
        topic: &str,
        key: Option<&str>,
        payload: &P,
    ) -> Self {
        let payload = self.data(payload).into_bytes();
        self.events.push(raw::EventOut {
            topic: topic.to_string(),
            key: key.map(str::to_string),
            payload,
        });
        self
    }

    /// Publishes raw bytes on `topic` if the batch commits.
    pub fn publish_raw(mut self, topic: &str, key: Option<&str>, payload: &[u8]) -> Self {
        self.events.push(raw::EventOut {
            topic: topic.to_string(),
            key: key.map(str::to_string),
            payload: payload.to_vec(),
        });
        self
    }

    /// How many writes the batch holds.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.events.is_empty()
    }

    /// Applies every write and publishes every event in one transaction, and returns one result
    /// per write, in order. If any write fails nothing is applied, and the error says which
    /// write and why, with the status that write alone would have had.
    pub fn commit(self) -> Result<Vec<WriteResult>> {
        if let Some(error) = self.error {
            return Err(error);
        }
        raw::batch(&self.writes, &self.events)?
            .into_iter()
            .zip(&self.writes)
            .map(|(result, write)| match result {
                raw::WriteResult::Written(doc) => {
                    let collection = match write {
                        raw::Write::Insert(op) => &op.collection,
                        raw::Write::Replace(op) | raw::Write::Patch(op) => &op.collection,
                        raw::Write::Delete(op) => &op.collection,
                    };
                    Ok(WriteResult::Written(Doc::from_raw(collection, doc)?))
                }
                raw::WriteResult::Deleted(deleted) => Ok(WriteResult::Deleted(deleted)),
            })
            .collect()
    }
}

/// What one write of a [`Batch`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteResult {
    /// An insert, replace or patch stored this document.
    Written(Doc<serde_json::Value>),
    /// A delete; whether a document was deleted.
    Deleted(bool),
}

impl WriteResult {
    /// The document written, if this was an insert, replace or patch.
    pub fn doc(&self) -> Option<&Doc<serde_json::Value>> {
        match self {
            Self::Written(doc) => Some(doc),
            Self::Deleted(_) => None,
        }
    }

    /// The document written, as `T`.
    pub fn into_doc<T: DeserializeOwned>(self) -> Result<Option<Doc<T>>> {
        let Self::Written(doc) = self else {
            return Ok(None);
        };
        let data = serde_json::from_value(doc.data).map_err(|e| {
            Error::new(
                500,
                "document_type_mismatch",
                format!("document '{}' is not the expected type: {e}", doc.id),
            )
        })?;
        Ok(Some(Doc {
            id: doc.id,
            revision: doc.revision,
            created_at_ms: doc.created_at_ms,
            updated_at_ms: doc.updated_at_ms,
            data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(filter: &Filter) -> (Vec<String>, u32) {
        let raw = filter.to_raw().unwrap();
        let nodes = raw
            .nodes
            .iter()
            .map(|n| match n {
                raw::FilterNode::Eq(c) => format!("eq {} {}", c.path, c.value),
                raw::FilterNode::InList(c) => format!("in {} {}", c.path, c.value),
                raw::FilterNode::Exists(p) => format!("exists {p}"),
                raw::FilterNode::And(c) => format!("and {c:?}"),
                raw::FilterNode::Or(c) => format!("or {c:?}"),
                raw::FilterNode::Not(c) => format!("not {c}"),
                other => format!("{other:?}"),
            })
            .collect();
        (nodes, raw.root)
    }

    #[test]
    fn filters_flatten_children_first_root_last() {
        let filter = Filter::eq("author.name", "Ada")
            .and(Filter::is_in("status", ["a", "b"]).or(!Filter::exists("x")));
        let (nodes, root) = shape(&filter);
        assert_eq!(
            nodes,
            [
                "eq author.name \"Ada\"",
                "in status [\"a\",\"b\"]",
                "exists x",
                "not 2",
                "or [1, 3]",
                "and [0, 4]",
            ]
        );
        assert_eq!(root, 5);
    }

    #[test]
    fn nested_ands_merge_and_double_negation_cancels() {
        let a = Filter::eq("a", 1);
        let filter = a.clone().and(Filter::eq("b", 2)).and(Filter::eq("c", 3));
        assert_eq!(shape(&filter).0.last().unwrap(), "and [0, 1, 2]");
        assert_eq!(Filter::not(Filter::not(a.clone())), a);
    }

    #[test]
    fn a_single_comparison_is_its_own_root() {
        assert_eq!(shape(&Filter::eq("n", 1.5)), (vec!["eq n 1.5".into()], 0));
    }
}
