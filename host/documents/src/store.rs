//! [`Documents`]: collections, their tables and indexes, reads and transactional writes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{Postgres, Sqlite};
use ucms_db::Db;

use crate::cursor::{self, Position};
use crate::error::{Fail, Result, unavailable};
use crate::exec::Conn;
use crate::path::Pseudo;
use crate::reference::{merge_patch, project};
use crate::sql::{self, Bind, Dialect, Key, Sql};
use crate::{
    AlsoInTx, DocError, Document, Filter, IndexSpec, Limits, Page, Path, Query, Quota, Scope,
    Search, SearchPage, SearchSpec, Sort, Usage, WriteOp, WriteResult, fts, validate,
};

/// How long a node trusts its cached description of a collection (its indexes, for the
/// `indexed` label). Correctness never depends on it: a dropped table is noticed and reloaded.
const CACHE_TTL: Duration = Duration::from_secs(10);

/// The document store. Cheap to clone; clones share one cache.
#[derive(Clone)]
pub struct Documents {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents")
            .field("backend", &self.inner.db.backend_name())
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

/// (plugin, collection) → what we know of it, and since when.
type Cache = HashMap<(String, String), (Arc<Collection>, Instant)>;

struct Inner {
    db: Db,
    limits: Limits,
    cache: Mutex<Cache>,
}

/// What we know of a collection.
#[derive(Debug)]
pub(crate) struct Collection {
    id: i64,
    name: String,
    table: String,
    indexes: Vec<Index>,
    search: Option<SearchSpec>,
}

#[derive(Debug, Clone)]
struct Index {
    spec: IndexSpec,
    number: i64,
}

/// A read connection.
enum Pooled {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Pooled {
    fn conn(&mut self) -> Conn<'_> {
        match self {
            Self::Sqlite(c) => Conn::Sqlite(c),
            Self::Postgres(c) => Conn::Postgres(c),
        }
    }
}

/// The change an operation makes to its plugin's usage.
#[derive(Debug, Default, Clone, Copy)]
struct Delta {
    documents: i64,
    bytes: i64,
}

impl Delta {
    fn add(&mut self, other: Delta) {
        self.documents += other.documents;
        self.bytes += other.bytes;
    }
}

fn doc_columns(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "id, revision, created_at, updated_at, json(data)",
        Dialect::Postgres => "id, revision, created_at, updated_at, data::text",
    }
}

fn json_param(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("jsonb(${n})"),
        Dialect::Postgres => format!("${n}::jsonb"),
    }
}

type DocRow = (String, i64, i64, i64, String);

fn to_document(row: DocRow) -> Result<Document> {
    let (id, revision, created_at_ms, updated_at_ms, data) = row;
    let data = serde_json::from_str(&data).map_err(|e| {
        tracing::error!(error = %e, id, "documents: a stored document is not valid JSON");
        DocError::Unavailable("a stored document could not be read".into())
    })?;
    Ok(Document {
        id,
        revision: revision as u64,
        data,
        created_at_ms,
        updated_at_ms,
    })
}

fn u64_of(n: i64) -> u64 {
    n.max(0) as u64
}

