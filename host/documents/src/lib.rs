//! The UCMS document store: JSON documents in named collections, scoped to a plugin, on SQLite or
//! PostgreSQL. It is the storage engine behind the plugin-facing `documents` capability and knows
//! nothing of WebAssembly.
//!
//! [`Documents`] is the whole API: reads ([`get`](Documents::get), [`query`](Documents::query)
//! with a [`Filter`] tree, [`Sort`] keys and keyset cursors, [`search`](Documents::search)),
//! writes with optimistic concurrency (every document has a revision) and per-plugin
//! [`Quota`]s, [`batch`](Documents::batch)es that commit as one transaction together with the
//! host's own statements ([`AlsoInTx`]), and declared indexes ([`IndexSpec`]) and full-text search
//! ([`SearchSpec`]).
//!
//! Storage: a registry (`doc_collections`, `doc_indexes`, `doc_usage`; host migration 0004) and one
//! table per collection, `ucms_doc_<id>`, whose `data` column is SQLite JSONB or PostgreSQL
//! `jsonb`. Filters and sorts compile to SQL over *sort-key* expressions of each path (its JSON
//! type and value, see [`sql`](crate::sql) in the source), so a declared index is a real
//! expression index that the same queries use, and the semantics — typed comparisons, missing
//! fields, the order across types — are identical on both databases. [`reference`] states those
//! semantics in plain Rust; the property tests hold both backends to it. `docs/documents.md` is
//! the user-facing description.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use serde_json::json;
//! use ucms_documents::{Documents, Filter, Limits, Path, Query, Quota, Scope, Sort};
//!
//! let db = ucms_db::Db::connect("sqlite::memory:", None).await.unwrap();
//! db.migrate(&sqlx::migrate!("../migrations/sqlite"), &sqlx::migrate!("../migrations/postgres"))
//!     .await
//!     .unwrap();
//! let docs = Documents::new(db, Limits::default());
//! let posts = Scope::new("blog", "posts");
//! docs.insert(posts, &Quota::UNLIMITED, Some("p1"), json!({"title": "Hello", "views": 3}))
//!     .await
//!     .unwrap();
//! let page = docs
//!     .query(posts, &Query {
//!         filter: Some(Filter::Gt(Path::parse("views")?, json!(1))),
//!         sort: vec![Sort::desc(Path::parse("views")?)],
//!         limit: 25,
//!         ..Query::default()
//!     })
//!     .await
//!     .unwrap();
//! assert_eq!(page.documents[0].id, "p1");
//! # Ok::<(), ucms_documents::DocError>(())
//! # }).unwrap();
//! ```

mod cursor;
mod error;
mod exec;
mod fts;
mod model;
mod path;
pub mod reference;
mod sql;
mod store;
mod validate;

pub use error::DocError;
pub use fts::LANGUAGES;
pub use model::{
    AlsoInTx, BoxFuture, Document, Filter, IndexSpec, Limits, Page, Query, Quota, Scope, Search,
    SearchPage, SearchSpec, Sort, Usage, WriteOp, WriteResult,
};
pub use path::{MAX_PATH_DEPTH, MAX_SEGMENT_BYTES, Path, Pseudo, Segment};
pub use store::Documents;
