//! `ucms:host/documents`: JSON documents in collections private to each plugin, on the site's
//! database ([`ucms_documents`]).
//!
//! This module is the boundary: it turns WIT values into the store's types (parsing JSON text,
//! rebuilding the flattened filter tree and refusing anything but a tree), applies the plugin's
//! quota, times queries for the metrics, and maps the store's errors to the WIT variant. A
//! `batch` may carry events; they are checked like `events.publish` and written to the outbox in
//! the batch's transaction.

mod convert;

use std::time::Instant;

use ucms_documents::{DocError, Documents, Quota, Scope};
use wasmtime::component::{HasData, Linker};

use crate::capabilities::events::EventsCtx;
use crate::metrics::Metrics;
use crate::wit::latest::ucms::host::documents::{
    self as wit, Document, DocumentError, EventOut, Filter, Index, Page, QuerySpec, SearchPage,
    SearchQuery, Write, WriteResult,
};

pub use convert::MAX_FILTER_NODES;

/// Per-plugin state of the documents capability, resolved when the plugin loads.
#[derive(Debug, Clone)]
pub struct DocumentsState {
    pub quota: Quota,
}

/// What the documents host functions see of the invocation.
pub struct DocumentsCtx<'a> {
    pub plugin: &'a str,
    pub store: &'a Documents,
    pub state: &'a DocumentsState,
    pub metrics: &'a Metrics,
    /// For the events a batch publishes (checked against the events grant).
    pub events: EventsCtx<'a>,
}

struct Docs;

impl HasData for Docs {
    type Data<'a> = DocumentsCtx<'a>;
}

/// Store data that can give the `ucms:host/documents` host functions their view of the invocation.
pub trait DocumentsView: Send {
    fn documents(&mut self) -> DocumentsCtx<'_>;
}

/// Links `ucms:host/documents`.
pub fn add_to_linker<T: DocumentsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, Docs>(linker, T::documents)
}

type DocResult<T> = wasmtime::Result<Result<T, DocumentError>>;

impl DocumentsCtx<'_> {
    fn scope<'s>(&'s self, collection: &'s str) -> Scope<'s> {
        Scope {
            plugin: self.plugin,
            collection,
        }
    }

    fn error(&self, error: DocError) -> DocumentError {
        convert::error(self.plugin, error)
    }

    fn timed(&self, plan: &'static str, started: Instant) {
        self.metrics
            .document_query(self.plugin, plan, started.elapsed());
    }
}