impl Documents {
    /// A store on `db`, whose schema must include the host migrations (`0004_documents`).
    pub fn new(db: Db, limits: Limits) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                limits,
                cache: Mutex::default(),
            }),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    async fn read(&self) -> Result<Pooled> {
        Ok(match &self.inner.db {
            Db::Sqlite { read, .. } => Pooled::Sqlite(read.acquire().await?),
            Db::Postgres(pool) => Pooled::Postgres(pool.acquire().await?),
        })
    }

    // ----- collections -------------------------------------------------------------------

    fn cached(&self, scope: Scope<'_>) -> Option<Arc<Collection>> {
        let cache = self.inner.cache.lock().expect("cache lock");
        cache
            .get(&(scope.plugin.to_owned(), scope.collection.to_owned()))
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(c, _)| c.clone())
    }

    fn remember(&self, plugin: &str, collection: Arc<Collection>) {
        let mut cache = self.inner.cache.lock().expect("cache lock");
        cache.insert(
            (plugin.to_owned(), collection.name.clone()),
            (collection, Instant::now()),
        );
    }

    fn forget(&self, scope: Scope<'_>) {
        let mut cache = self.inner.cache.lock().expect("cache lock");
        cache.remove(&(scope.plugin.to_owned(), scope.collection.to_owned()));
    }

    fn forget_plugin(&self, plugin: &str) {
        let mut cache = self.inner.cache.lock().expect("cache lock");
        cache.retain(|(p, _), _| p != plugin);
    }

    async fn load(&self, conn: &mut Conn<'_>, scope: Scope<'_>) -> Result<Option<Collection>> {
        let row: Option<(i64, Option<String>)> = conn
            .fetch_optional(
                "SELECT id, search FROM doc_collections WHERE plugin = $1 AND name = $2",
                &[
                    Bind::Text(scope.plugin.to_owned()),
                    Bind::Text(scope.collection.to_owned()),
                ],
            )
            .await?;
        let Some((id, search)) = row else {
            return Ok(None);
        };
        let rows: Vec<(String, i64, String, bool)> = conn
            .fetch_all(
                "SELECT name, number, fields, is_unique FROM doc_indexes WHERE collection = $1 ORDER BY name",
                &[Bind::Int(id)],
            )
            .await?;
        let corrupt = |what: &str| {
            tracing::error!(
                collection = id,
                "documents: unreadable {what} in the registry"
            );
            Fail::Doc(DocError::Unavailable(format!(
                "the collection's {what} could not be read"
            )))
        };
        let mut indexes = Vec::with_capacity(rows.len());
        for (name, number, fields, unique) in rows {
            let fields: Vec<Path> =
                serde_json::from_str(&fields).map_err(|_| corrupt("index list"))?;
            indexes.push(Index {
                spec: IndexSpec {
                    name,
                    fields,
                    unique,
                },
                number,
            });
        }
        let search = match search {
            Some(text) => {
                Some(serde_json::from_str(&text).map_err(|_| corrupt("search declaration"))?)
            }
            None => None,
        };
        Ok(Some(Collection {
            id,
            name: scope.collection.to_owned(),
            table: format!("ucms_doc_{id}"),
            indexes,
            search,
        }))
    }

    /// The collection of `scope`: from the cache unless `fresh`; created if missing and `create`.
    async fn collection(
        &self,
        scope: Scope<'_>,
        create: bool,
        fresh: bool,
    ) -> Result<Option<Arc<Collection>>> {
        if !fresh && let Some(c) = self.cached(scope) {
            return Ok(Some(c));
        }
        let loaded = {
            let mut read = self.read().await?;
            self.load(&mut read.conn(), scope).await?
        };
        let loaded = match loaded {
            Some(c) => Some(c),
            None if create => Some(self.create_collection(scope).await?),
            None => None,
        };
        Ok(loaded.map(|c| {
            let c = Arc::new(c);
            self.remember(scope.plugin, c.clone());
            c
        }))
    }

    async fn create_collection(&self, scope: Scope<'_>) -> Result<Collection> {
        let mut tx = self.inner.db.begin().await?;
        let mut conn = Conn::of(&mut tx);
        let dialect = conn.dialect();
        let (count,): (i64,) = conn
            .fetch_one(
                "SELECT count(*) FROM doc_collections WHERE plugin = $1",
                &[Bind::Text(scope.plugin.to_owned())],
            )
            .await?;
        let created: Option<(i64,)> = conn
            .fetch_optional(
                "INSERT INTO doc_collections (plugin, name, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (plugin, name) DO NOTHING RETURNING id",
                &[
                    Bind::Text(scope.plugin.to_owned()),
                    Bind::Text(scope.collection.to_owned()),
                    Bind::Int(ucms_db::now_ms()),
                ],
            )
            .await?;
        if let Some((id,)) = created {
            let max = self.inner.limits.max_collections_per_plugin;
            if count as usize >= max {
                return Err(DocError::QuotaExceeded(format!(
                    "plugin `{}` already has {count} collections, the most it may have ({max}); drop one it no longer needs",
                    scope.plugin
                ))
                .into());
            }
            let table = format!("ucms_doc_{id}");
            match dialect {
                Dialect::Sqlite => {
                    conn.ddl(&format!(
                        "CREATE TABLE {table} (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, \
                         revision INTEGER NOT NULL, size INTEGER NOT NULL, created_at INTEGER NOT NULL, \
                         updated_at INTEGER NOT NULL, data BLOB NOT NULL)"
                    ))
                    .await?;
                }
                Dialect::Postgres => {
                    conn.ddl(&format!(
                        "CREATE TABLE {table} (id TEXT COLLATE \"C\" PRIMARY KEY, revision BIGINT NOT NULL, \
                         size BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, \
                         data JSONB NOT NULL)"
                    ))
                    .await?;
                }
            }
            conn.ddl(&format!(
                "CREATE INDEX {table}_created ON {table} (created_at, id)"
            ))
            .await?;
        }
        tx.commit().await?;
        // Created here or by someone else just now: read it back either way.
        let mut read = self.read().await?;
        self.load(&mut read.conn(), scope).await?.ok_or_else(|| {
            Fail::Doc(DocError::Unavailable(
                "the collection was dropped while it was being created".into(),
            ))
        })
    }

    /// Runs `f` with the collection of `scope`; if its table turned out to be gone (dropped by
    /// another node or instance), reloads it and runs `f` once more.
    async fn with_collection<T, F, Fut>(
        &self,
        scope: Scope<'_>,
        create: bool,
        f: F,
    ) -> std::result::Result<T, DocError>
    where
        F: Fn(Option<Arc<Collection>>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        for attempt in 0..2 {
            let step = async {
                let collection = self.collection(scope, create, attempt > 0).await?;
                f(collection).await
            };
            match step.await {
                Ok(v) => return Ok(v),
                Err(Fail::Doc(e)) => return Err(e),
                Err(Fail::Stale) => self.forget(scope),
            }
        }
        Err(DocError::Unavailable(
            "the collection was dropped during the request".into(),
        ))
    }

    // ----- reads -------------------------------------------------------------------------

    /// The document `id`, or `None`.
    pub async fn get(
        &self,
        scope: Scope<'_>,
        id: &str,
    ) -> std::result::Result<Option<Document>, DocError> {
        self.check_scope(scope)?;
        validate::id(&self.inner.limits, id)?;
        self.with_collection(scope, false, |c| async move {
            let Some(c) = c else { return Ok(None) };
            let mut read = self.read().await?;
            let mut conn = read.conn();
            let sql = format!(
                "SELECT {} FROM {} WHERE id = $1",
                doc_columns(conn.dialect()),
                c.table
            );
            let row: Option<DocRow> = conn
                .fetch_optional(&sql, &[Bind::Text(id.to_owned())])
                .await?;
            row.map(to_document).transpose()
        })
        .await
    }

    /// The documents `ids`, in the same order (`None` where there is none).
    pub async fn get_many(
        &self,
        scope: Scope<'_>,
        ids: &[String],
    ) -> std::result::Result<Vec<Option<Document>>, DocError> {
        self.check_scope(scope)?;
        let limits = &self.inner.limits;
        if ids.len() > limits.max_get_many {
            return Err(DocError::invalid(format!(
                "get-many takes at most {} ids; split the request",
                limits.max_get_many
            )));
        }
        for id in ids {
            validate::id(limits, id)?;
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.with_collection(scope, false, |c| async move {
            let Some(c) = c else {
                return Ok(vec![None; ids.len()]);
            };
            let mut read = self.read().await?;
            let mut conn = read.conn();
            let list = match conn.dialect() {
                Dialect::Sqlite => "SELECT value FROM json_each($1)",
                Dialect::Postgres => "SELECT jsonb_array_elements_text($1::jsonb)",
            };
            let sql = format!(
                "SELECT {} FROM {} WHERE id IN ({list})",
                doc_columns(conn.dialect()),
                c.table
            );
            let json = serde_json::to_string(ids).expect("strings encode");
            let rows: Vec<DocRow> = conn.fetch_all(&sql, &[Bind::Text(json)]).await?;
            let mut found: HashMap<String, Document> = HashMap::with_capacity(rows.len());
            for row in rows {
                let doc = to_document(row)?;
                found.insert(doc.id.clone(), doc);
            }
            Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
        })
        .await
    }

    /// How many documents match `filter` (all of them without one).
    pub async fn count(
        &self,
        scope: Scope<'_>,
        filter: Option<&Filter>,
    ) -> std::result::Result<u64, DocError> {
        self.check_scope(scope)?;
        if let Some(f) = filter {
            validate::filter(&self.inner.limits, f)?;
        }
        self.with_collection(scope, false, |c| async move {
            let Some(c) = c else { return Ok(0) };
            let mut read = self.read().await?;
            let mut conn = read.conn();
            let mut sql = conn.sql();
            self.count_sql(&mut sql, &c, filter);
            let (n,): (i64,) = conn.fetch_one(&sql.text, &sql.binds).await?;
            Ok(u64_of(n))
        })
        .await
    }

    fn count_sql(&self, sql: &mut Sql, c: &Collection, filter: Option<&Filter>) {
        sql.push("SELECT count(*) FROM ").push(&c.table);
        if let Some(f) = filter {
            sql.push(" WHERE ");
            sql::filter(sql, f);
        }
    }

    fn check_query(&self, q: &Query) -> std::result::Result<Option<Position>, DocError> {
        let limits = &self.inner.limits;
        if q.limit > limits.max_page {
            return Err(DocError::invalid(format!(
                "limit {} is above the largest page, {}; page through with the cursor",
                q.limit, limits.max_page
            )));
        }
        if q.offset > limits.max_offset {
            return Err(DocError::invalid(format!(
                "offset {} is above {}; page through with the cursor instead",
                q.offset, limits.max_offset
            )));
        }
        if q.sort.len() > limits.max_sort_keys {
            return Err(DocError::invalid(format!(
                "a query sorts by at most {} keys",
                limits.max_sort_keys
            )));
        }
        if let Some(f) = &q.filter {
            validate::filter(limits, f)?;
        }
        if let Some(fields) = &q.fields {
            validate::fields(fields)?;
        }
        q.cursor
            .as_deref()
            .map(|c| cursor::decode(&q.sort, c))
            .transpose()
    }

    /// The SELECT of a page: `limit` rows (the caller asks one more to know if there is a next
    /// page) after `position`.
    fn page_sql(
        &self,
        dialect: Dialect,
        c: &Collection,
        q: &Query,
        position: Option<&Position>,
        limit: i64,
    ) -> Sql {
        let mut sql = Sql::new(dialect);
        sql.push("SELECT ")
            .push(doc_columns(dialect))
            .push(" FROM ")
            .push(&c.table);
        let mut conditions = 0;
        if let Some(f) = &q.filter {
            sql.push(" WHERE ");
            sql::filter(&mut sql, f);
            conditions += 1;
        }
        let pinned = sql::pinned_ranks(q.filter.as_ref());
        if let Some(p) = position {
            sql.push(if conditions > 0 { " AND " } else { " WHERE " });
            sql::after(&mut sql, &q.sort, &p.keys, &p.id, &pinned);
        }
        sql.push(" ORDER BY ")
            .push(&sql::order_by(dialect, &q.sort, &pinned));
        sql.push(" LIMIT ").bind(Bind::Int(limit));
        if q.offset > 0 {
            sql.push(" OFFSET ").bind(Bind::Int(i64::from(q.offset)));
        }
        sql
    }

    /// A page of documents.
    pub async fn query(&self, scope: Scope<'_>, q: &Query) -> std::result::Result<Page, DocError> {
        self.check_scope(scope)?;
        let position = self.check_query(q)?;
        let position = &position;
        self.with_collection(scope, false, |c| async move {
            let Some(c) = c else {
                return Ok(Page {
                    documents: Vec::new(),
                    next_cursor: None,
                    total: q.with_total.then_some(0),
                    indexed: false,
                });
            };
            let mut read = self.read().await?;
            let mut conn = read.conn();
            let mut documents = Vec::new();
            let mut next_cursor = None;
            if q.limit > 0 {
                let sql = self.page_sql(
                    conn.dialect(),
                    &c,
                    q,
                    position.as_ref(),
                    i64::from(q.limit) + 1,
                );
                let rows: Vec<DocRow> = conn.all(&sql).await?;
                let more = rows.len() > q.limit as usize;
                for row in rows.into_iter().take(q.limit as usize) {
                    documents.push(to_document(row)?);
                }
                if more && let Some(last) = documents.last() {
                    next_cursor = Some(cursor::encode(&q.sort, last));
                }
                if let Some(fields) = &q.fields {
                    for d in &mut documents {
                        d.data = project(&d.data, fields);
                    }
                }
            }
            let total = if q.with_total {
                let mut sql = conn.sql();
                self.count_sql(&mut sql, &c, q.filter.as_ref());
                let (n,): (i64,) = conn.fetch_one(&sql.text, &sql.binds).await?;
                Some(u64_of(n))
            } else {
                None
            };
            Ok(Page {
                documents,
                next_cursor,
                total,
                indexed: served_by_index(&c, q.filter.as_ref(), &q.sort),
            })
        })
        .await
    }

    /// The database's plan for `q` (SQLite `EXPLAIN QUERY PLAN`, PostgreSQL `EXPLAIN`), one step
    /// per line: for diagnostics and tests. Empty when the collection does not exist.
    pub async fn explain(
        &self,
        scope: Scope<'_>,
        q: &Query,
    ) -> std::result::Result<String, DocError> {
        self.check_scope(scope)?;
        let position = self.check_query(q)?;
        let position = &position;
        self.with_collection(scope, false, |c| async move {
            let Some(c) = c else { return Ok(String::new()) };
            let mut read = self.read().await?;
            let mut conn = read.conn();
            let mut sql = self.page_sql(
                conn.dialect(),
                &c,
                q,
                position.as_ref(),
                i64::from(q.limit.max(1)) + 1,
            );
            let lines: Vec<String> = match conn.dialect() {
                Dialect::Sqlite => {
                    // An EXPLAIN opens no transaction, so it never notices that this pooled
                    // connection's copy of the schema is out of date (an index created since):
                    // read something first, which reloads it. (Real queries reload it anyway.)
                    let _: Vec<(i64,)> = conn
                        .fetch_all("SELECT count(*) FROM sqlite_schema", &[])
                        .await?;
                    sql.text.insert_str(0, "EXPLAIN QUERY PLAN ");
                    let rows: Vec<(i64, i64, i64, String)> = conn.all(&sql).await?;
                    rows.into_iter().map(|r| r.3).collect()
                }
                Dialect::Postgres => {
                    sql.text.insert_str(0, "EXPLAIN ");
                    let rows: Vec<(String,)> = conn.all(&sql).await?;
                    rows.into_iter().map(|r| r.0).collect()
                }
            };
            Ok(lines.join("\n"))
        })
        .await
    }

    // ----- full-text search --------------------------------------------------------------

    /// Documents matching a full-text search, best first (ties by id). The collection must have
    /// a search declaration ([`Documents::ensure_search`]).
    pub async fn search(
        &self,
        scope: Scope<'_>,
        s: &Search,
    ) -> std::result::Result<SearchPage, DocError> {
        self.check_scope(scope)?;
        let limits = &self.inner.limits;
        if s.text.len() > limits.max_search_bytes {
            return Err(DocError::invalid(format!(
                "the search text is longer than {} bytes",
                limits.max_search_bytes
            )));
        }
        if s.limit > limits.max_page || s.offset > limits.max_offset {
            return Err(DocError::invalid(format!(
                "a search page has a limit up to {} and an offset up to {}",
                limits.max_page, limits.max_offset
            )));
        }
        if let Some(f) = &s.filter {
            validate::filter(limits, f)?;
        }
        if let Some(fields) = &s.fields {
            validate::fields(fields)?;
        }
        let parsed = fts::parse(&s.text);
        let parsed = &parsed;
        self.with_collection(scope, false, |_| async move {
            // Always the registry's current declaration: another node may have changed it.
            let c = {
                let mut read = self.read().await?;
                self.load(&mut read.conn(), scope).await?
            };
            let empty = SearchPage {
                hits: Vec::new(),
                total: s.with_total.then_some(0),
            };
            let Some(c) = c else { return Ok(empty) };
            let Some(spec) = &c.search else {
                return Err(DocError::invalid(format!(
                    "collection `{}` has no full-text search; declare it first with ensure-search (the fields to index and a language)",
                    c.name
                ))
                .into());
            };
            if parsed.is_empty() {
                return Ok(empty);
            }
            let mut read = self.read().await?;
            let mut conn = read.conn();
            let dialect = conn.dialect();
            let table = &c.table;
            let mut from = Sql::new(dialect);
            match dialect {
                Dialect::Sqlite => {
                    // CROSS JOIN keeps the full-text index as the outer loop. With a plain JOIN
                    // and a filter an index covers (`locale = …` in the content plugin), SQLite
                    // may scan that index and run the MATCH once per document instead: 150 µs a
                    // row, seconds for a few thousand documents.
                    from.push(&format!(
                        " FROM {table}_fts CROSS JOIN {table} ON {table}.seq = {table}_fts.rowid WHERE {table}_fts MATCH "
                    ))
                    .bind_text(&parsed.fts5());
                }
                Dialect::Postgres => {
                    from.push(&format!(" FROM {table}, (SELECT "));
                    parsed.tsquery(&mut from, &spec.language);
                    from.push(" AS q) AS s WHERE fts @@ q");
                }
            }
            if let Some(f) = &s.filter {
                from.push(" AND ");
                sql::filter(&mut from, f);
            }
            let mut hits = Vec::new();
            if s.limit > 0 {
                let score = match dialect {
                    Dialect::Sqlite => {
                        let weights: Vec<String> = (0..spec.fields.len())
                            .map(|i| format!("{:.1}", field_weight(i)))
                            .collect();
                        format!("-bm25({table}_fts, {})", weights.join(", "))
                    }
                    Dialect::Postgres => "ts_rank_cd(fts, q)::float8".to_owned(),
                };
                let columns = match dialect {
                    Dialect::Sqlite => format!(
                        "{table}.id, {table}.revision, {table}.created_at, {table}.updated_at, json({table}.data)"
                    ),
                    Dialect::Postgres => doc_columns(dialect).to_owned(),
                };
                let mut sql = Sql::new(dialect);
                sql.push(&format!("SELECT {columns}, {score} AS score"));
                sql.push(&from.text);
                sql.binds = from.binds.clone();
                sql.push(" ORDER BY score DESC, id ASC LIMIT ")
                    .bind(Bind::Int(i64::from(s.limit)));
                sql.push(" OFFSET ").bind(Bind::Int(i64::from(s.offset)));
                let rows: Vec<(String, i64, i64, i64, String, f64)> = conn.all(&sql).await?;
                for (id, revision, created, updated, data, score) in rows {
                    let mut doc = to_document((id, revision, created, updated, data))?;
                    if let Some(fields) = &s.fields {
                        doc.data = project(&doc.data, fields);
                    }
                    hits.push((doc, score));
                }
            }
            let total = if s.with_total {
                let mut sql = Sql::new(dialect);
                sql.push("SELECT count(*)").push(&from.text);
                sql.binds = from.binds;
                let (n,): (i64,) = conn.fetch_one(&sql.text, &sql.binds).await?;
                Some(u64_of(n))
            } else {
                None
            };
            Ok(SearchPage { hits, total })
        })
        .await
    }

    /// Declares full-text search over `spec.fields` in `spec.language`. Idempotent; a different
    /// declaration replaces the previous one and re-indexes every document.
    pub async fn ensure_search(
        &self,
        scope: Scope<'_>,
        spec: &SearchSpec,
    ) -> std::result::Result<(), DocError> {
        self.check_scope(scope)?;
        let limits = &self.inner.limits;
        if spec.fields.is_empty() || spec.fields.len() > limits.max_search_fields {
            return Err(DocError::invalid(format!(
                "full-text search covers 1 to {} paths",
                limits.max_search_fields
            )));
        }
        if let Some(p) = spec.fields.iter().find(|p| p.as_pseudo().is_some()) {
            return Err(DocError::invalid(format!(
                "`{p}` is not a field of the document's data and cannot be searched"
            )));
        }
        fts::check_language(&spec.language)?;
        if let Db::Postgres(pool) = &self.inner.db {
            let known: Option<(i32,)> =
                sqlx::query_as("SELECT 1 FROM pg_ts_config WHERE cfgname = $1")
                    .bind(&spec.language)
                    .fetch_optional(pool)
                    .await
                    .map_err(unavailable)?;
            if known.is_none() {
                return Err(DocError::invalid(format!(
                    "search language `{}` is not installed in this PostgreSQL database",
                    spec.language
                )));
            }
        }
        self.with_collection(scope, true, |c| async move {
            let c = c.expect("created");
            if c.search.as_ref() == Some(spec) {
                return Ok(());
            }
            let mut tx = self.inner.db.begin().await?;
            let mut conn = Conn::of(&mut tx);
            let (current,): (Option<String>,) = conn
                .fetch_one(
                    "SELECT search FROM doc_collections WHERE id = $1",
                    &[Bind::Int(c.id)],
                )
                .await?;
            let wanted = serde_json::to_string(spec).expect("specs encode");
            if current.as_deref() != Some(wanted.as_str()) {
                drop_search_objects(&mut conn, &c.table).await?;
                create_search_objects(&mut conn, &c.table, spec).await?;
                conn.execute(
                    "UPDATE doc_collections SET search = $1 WHERE id = $2",
                    &[Bind::Text(wanted), Bind::Int(c.id)],
                )
                .await?;
            }
            tx.commit().await?;
            self.forget(scope);
            Ok(())
        })
        .await
    }

    /// Removes a collection's full-text search; whether it had one.
    pub async fn drop_search(&self, scope: Scope<'_>) -> std::result::Result<bool, DocError> {
        self.check_scope(scope)?;
        self.with_collection(scope, false, |c| async move {
            let Some(c) = c else { return Ok(false) };
            let mut tx = self.inner.db.begin().await?;
            let mut conn = Conn::of(&mut tx);
            let changed = conn
                .execute(
                    "UPDATE doc_collections SET search = NULL WHERE id = $1 AND search IS NOT NULL",
                    &[Bind::Int(c.id)],
                )
                .await?;
            if changed > 0 {
                drop_search_objects(&mut conn, &c.table).await?;
            }
            tx.commit().await?;
            self.forget(scope);
            Ok(changed > 0)
        })
        .await
    }

    // ----- indexes -----------------------------------------------------------------------

    /// Declares an index (idempotent). An existing index of the same name with another
    /// definition is an error: drop it first.
    pub async fn ensure_index(
        &self,
        scope: Scope<'_>,
        spec: &IndexSpec,
    ) -> std::result::Result<(), DocError> {
        self.check_scope(scope)?;
        validate::name("index", &spec.name)?;
        let limits = &self.inner.limits;
        if spec.fields.is_empty() || spec.fields.len() > limits.max_index_fields {
            return Err(DocError::invalid(format!(
                "index `{}` must have 1 to {} paths",
                spec.name, limits.max_index_fields
            )));
        }
        for (i, p) in spec.fields.iter().enumerate() {
            if spec.fields[..i].contains(p) {
                return Err(DocError::invalid(format!(
                    "index `{}` names `{p}` twice",
                    spec.name
                )));
            }
        }
        let differs = |fields: &[Path], unique: bool| {
            DocError::invalid(format!(
                "index `{}` already exists on collection `{}` as {}({}); drop it first to change it, or pick another name",
                spec.name,
                scope.collection,
                if unique { "unique " } else { "" },
                fields
                    .iter()
                    .map(Path::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        };
        self.with_collection(scope, true, |c| async move {
            let c = c.expect("created");
            if let Some(existing) = c.indexes.iter().find(|i| i.spec.name == spec.name) {
                return if existing.spec == *spec {
                    Ok(())
                } else {
                    Err(differs(&existing.spec.fields, existing.spec.unique).into())
                };
            }
            let mut tx = self.inner.db.begin().await?;
            let mut conn = Conn::of(&mut tx);
            let existing: Vec<(String, String, bool)> = conn
                .fetch_all(
                    "SELECT name, fields, is_unique FROM doc_indexes WHERE collection = $1",
                    &[Bind::Int(c.id)],
                )
                .await?;
            if let Some((_, fields, unique)) = existing.iter().find(|e| e.0 == spec.name) {
                let fields: Vec<Path> = serde_json::from_str(fields).unwrap_or_default();
                return if fields == spec.fields && *unique == spec.unique {
                    Ok(())
                } else {
                    Err(differs(&fields, *unique).into())
                };
            }
            if existing.len() >= limits.max_indexes_per_collection {
                return Err(DocError::QuotaExceeded(format!(
                    "collection `{}` already has {} indexes, the most it may have; drop one first",
                    scope.collection,
                    existing.len()
                ))
                .into());
            }
            let (number,): (i64,) = conn
                .fetch_one(
                    "UPDATE doc_collections SET next_index = next_index + 1 WHERE id = $1 RETURNING next_index - 1",
                    &[Bind::Int(c.id)],
                )
                .await?;
            for ddl in index_ddl(conn.dialect(), &c.table, number, spec) {
                if let Err(e) = conn.ddl(&ddl).await {
                    if is_unique_violation(&e) {
                        return Err(DocError::invalid(format!(
                            "cannot create unique index `{}`: documents of collection `{}` already share values of ({}); fix them first",
                            spec.name,
                            scope.collection,
                            fields_text(&spec.fields)
                        ))
                        .into());
                    }
                    return Err(e.into());
                }
            }
            let unique = match (conn.dialect(), spec.unique) {
                (Dialect::Sqlite, u) => if u { "1" } else { "0" },
                (Dialect::Postgres, u) => if u { "TRUE" } else { "FALSE" },
            };
            conn.execute(
                &format!("INSERT INTO doc_indexes (collection, name, number, fields, is_unique, created_at) VALUES ($1, $2, $3, $4, {unique}, $5)"),
                &[
                    Bind::Int(c.id),
                    Bind::Text(spec.name.clone()),
                    Bind::Int(number),
                    Bind::Text(serde_json::to_string(&spec.fields).expect("paths encode")),
                    Bind::Int(ucms_db::now_ms()),
                ],
            )
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    // Declared concurrently by another node: check again next time.
                    Fail::Doc(DocError::Unavailable("the index is being declared concurrently".into()))
                } else {
                    e.into()
                }
            })?;
            tx.commit().await?;
            self.forget(scope);
            Ok(())
        })
        .await
    }

    /// Drops an index; whether it existed.
    pub async fn drop_index(
        &self,
        scope: Scope<'_>,
        name: &str,
    ) -> std::result::Result<bool, DocError> {
        self.check_scope(scope)?;
        validate::name("index", name)?;
        self.with_collection(scope, false, |c| async move {
            let Some(c) = c else { return Ok(false) };
            let mut tx = self.inner.db.begin().await?;
            let mut conn = Conn::of(&mut tx);
            let row: Option<(i64,)> = conn
                .fetch_optional(
                    "SELECT number FROM doc_indexes WHERE collection = $1 AND name = $2",
                    &[Bind::Int(c.id), Bind::Text(name.to_owned())],
                )
                .await?;
            let Some((number,)) = row else {
                return Ok(false);
            };
            conn.ddl(&format!("DROP INDEX IF EXISTS {}_i{number}", c.table))
                .await?;
            conn.ddl(&format!("DROP INDEX IF EXISTS {}_u{number}", c.table))
                .await?;
            conn.execute(
                "DELETE FROM doc_indexes WHERE collection = $1 AND name = $2",
                &[Bind::Int(c.id), Bind::Text(name.to_owned())],
            )
            .await?;
            tx.commit().await?;
            self.forget(scope);
            Ok(true)
        })
        .await
    }

    /// The indexes declared on a collection, by name.
    pub async fn list_indexes(
        &self,
        scope: Scope<'_>,
    ) -> std::result::Result<Vec<IndexSpec>, DocError> {
        self.check_scope(scope)?;
        let mut read = self.read().await.map_err(fail_to_doc)?;
        let c = self
            .load(&mut read.conn(), scope)
            .await
            .map_err(fail_to_doc)?;
        Ok(c.map(|c| c.indexes.into_iter().map(|i| i.spec).collect())
            .unwrap_or_default())
    }

    // ----- writes ------------------------------------------------------------------------

    /// Inserts a document; without an `id` it gets a new UUIDv7.
    pub async fn insert(
        &self,
        scope: Scope<'_>,
        quota: &Quota,
        id: Option<&str>,
        data: Value,
    ) -> std::result::Result<Document, DocError> {
        let op = WriteOp::Insert {
            collection: scope.collection.to_owned(),
            id: id.map(str::to_owned),
            data,
        };
        self.write_document(scope.plugin, quota, op).await
    }

    /// Replaces a document's data (it must exist).
    pub async fn replace(
        &self,
        scope: Scope<'_>,
        quota: &Quota,
        id: &str,
        data: Value,
        expected_revision: Option<u64>,
    ) -> std::result::Result<Document, DocError> {
        let op = WriteOp::Replace {
            collection: scope.collection.to_owned(),
            id: id.to_owned(),
            data,
            expected_revision,
        };
        self.write_document(scope.plugin, quota, op).await
    }

    /// Applies an RFC 7386 JSON merge patch (an object) to a document (it must exist).
    pub async fn patch(
        &self,
        scope: Scope<'_>,
        quota: &Quota,
        id: &str,
        merge_patch: Value,
        expected_revision: Option<u64>,
    ) -> std::result::Result<Document, DocError> {
        let op = WriteOp::Patch {
            collection: scope.collection.to_owned(),
            id: id.to_owned(),
            patch: merge_patch,
            expected_revision,
        };
        self.write_document(scope.plugin, quota, op).await
    }

    /// Deletes a document; whether it existed. With `expected_revision`, a document at another
    /// revision is a conflict (a missing one is just `false`).
    pub async fn delete(
        &self,
        scope: Scope<'_>,
        id: &str,
        expected_revision: Option<u64>,
    ) -> std::result::Result<bool, DocError> {
        let op = WriteOp::Delete {
            collection: scope.collection.to_owned(),
            id: id.to_owned(),
            expected_revision,
        };
        match self.write_one(scope.plugin, &Quota::UNLIMITED, op).await? {
            WriteResult::Deleted(b) => Ok(b),
            WriteResult::Written(_) => unreachable!("a delete deletes"),
        }
    }

    /// Writes `ops` in one transaction: all of them or none. An operation that fails makes the
    /// whole batch fail with [`DocError::Batch`] naming it. `also` runs in the same transaction
    /// after the writes (see [`AlsoInTx`]); its error rolls everything back.
    pub async fn batch(
        &self,
        plugin: &str,
        quota: &Quota,
        ops: &[WriteOp],
        also: Option<AlsoInTx>,
    ) -> std::result::Result<Vec<WriteResult>, DocError> {
        let limits = &self.inner.limits;
        if ops.len() > limits.max_batch_ops {
            return Err(DocError::invalid(format!(
                "a batch has at most {} operations; split it",
                limits.max_batch_ops
            )));
        }
        self.write(plugin, quota, ops, also, true).await
    }

    /// Inserts many documents into one collection in one transaction, with no limit on their
    /// number (for imports and benchmarks; plugins go through [`Documents::batch`]).
    pub async fn insert_many(
        &self,
        scope: Scope<'_>,
        quota: &Quota,
        documents: impl IntoIterator<Item = (Option<String>, Value)>,
    ) -> std::result::Result<Vec<Document>, DocError> {
        let ops: Vec<WriteOp> = documents
            .into_iter()
            .map(|(id, data)| WriteOp::Insert {
                collection: scope.collection.to_owned(),
                id,
                data,
            })
            .collect();
        let results = self.write(scope.plugin, quota, &ops, None, true).await?;
        Ok(results
            .into_iter()
            .filter_map(|r| match r {
                WriteResult::Written(d) => Some(d),
                WriteResult::Deleted(_) => None,
            })
            .collect())
    }

    async fn write_one(
        &self,
        plugin: &str,
        quota: &Quota,
        op: WriteOp,
    ) -> std::result::Result<WriteResult, DocError> {
        let mut results = self
            .write(plugin, quota, std::slice::from_ref(&op), None, false)
            .await?;
        Ok(results.pop().expect("one result per operation"))
    }

    async fn write_document(
        &self,
        plugin: &str,
        quota: &Quota,
        op: WriteOp,
    ) -> std::result::Result<Document, DocError> {
        match self.write_one(plugin, quota, op).await? {
            WriteResult::Written(d) => Ok(d),
            WriteResult::Deleted(_) => unreachable!("only a delete deletes"),
        }
    }

    async fn write(
        &self,
        plugin: &str,
        quota: &Quota,
        ops: &[WriteOp],
        also: Option<AlsoInTx>,
        batch: bool,
    ) -> std::result::Result<Vec<WriteResult>, DocError> {
        validate::plugin(plugin)?;
        let wrap = |op: usize, e: DocError| {
            if batch {
                DocError::Batch {
                    op,
                    source: Box::new(e),
                }
            } else {
                e
            }
        };
        let prepared: Vec<Prepared<'_>> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| self.prepare(op).map_err(|e| wrap(i, e)))
            .collect::<std::result::Result<_, _>>()?;
        let mut also = also;
        // Runs of inserts go in multi-row statements; a unique index violation in one of them
        // is redone one operation at a time, to name the operation.
        let mut chunked = true;
        let mut attempt = 0;
        while attempt < 2 {
            // Collections first, each in its own short transaction: never while holding the
            // write transaction (SQLite has one writer connection).
            let mut names: Vec<&str> = prepared.iter().map(|p| p.collection).collect();
            names.sort_unstable();
            names.dedup();
            let mut collections: HashMap<&str, Option<Arc<Collection>>> = HashMap::new();
            for name in names {
                let create = prepared
                    .iter()
                    .any(|p| p.collection == name && matches!(p.kind, Kind::Insert { .. }));
                let scope = Scope::new(plugin, name);
                let c = match self.collection(scope, create, attempt > 0).await {
                    Ok(c) => c,
                    Err(f) => {
                        let first = prepared.iter().position(|p| p.collection == name);
                        return Err(wrap(first.unwrap_or(0), fail_to_doc(f)));
                    }
                };
                collections.insert(name, c);
            }
            let outcome = self
                .write_tx(plugin, quota, &prepared, &collections, &mut also, chunked)
                .await;
            match outcome {
                Ok(results) => return Ok(results),
                Err((None, Fail::Doc(DocError::Unique { .. }))) if chunked => chunked = false,
                Err((_, Fail::Stale)) => {
                    self.forget_plugin(plugin);
                    attempt += 1;
                }
                Err((Some(i), Fail::Doc(e))) => {
                    return Err(wrap(i, self.name_unique_index(plugin, e).await));
                }
                Err((None, Fail::Doc(e))) => return Err(e),
            }
        }
        Err(DocError::Unavailable(
            "a collection was dropped during the write".into(),
        ))
    }

    fn prepare<'o>(&self, op: &'o WriteOp) -> std::result::Result<Prepared<'o>, DocError> {
        let limits = &self.inner.limits;
        validate::name("collection", op.collection())?;
        let kind = match op {
            WriteOp::Insert { id, data, .. } => {
                if let Some(id) = id {
                    validate::id(limits, id)?;
                }
                Kind::Insert {
                    id: id.clone(),
                    text: validate::data(limits, data)?,
                    data,
                }
            }
            WriteOp::Replace {
                id,
                data,
                expected_revision,
                ..
            } => {
                validate::id(limits, id)?;
                validate::expected_revision(*expected_revision)?;
                Kind::Replace {
                    id,
                    text: validate::data(limits, data)?,
                    data,
                    expected: *expected_revision,
                }
            }
            WriteOp::Patch {
                id,
                patch,
                expected_revision,
                ..
            } => {
                validate::id(limits, id)?;
                validate::expected_revision(*expected_revision)?;
                if !patch.is_object() {
                    return Err(DocError::invalid(format!(
                        "a merge patch is a JSON object, not {}",
                        validate::type_name(patch)
                    )));
                }
                Kind::Patch {
                    id,
                    patch,
                    expected: *expected_revision,
                }
            }
            WriteOp::Delete {
                id,
                expected_revision,
                ..
            } => {
                validate::id(limits, id)?;
                validate::expected_revision(*expected_revision)?;
                Kind::Delete {
                    id,
                    expected: *expected_revision,
                }
            }
        };
        Ok(Prepared {
            collection: op.collection(),
            kind,
        })
    }

    /// The write transaction of a batch. An error comes with the index of the operation that
    /// caused it (`None`: the batch as a whole, such as the quota or `also`).
    async fn write_tx(
        &self,
        plugin: &str,
        quota: &Quota,
        prepared: &[Prepared<'_>],
        collections: &HashMap<&str, Option<Arc<Collection>>>,
        also: &mut Option<AlsoInTx>,
        chunked: bool,
    ) -> std::result::Result<Vec<WriteResult>, (Option<usize>, Fail)> {
        let whole = |e: Fail| (None, e);
        let mut tx = self.inner.db.begin().await.map_err(|e| whole(e.into()))?;
        let now = ucms_db::now_ms();
        let mut results = Vec::with_capacity(prepared.len());
        let mut delta = Delta::default();
        {
            let mut conn = Conn::of(&mut tx);
            let mut i = 0;
            while i < prepared.len() {
                let p = &prepared[i];
                let c = collections.get(p.collection).and_then(Option::as_deref);
                let run = if chunked {
                    insert_run(&prepared[i..])
                } else {
                    1
                };
                if run > 1
                    && let Some(c) = c
                {
                    let d = insert_chunk(&mut conn, c, &prepared[i..i + run], now, &mut results)
                        .await
                        .map_err(|(k, e)| (k.map(|k| i + k), e))?;
                    delta.add(d);
                    i += run;
                    continue;
                }
                let (result, d) = self
                    .apply(&mut conn, c, p, now)
                    .await
                    .map_err(|e| (Some(i), e))?;
                delta.add(d);
                results.push(result);
                i += 1;
            }
            if delta.documents != 0 || delta.bytes != 0 {
                apply_usage(&mut conn, plugin, quota, delta)
                    .await
                    .map_err(whole)?;
            }
        }
        if let Some(also) = also.take() {
            also(&mut tx)
                .await
                .map_err(|e| whole(Fail::Doc(DocError::Aborted(e))))?;
        }
        tx.commit().await.map_err(|e| whole(e.into()))?;
        Ok(results)
    }

    async fn apply(
        &self,
        conn: &mut Conn<'_>,
        c: Option<&Collection>,
        p: &Prepared<'_>,
        now: i64,
    ) -> Result<(WriteResult, Delta)> {
        let dialect = conn.dialect();
        let not_found = |id: &str| {
            Fail::Doc(DocError::NotFound {
                collection: p.collection.to_owned(),
                id: id.to_owned(),
            })
        };
        match &p.kind {
            Kind::Insert { id, text, data } => {
                let c = c.expect("inserts create their collection");
                let id = id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
                let sql = format!(
                    "INSERT INTO {} (id, revision, size, created_at, updated_at, data) VALUES ($1, 1, $2, $3, $3, {}) ON CONFLICT (id) DO NOTHING",
                    c.table,
                    json_param(dialect, 4)
                );
                let inserted = conn
                    .execute(
                        &sql,
                        &[
                            Bind::Text(id.clone()),
                            Bind::Int(text.len() as i64),
                            Bind::Int(now),
                            Bind::Text(text.clone()),
                        ],
                    )
                    .await
                    .map_err(|e| write_error(e, c))?;
                if inserted == 0 {
                    return Err(Fail::Doc(DocError::AlreadyExists {
                        collection: c.name.clone(),
                        id,
                    }));
                }
                Ok((
                    WriteResult::Written(Document {
                        id,
                        revision: 1,
                        data: (*data).clone(),
                        created_at_ms: now,
                        updated_at_ms: now,
                    }),
                    Delta {
                        documents: 1,
                        bytes: text.len() as i64,
                    },
                ))
            }
            Kind::Replace {
                id,
                text,
                data,
                expected,
            } => {
                let Some(c) = c else {
                    return Err(not_found(id));
                };
                let Some(current) = current(conn, c, id, false).await? else {
                    return Err(not_found(id));
                };
                check_revision(id, *expected, current.revision)?;
                let doc = update(conn, c, id, &current, text, (*data).clone(), now).await?;
                Ok((
                    WriteResult::Written(doc),
                    Delta {
                        documents: 0,
                        bytes: text.len() as i64 - current.size,
                    },
                ))
            }
            Kind::Patch {
                id,
                patch,
                expected,
            } => {
                let Some(c) = c else {
                    return Err(not_found(id));
                };
                let Some(current) = current(conn, c, id, true).await? else {
                    return Err(not_found(id));
                };
                check_revision(id, *expected, current.revision)?;
                let mut data = current.data.clone().unwrap_or(Value::Null);
                merge_patch(&mut data, patch);
                let text = validate::data(&self.inner.limits, &data)?;
                let doc = update(conn, c, id, &current, &text, data, now).await?;
                Ok((
                    WriteResult::Written(doc),
                    Delta {
                        documents: 0,
                        bytes: text.len() as i64 - current.size,
                    },
                ))
            }
            Kind::Delete { id, expected } => {
                let Some(c) = c else {
                    return Ok((WriteResult::Deleted(false), Delta::default()));
                };
                let Some(current) = current(conn, c, id, false).await? else {
                    return Ok((WriteResult::Deleted(false), Delta::default()));
                };
                check_revision(id, *expected, current.revision)?;
                conn.execute(
                    &format!("DELETE FROM {} WHERE id = $1", c.table),
                    &[Bind::Text((*id).to_owned())],
                )
                .await?;
                Ok((
                    WriteResult::Deleted(true),
                    Delta {
                        documents: -1,
                        bytes: -current.size,
                    },
                ))
            }
        }
    }

    /// Fills in the name of a unique index an error names only by number (an index declared by
    /// another node since this one cached the collection).
    async fn name_unique_index(&self, plugin: &str, e: DocError) -> DocError {
        let DocError::Unique {
            collection,
            index,
            fields,
        } = &e
        else {
            return e;
        };
        let Some(number) = index.strip_prefix('#').and_then(|n| n.parse::<i64>().ok()) else {
            return e;
        };
        let lookup = async {
            let mut read = self.read().await?;
            let row: Option<(String, String)> = read
                .conn()
                .fetch_optional(
                    "SELECT i.name, i.fields FROM doc_indexes i JOIN doc_collections c ON c.id = i.collection \
                     WHERE c.plugin = $1 AND c.name = $2 AND i.number = $3",
                    &[
                        Bind::Text(plugin.to_owned()),
                        Bind::Text(collection.clone()),
                        Bind::Int(number),
                    ],
                )
                .await?;
            Ok::<_, Fail>(row)
        };
        match lookup.await {
            Ok(Some((name, f))) => DocError::Unique {
                collection: collection.clone(),
                index: name,
                fields: serde_json::from_str::<Vec<Path>>(&f)
                    .map(|f| fields_text(&f))
                    .unwrap_or_else(|_| fields.clone()),
            },
            _ => e,
        }
    }

    // ----- plugins -----------------------------------------------------------------------

    /// What `plugin` stores.
    pub async fn usage(&self, plugin: &str) -> std::result::Result<Usage, DocError> {
        validate::plugin(plugin)?;
        let mut read = self.read().await.map_err(fail_to_doc)?;
        let mut conn = read.conn();
        let row: Option<(i64, i64)> = conn
            .fetch_optional(
                "SELECT documents, bytes FROM doc_usage WHERE plugin = $1",
                &[Bind::Text(plugin.to_owned())],
            )
            .await
            .map_err(unavailable)?;
        let (collections,): (i64,) = conn
            .fetch_one(
                "SELECT count(*) FROM doc_collections WHERE plugin = $1",
                &[Bind::Text(plugin.to_owned())],
            )
            .await
            .map_err(unavailable)?;
        let (documents, bytes) = row.unwrap_or((0, 0));
        Ok(Usage {
            documents: u64_of(documents),
            bytes: u64_of(bytes),
            collections: u64_of(collections),
        })
    }

    /// The names of `plugin`'s collections.
    pub async fn list_collections(
        &self,
        plugin: &str,
    ) -> std::result::Result<Vec<String>, DocError> {
        validate::plugin(plugin)?;
        let mut read = self.read().await.map_err(fail_to_doc)?;
        let rows: Vec<(String,)> = read
            .conn()
            .fetch_all(
                "SELECT name FROM doc_collections WHERE plugin = $1 ORDER BY name",
                &[Bind::Text(plugin.to_owned())],
            )
            .await
            .map_err(unavailable)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Drops a collection with its documents and indexes; whether it existed.
    pub async fn drop_collection(&self, scope: Scope<'_>) -> std::result::Result<bool, DocError> {
        self.check_scope(scope)?;
        let mut tx = self.inner.db.begin().await.map_err(unavailable)?;
        let mut conn = Conn::of(&mut tx);
        let result = async {
            let row: Option<(i64,)> = conn
                .fetch_optional(
                    "SELECT id FROM doc_collections WHERE plugin = $1 AND name = $2",
                    &[
                        Bind::Text(scope.plugin.to_owned()),
                        Bind::Text(scope.collection.to_owned()),
                    ],
                )
                .await?;
            let Some((id,)) = row else { return Ok(false) };
            let table = format!("ucms_doc_{id}");
            // PostgreSQL's sum(bigint) is numeric.
            let (documents, bytes): (i64, i64) = conn
                .fetch_one(
                    &format!(
                        "SELECT count(*), CAST(COALESCE(sum(size), 0) AS BIGINT) FROM {table}"
                    ),
                    &[],
                )
                .await?;
            drop_collection_objects(&mut conn, id).await?;
            let freed = Delta {
                documents: -documents,
                bytes: -bytes,
            };
            if freed.documents != 0 {
                apply_usage(&mut conn, scope.plugin, &Quota::UNLIMITED, freed).await?;
            }
            Ok::<_, Fail>(true)
        }
        .await
        .map_err(fail_to_doc)?;
        tx.commit().await.map_err(unavailable)?;
        self.forget(scope);
        Ok(result)
    }

    /// Drops every collection of `plugin` and its usage (when it is uninstalled).
    pub async fn drop_plugin(&self, plugin: &str) -> std::result::Result<(), DocError> {
        validate::plugin(plugin)?;
        let mut tx = self.inner.db.begin().await.map_err(unavailable)?;
        let mut conn = Conn::of(&mut tx);
        async {
            let ids: Vec<(i64,)> = conn
                .fetch_all(
                    "SELECT id FROM doc_collections WHERE plugin = $1",
                    &[Bind::Text(plugin.to_owned())],
                )
                .await?;
            for (id,) in ids {
                drop_collection_objects(&mut conn, id).await?;
            }
            conn.execute(
                "DELETE FROM doc_usage WHERE plugin = $1",
                &[Bind::Text(plugin.to_owned())],
            )
            .await?;
            Ok::<_, Fail>(())
        }
        .await
        .map_err(fail_to_doc)?;
        tx.commit().await.map_err(unavailable)?;
        self.forget_plugin(plugin);
        Ok(())
    }

    fn check_scope(&self, scope: Scope<'_>) -> std::result::Result<(), DocError> {
        validate::plugin(scope.plugin)?;
        validate::name("collection", scope.collection)
    }
}

fn fail_to_doc(f: Fail) -> DocError {
    match f {
        Fail::Doc(e) => e,
        Fail::Stale => {
            DocError::Unavailable("the collection was dropped during the request".into())
        }
    }
}

/// A validated operation.
struct Prepared<'o> {
    collection: &'o str,
    kind: Kind<'o>,
}

