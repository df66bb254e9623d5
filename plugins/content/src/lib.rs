//! `content`: the flagship plugin — content types edited on a live site, entries with drafts and
//! publishing, revisions with diffs, locales with fallback, relations, and the delivery API with
//! Strapi-like filters, population without N+1, pagination and full-text search.
//!
//! It uses only `ucms:host` capabilities. How the pieces fit:
//!
//! - [`schema`]: the type definition, its checks, and the validation of entry values;
//! - [`store`]: how types, entries (one document per entry and locale, draft and published side
//!   by side) and revisions are kept in documents, and every write (with its event, in one batch);
//! - [`query`]: the delivery query string (`filters[...]`, `sort`, `populate`, ...) turned into
//!   document filters;
//! - [`api`]: the HTTP handlers, [`access`]: the permission checks, [`conditional`]: ETags,
//!   304s and Cache-Control for every read;
//! - [`seo`]: URL patterns and the sitemap; [`preview`]: signed preview tokens for one draft;
//!   [`taxonomy`]: vocabularies, terms with parents, and the ancestors entries keep for `$under`.
//!
//! See docs/content.md for the API.

use serde_json::{Value, json};
use ucms_sdk::schedules::{Schedules, Tick};
use ucms_sdk::{Plugin, Request, Response, Router};

pub mod access;
pub mod api;
pub mod conditional;
pub mod openapi;
pub mod pattern;
pub mod preview;
pub mod query;
pub mod schema;
pub mod seo;
pub mod store;
pub mod taxonomy;
pub mod time;

/// An API error: a status, a code, a message and, for validation and refused type changes, a
/// field map or a report beside them.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub extra: Option<(&'static str, Value)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            extra: None,
        }
    }

    pub fn with(mut self, key: &'static str, value: Value) -> Self {
        self.extra = Some((key, value));
        self
    }

    pub fn bad_query(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_query", message)
    }

    /// 422 `validation_failed` naming every failing field.
    pub fn validation(errors: schema::FieldErrors) -> Self {
        let names: Vec<&str> = errors.keys().map(String::as_str).collect();
        let message = if names.len() == 1 {
            format!("the field '{}' {}", names[0], errors[names[0]])
        } else {
            format!("{} fields are not valid: {}", names.len(), names.join(", "))
        };
        Self::new(422, "validation_failed", message).with("fields", json!(errors))
    }

    pub fn response(&self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some((k, v)) = &self.extra {
            error[*k] = v.clone();
        }
        Response::json(&json!({ "error": error }))
            .with_status(self.status)
            .with_header("cache-control", "no-store")
    }
}

impl From<ucms_sdk::Error> for ApiError {
    fn from(e: ucms_sdk::Error) -> Self {
        Self::new(e.status(), e.code(), e.message())
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        Self::new(500, "internal", format!("stored data does not parse: {e}"))
    }
}

struct Content;

fn handle(req: Request) -> ucms_sdk::Result<Response> {
    Ok(api::route(&req).unwrap_or_else(|e| e.response()))
}

impl Plugin for Content {
    fn router() -> Router {
        let mut router = Router::new();
        for (method, path) in api::ROUTES {
            router = router.route(method, path, handle);
        }
        router
    }

    fn schedules() -> Schedules {
        Schedules::new().on("publisher", publisher)
    }
}

fn publisher(tick: Tick) -> ucms_sdk::Result<()> {
    store::run_schedule(tick.scheduled_at_ms as i64)
        .map(|_| ())
        .map_err(|e| ucms_sdk::Error::new(e.status, e.code, e.message))
}

ucms_sdk::export!(Content);