/// `?` for the two-level result of a host function: a guest-facing error returns `Ok(Err(..))`.
macro_rules! guest_try {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

impl wit::Host for DocumentsCtx<'_> {
    #[tracing::instrument(
        name = "documents.insert",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn insert(
        &mut self,
        collection: String,
        id: Option<String>,
        data: String,
    ) -> DocResult<Document> {
        let data = guest_try!(convert::json_object(&data, "the document"));
        let result = self
            .store
            .insert(
                self.scope(&collection),
                &self.state.quota,
                id.as_deref(),
                data,
            )
            .await;
        Ok(result.map(convert::document).map_err(|e| self.error(e)))
    }

    #[tracing::instrument(
        name = "documents.get",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn get(&mut self, collection: String, id: String) -> DocResult<Option<Document>> {
        let result = self.store.get(self.scope(&collection), &id).await;
        Ok(result
            .map(|d| d.map(convert::document))
            .map_err(|e| self.error(e)))
    }

    #[tracing::instrument(
        name = "documents.get-many",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn get_many(
        &mut self,
        collection: String,
        ids: Vec<String>,
    ) -> DocResult<Vec<Option<Document>>> {
        let result = self.store.get_many(self.scope(&collection), &ids).await;
        Ok(result
            .map(|docs| docs.into_iter().map(|d| d.map(convert::document)).collect())
            .map_err(|e| self.error(e)))
    }

    #[tracing::instrument(
        name = "documents.replace",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn replace(
        &mut self,
        collection: String,
        id: String,
        data: String,
        expected_revision: Option<u64>,
    ) -> DocResult<Document> {
        let data = guest_try!(convert::json_object(&data, "the document"));
        let result = self
            .store
            .replace(
                self.scope(&collection),
                &self.state.quota,
                &id,
                data,
                expected_revision,
            )
            .await;
        Ok(result.map(convert::document).map_err(|e| self.error(e)))
    }

    #[tracing::instrument(
        name = "documents.patch",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn patch(
        &mut self,
        collection: String,
        id: String,
        patch: String,
        expected_revision: Option<u64>,
    ) -> DocResult<Document> {
        let patch = guest_try!(convert::json_object(&patch, "the patch"));
        let result = self
            .store
            .patch(
                self.scope(&collection),
                &self.state.quota,
                &id,
                patch,
                expected_revision,
            )
            .await;
        Ok(result.map(convert::document).map_err(|e| self.error(e)))
    }

    #[tracing::instrument(
        name = "documents.delete",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn delete(
        &mut self,
        collection: String,
        id: String,
        expected_revision: Option<u64>,
    ) -> DocResult<bool> {
        let result = self
            .store
            .delete(self.scope(&collection), &id, expected_revision)
            .await;
        Ok(result.map_err(|e| self.error(e)))
    }

    #[tracing::instrument(
        name = "documents.count",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn count(&mut self, collection: String, filter: Option<Filter>) -> DocResult<u64> {
        let filter = match filter {
            Some(f) => Some(guest_try!(convert::filter(f))),
            None => None,
        };
        let started = Instant::now();
        let result = self
            .store
            .count(self.scope(&collection), filter.as_ref())
            .await;
        self.timed("count", started);
        Ok(result.map_err(|e| self.error(e)))
    }

    #[tracing::instrument(
        name = "documents.query",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn query(&mut self, collection: String, query: QuerySpec) -> DocResult<Page> {
        let query = guest_try!(convert::query(query));
        let started = Instant::now();
        let result = self.store.query(self.scope(&collection), &query).await;
        let plan = match &result {
            Ok(page) if page.indexed => "index",
            _ => "scan",
        };
        self.timed(plan, started);
        Ok(result.map(convert::page).map_err(|e| self.error(e)))
    }

    #[tracing::instrument(
        name = "documents.search",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn search(&mut self, collection: String, query: SearchQuery) -> DocResult<SearchPage> {
        let search = guest_try!(convert::search(query));
        let started = Instant::now();
        let result = self.store.search(self.scope(&collection), &search).await;
        self.timed("search", started);
        Ok(result.map(convert::search_page).map_err(|e| self.error(e)))
    }

    #[tracing::instrument(
        name = "documents.batch",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn batch(
        &mut self,
        writes: Vec<Write>,
        events: Vec<EventOut>,
    ) -> DocResult<Vec<WriteResult>> {
        let ops = guest_try!(convert::writes(writes));
        let mut prepared = Vec::with_capacity(events.len());
        for (i, e) in events.into_iter().enumerate() {
            match self.events.prepare(e.topic, e.key, e.payload) {
                Ok(event) => prepared.push(event),
                Err(error) => {
                    return Ok(Err(DocumentError::Invalid(format!(
                        "event {i} of the batch can't be published: {}",
                        crate::capabilities::events::describe(&error)
                    ))));
                }
            }
        }
        let also = self.events.in_transaction(prepared);
        let published = also.count();
        let result = self
            .store
            .batch(self.plugin, &self.state.quota, &ops, also.into_hook())
            .await;
        match result {
            Ok(results) => {
                self.events.after_commit(published);
                Ok(Ok(results.into_iter().map(convert::write_result).collect()))
            }
            Err(e) => Ok(Err(self.error(e))),
        }
    }

    #[tracing::instrument(
        name = "documents.ensure-index",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn ensure_index(&mut self, collection: String, index: Index) -> DocResult<()> {
        let spec = guest_try!(convert::index(index));
        let result = self
            .store
            .ensure_index(self.scope(&collection), &spec)
            .await;
        Ok(result.map_err(|e| self.error(e)))
    }

    #[tracing::instrument(
        name = "documents.drop-index",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn drop_index(&mut self, collection: String, name: String) -> DocResult<bool> {
        let result = self.store.drop_index(self.scope(&collection), &name).await;
        Ok(result.map_err(|e| self.error(e)))
    }

    #[tracing::instrument(
        name = "documents.list-indexes",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn list_indexes(&mut self, collection: String) -> DocResult<Vec<Index>> {
        let result = self.store.list_indexes(self.scope(&collection)).await;
        Ok(result
            .map(|specs| specs.into_iter().map(convert::index_out).collect())
            .map_err(|e| self.error(e)))
    }

    #[tracing::instrument(
        name = "documents.ensure-search",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn ensure_search(
        &mut self,
        collection: String,
        fields: Vec<String>,
        language: String,
    ) -> DocResult<()> {
        let spec = guest_try!(convert::search_spec(&fields, &language));
        let result = self
            .store
            .ensure_search(self.scope(&collection), &spec)
            .await;
        Ok(result.map_err(|e| self.error(e)))
    }
}