enum Kind<'o> {
    Insert {
        id: Option<String>,
        text: String,
        data: &'o Value,
    },
    Replace {
        id: &'o str,
        text: String,
        data: &'o Value,
        expected: Option<u64>,
    },
    Patch {
        id: &'o str,
        patch: &'o Value,
        expected: Option<u64>,
    },
    Delete {
        id: &'o str,
        expected: Option<u64>,
    },
}

/// A document as it is before a write.
struct Current {
    revision: u64,
    size: i64,
    created_at: i64,
    data: Option<Value>,
}

async fn current(
    conn: &mut Conn<'_>,
    c: &Collection,
    id: &str,
    with_data: bool,
) -> Result<Option<Current>> {
    let dialect = conn.dialect();
    let data = match (with_data, dialect) {
        (false, _) => "NULL",
        (true, Dialect::Sqlite) => "json(data)",
        (true, Dialect::Postgres) => "data::text",
    };
    let lock = match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    };
    let sql = format!(
        "SELECT revision, size, created_at, {data} FROM {} WHERE id = $1{lock}",
        c.table
    );
    let row: Option<(i64, i64, i64, Option<String>)> = conn
        .fetch_optional(&sql, &[Bind::Text(id.to_owned())])
        .await?;
    let Some((revision, size, created_at, data)) = row else {
        return Ok(None);
    };
    let data = match data {
        Some(text) => {
            Some(to_document((id.to_owned(), revision, created_at, created_at, text))?.data)
        }
        None => None,
    };
    Ok(Some(Current {
        revision: revision as u64,
        size,
        created_at,
        data,
    }))
}

/// Most inserts in one multi-row statement, and most bytes of documents in it.
const CHUNK_DOCUMENTS: usize = 500;
const CHUNK_BYTES: usize = 4 << 20;

/// How many operations from the start of `ops` are inserts into the same collection that can go
/// in one statement.
fn insert_run(ops: &[Prepared<'_>]) -> usize {
    let Some(first) = ops.first() else { return 0 };
    let mut bytes = 0;
    ops.iter()
        .take(CHUNK_DOCUMENTS)
        .take_while(|p| match &p.kind {
            Kind::Insert { text, .. } if p.collection == first.collection => {
                bytes += text.len();
                bytes <= CHUNK_BYTES || bytes == text.len()
            }
            _ => false,
        })
        .count()
}

/// Inserts a run of documents with one statement. An error comes with the index (in `ops`) of
/// the insert that caused it when that is known; a unique index violation is not pinned to one
/// (the caller redoes the batch one operation at a time).
async fn insert_chunk(
    conn: &mut Conn<'_>,
    c: &Collection,
    ops: &[Prepared<'_>],
    now: i64,
    results: &mut Vec<WriteResult>,
) -> std::result::Result<Delta, (Option<usize>, Fail)> {
    let mut rows = String::from("[");
    let mut docs = Vec::with_capacity(ops.len());
    let mut delta = Delta::default();
    for (k, p) in ops.iter().enumerate() {
        let Kind::Insert { id, text, data } = &p.kind else {
            unreachable!("a run holds inserts only")
        };
        let id = id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        if k > 0 {
            rows.push(',');
        }
        rows.push('[');
        rows.push_str(&serde_json::to_string(&id).expect("strings encode"));
        rows.push_str(&format!(",{},", text.len()));
        rows.push_str(text);
        rows.push(']');
        delta.add(Delta {
            documents: 1,
            bytes: text.len() as i64,
        });
        docs.push(Document {
            id,
            revision: 1,
            data: (*data).clone(),
            created_at_ms: now,
            updated_at_ms: now,
        });
    }
    rows.push(']');
    let sql = match conn.dialect() {
        Dialect::Sqlite => format!(
            "INSERT INTO {} (id, revision, size, created_at, updated_at, data) \
             SELECT e.value ->> 0, 1, e.value ->> 1, $2, $2, jsonb(e.value -> 2) FROM json_each($1) AS e WHERE true \
             ON CONFLICT (id) DO NOTHING RETURNING id",
            c.table
        ),
        Dialect::Postgres => format!(
            "INSERT INTO {} (id, revision, size, created_at, updated_at, data) \
             SELECT e ->> 0, 1, (e ->> 1)::bigint, $2, $2, e -> 2 FROM jsonb_array_elements($1::jsonb) AS e \
             ON CONFLICT (id) DO NOTHING RETURNING id",
            c.table
        ),
    };
    let inserted: Vec<(String,)> = conn
        .fetch_all(&sql, &[Bind::Text(rows), Bind::Int(now)])
        .await
        .map_err(|e| (None, write_error(e, c)))?;
    if inserted.len() < docs.len() {
        // Which ones were not inserted: the first time an id comes, it was inserted if returned.
        let mut fresh: std::collections::HashSet<&str> =
            inserted.iter().map(|r| r.0.as_str()).collect();
        for (k, doc) in docs.iter().enumerate() {
            if !fresh.remove(doc.id.as_str()) {
                return Err((
                    Some(k),
                    Fail::Doc(DocError::AlreadyExists {
                        collection: c.name.clone(),
                        id: doc.id.clone(),
                    }),
                ));
            }
        }
    }
    results.extend(docs.into_iter().map(WriteResult::Written));
    Ok(delta)
}

fn check_revision(id: &str, expected: Option<u64>, actual: u64) -> Result<()> {
    match expected {
        Some(expected) if expected != actual => Err(Fail::Doc(DocError::Conflict {
            id: id.to_owned(),
            expected,
            actual,
        })),
        _ => Ok(()),
    }
}

async fn update(
    conn: &mut Conn<'_>,
    c: &Collection,
    id: &str,
    current: &Current,
    text: &str,
    data: Value,
    now: i64,
) -> Result<Document> {
    let revision = current.revision + 1;
    let sql = format!(
        "UPDATE {} SET revision = $2, size = $3, updated_at = $4, data = {} WHERE id = $1",
        c.table,
        json_param(conn.dialect(), 5)
    );
    conn.execute(
        &sql,
        &[
            Bind::Text(id.to_owned()),
            Bind::Int(revision as i64),
            Bind::Int(text.len() as i64),
            Bind::Int(now),
            Bind::Text(text.to_owned()),
        ],
    )
    .await
    .map_err(|e| write_error(e, c))?;
    Ok(Document {
        id: id.to_owned(),
        revision,
        data,
        created_at_ms: current.created_at,
        updated_at_ms: now,
    })
}

/// Adds `delta` to the plugin's usage and refuses the write if it grows past the quota.
async fn apply_usage(conn: &mut Conn<'_>, plugin: &str, quota: &Quota, delta: Delta) -> Result<()> {
    let (documents, bytes): (i64, i64) = conn
        .fetch_one(
            "INSERT INTO doc_usage (plugin, documents, bytes) VALUES ($1, $2, $3) \
             ON CONFLICT (plugin) DO UPDATE SET documents = doc_usage.documents + excluded.documents, \
             bytes = doc_usage.bytes + excluded.bytes RETURNING documents, bytes",
            &[
                Bind::Text(plugin.to_owned()),
                Bind::Int(delta.documents),
                Bind::Int(delta.bytes),
            ],
        )
        .await?;
    if delta.documents > 0
        && let Some(max) = quota.max_documents
        && u64_of(documents) > max
    {
        return Err(Fail::Doc(DocError::QuotaExceeded(format!(
            "plugin `{plugin}` may store {max} documents and this write would make it {documents}; nothing was written: delete documents it no longer needs, or ask the site owner for a larger quota"
        ))));
    }
    if delta.bytes > 0
        && let Some(max) = quota.max_bytes
        && u64_of(bytes) > max
    {
        return Err(Fail::Doc(DocError::QuotaExceeded(format!(
            "plugin `{plugin}` may store {max} bytes of documents and this write would make it {bytes}; nothing was written: delete or shrink documents, or ask the site owner for a larger quota"
        ))));
    }
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Maps a write's database error: a unique index violation becomes [`DocError::Unique`].
fn write_error(e: sqlx::Error, c: &Collection) -> Fail {
    if let sqlx::Error::Database(db) = &e
        && db.kind() == sqlx::error::ErrorKind::UniqueViolation
    {
        // PostgreSQL names the constraint; SQLite says "UNIQUE constraint failed: index 'name'".
        let name = db.constraint().map(str::to_owned).or_else(|| {
            let message = db.message();
            let start = message.find("index '")? + "index '".len();
            let end = message[start..].find('\'')? + start;
            Some(message[start..end].to_owned())
        });
        let number = name
            .as_deref()
            .and_then(|n| n.strip_prefix(&format!("{}_u", c.table)))
            .and_then(|n| n.parse::<i64>().ok());
        if let Some(number) = number {
            let known = c.indexes.iter().find(|i| i.number == number);
            return Fail::Doc(DocError::Unique {
                collection: c.name.clone(),
                index: known.map_or_else(|| format!("#{number}"), |i| i.spec.name.clone()),
                fields: known.map_or_else(String::new, |i| fields_text(&i.spec.fields)),
            });
        }
    }
    e.into()
}

fn fields_text(fields: &[Path]) -> String {
    fields
        .iter()
        .map(Path::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statements that create a declared index: one for queries (the sort-key expressions of
/// every path, then the id, so an index serves filters, sorts and keyset pages), and for a
/// unique index a second, partial one that enforces uniqueness where every path holds a scalar.
fn index_ddl(dialect: Dialect, table: &str, number: i64, spec: &IndexSpec) -> Vec<String> {
    let keys: Vec<Key> = spec.fields.iter().map(|p| Key::new(dialect, p)).collect();
    let columns: Vec<String> = keys.iter().flat_map(Key::sort_columns).collect();
    let mut query_columns = columns.clone();
    if !query_columns.iter().any(|c| c == "id") {
        query_columns.push("id".to_owned());
    }
    let mut ddl = vec![format!(
        "CREATE INDEX IF NOT EXISTS {table}_i{number} ON {table} ({})",
        query_columns.join(", ")
    )];
    if spec.unique {
        let scalar: Vec<String> = keys
            .iter()
            .filter_map(|k| match k {
                Key::Data(d) => Some(format!("{} BETWEEN 2 AND 4", d.rank)),
                Key::Column { .. } => None,
            })
            .collect();
        let mut statement = format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {table}_u{number} ON {table} ({})",
            columns.join(", ")
        );
        if !scalar.is_empty() {
            statement.push_str(" WHERE ");
            statement.push_str(&scalar.join(" AND "));
        }
        ddl.push(statement);
    }
    ddl
}

fn field_weight(i: usize) -> f64 {
    [1.0, 0.4, 0.2, 0.1][i.min(3)]
}

async fn create_search_objects(conn: &mut Conn<'_>, table: &str, spec: &SearchSpec) -> Result<()> {
    match conn.dialect() {
        Dialect::Sqlite => {
            let columns: Vec<String> = (0..spec.fields.len()).map(|i| format!("f{i}")).collect();
            let columns = columns.join(", ");
            conn.ddl(&format!(
                "CREATE VIRTUAL TABLE {table}_fts USING fts5({columns}, content='', contentless_delete=1, tokenize='{}')",
                fts::sqlite_tokenizer(&spec.language)
            ))
            .await?;
            let values = |row: &str| {
                spec.fields
                    .iter()
                    .map(|p| sql::sqlite_search_text(p, &format!("{row}.data")))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let insert = format!(
                "INSERT INTO {table}_fts (rowid, {columns}) VALUES (new.seq, {})",
                values("new")
            );
            conn.ddl(&format!(
                "CREATE TRIGGER {table}_fts_insert AFTER INSERT ON {table} BEGIN {insert}; END"
            ))
            .await?;
            conn.ddl(&format!(
                "CREATE TRIGGER {table}_fts_update AFTER UPDATE OF data ON {table} BEGIN \
                 DELETE FROM {table}_fts WHERE rowid = old.seq; {insert}; END"
            ))
            .await?;
            conn.ddl(&format!(
                "CREATE TRIGGER {table}_fts_delete AFTER DELETE ON {table} BEGIN \
                 DELETE FROM {table}_fts WHERE rowid = old.seq; END"
            ))
            .await?;
            let fill: Vec<String> = spec
                .fields
                .iter()
                .map(|p| sql::sqlite_search_text(p, "data"))
                .collect();
            conn.ddl(&format!(
                "INSERT INTO {table}_fts (rowid, {columns}) SELECT seq, {} FROM {table}",
                fill.join(", ")
            ))
            .await?;
        }
        Dialect::Postgres => {
            // A generated column: PostgreSQL keeps it in step with every write, from any node.
            conn.ddl(&format!(
                "ALTER TABLE {table} ADD COLUMN fts tsvector GENERATED ALWAYS AS ({}) STORED",
                sql::pg_search_vector(&spec.fields, &spec.language)
            ))
            .await?;
            conn.ddl(&format!(
                "CREATE INDEX {table}_fts ON {table} USING GIN (fts)"
            ))
            .await?;
        }
    }
    Ok(())
}

async fn drop_search_objects(conn: &mut Conn<'_>, table: &str) -> Result<()> {
    match conn.dialect() {
        Dialect::Sqlite => {
            for trigger in ["insert", "update", "delete"] {
                conn.ddl(&format!("DROP TRIGGER IF EXISTS {table}_fts_{trigger}"))
                    .await?;
            }
            conn.ddl(&format!("DROP TABLE IF EXISTS {table}_fts"))
                .await?;
        }
        Dialect::Postgres => {
            conn.ddl(&format!("ALTER TABLE {table} DROP COLUMN IF EXISTS fts"))
                .await?;
        }
    }
    Ok(())
}

async fn drop_collection_objects(conn: &mut Conn<'_>, id: i64) -> Result<()> {
    let table = format!("ucms_doc_{id}");
    if conn.dialect() == Dialect::Sqlite {
        conn.ddl(&format!("DROP TABLE IF EXISTS {table}_fts"))
            .await?;
    }
    conn.ddl(&format!("DROP TABLE IF EXISTS {table}")).await?;
    conn.execute(
        "DELETE FROM doc_indexes WHERE collection = $1",
        &[Bind::Int(id)],
    )
    .await?;
    conn.execute(
        "DELETE FROM doc_collections WHERE id = $1",
        &[Bind::Int(id)],
    )
    .await?;
    Ok(())
}

/// Whether a declared (or built-in) index serves the filter or the sort: a label for metrics,
/// by the same rules the planners follow in the common cases (a leading indexed path tested with
/// a sargable operator at the top of the filter; or a sort whose keys continue an index after
/// its equality-tested leading paths).
fn served_by_index(c: &Collection, filter: Option<&Filter>, sort: &[Sort]) -> bool {
    let mut indexes: Vec<Vec<Path>> = vec![
        vec![Path::pseudo(Pseudo::Id)],
        vec![Path::pseudo(Pseudo::Created)],
    ];
    indexes.extend(c.indexes.iter().map(|i| i.spec.fields.clone()));
    let conjuncts: Vec<&Filter> = match filter {
        Some(Filter::And(fs)) => fs.iter().collect(),
        Some(f) => vec![f],
        None => Vec::new(),
    };
    let sargable: Vec<&Path> = conjuncts
        .iter()
        .filter_map(|f| match f {
            Filter::Eq(p, _)
            | Filter::Lt(p, _)
            | Filter::Lte(p, _)
            | Filter::Gt(p, _)
            | Filter::Gte(p, _)
            | Filter::In(p, _)
            | Filter::StartsWith(p, _)
            | Filter::IsNull(p) => Some(p),
            _ => None,
        })
        .collect();
    if indexes.iter().any(|fields| sargable.contains(&&fields[0])) {
        return true;
    }
    let equal: Vec<&Path> = conjuncts
        .iter()
        .filter_map(|f| match f {
            Filter::Eq(p, _) => Some(p),
            _ => None,
        })
        .collect();
    let uniform = sort.iter().all(|s| s.descending == sort[0].descending);
    if sort.is_empty() || !uniform {
        return false;
    }
    indexes.iter().any(|fields| {
        let rest: Vec<&Path> = fields.iter().skip_while(|p| equal.contains(p)).collect();
        sort.len() <= rest.len() && sort.iter().zip(&rest).all(|(s, p)| s.path == **p)
    })
}
