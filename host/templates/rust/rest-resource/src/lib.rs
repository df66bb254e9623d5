//! The @NAME@ plugin: `items` stored as documents, served as a REST resource.
//!
//! - `GET /api/@NAME@/items?limit=20&after=CURSOR`: a page of items by title
//! - `POST /api/@NAME@/items`: create one (`@NAME@.items.write`)
//! - `GET|PUT|DELETE /api/@NAME@/items/{id}`: read, replace (with `If-Match: <revision>`), delete

use serde::{Deserialize, Serialize};
use ucms_sdk::documents::{Collection, Doc};
use ucms_sdk::{Error, Plugin, Request, Response, Result, Router};

struct App;

impl Plugin for App {
    fn router() -> Router {
        Router::new()
            .get("/items", list)
            .post("/items", create)
            .get("/items/{id}", read)
            .put("/items/{id}", replace)
            .delete("/items/{id}", remove)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    title: String,
    #[serde(default)]
    done: bool,
}

fn items() -> Collection<Item> {
    Collection::new("items")
}

fn valid(item: Item) -> Result<Item> {
    if item.title.trim().is_empty() {
        return Err(Error::unprocessable("an item needs a title"));
    }
    Ok(item)
}

/// The document as the API shows it: its fields, its id and its revision.
fn show(doc: Doc<Item>) -> serde_json::Value {
    serde_json::json!({ "id": doc.id, "revision": doc.revision, "title": doc.data.title, "done": doc.data.done })
}

fn list(req: Request) -> Result<Response> {
    let limit = req.query("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
    let mut query = items().query().sort("title").limit(limit);
    if let Some(cursor) = req.query("after") {
        query = query.after(cursor);
    }
    let page = query.fetch()?;
    let next = page.next_cursor.clone();
    let list: Vec<_> = page.documents.into_iter().map(show).collect();
    Ok(Response::json(&serde_json::json!({ "items": list, "next": next })))
}

fn create(req: Request) -> Result<Response> {
    let item = valid(req.json()?)?;
    let doc = items().insert(&item)?;
    Ok(Response::json(&show(doc)).with_status(201))
}

fn read(req: Request) -> Result<Response> {
    let id = req.require_param("id")?;
    match items().get(id)? {
        Some(doc) => Ok(Response::json(&show(doc))),
        None => Err(Error::not_found(format!("no item '{id}'"))),
    }
}

fn replace(req: Request) -> Result<Response> {
    let id = req.require_param("id")?;
    let item = valid(req.json()?)?;
    // With If-Match, a stale revision is a 409 instead of a silent overwrite.
    let expected = req.header("if-match").and_then(|r| r.trim_matches('"').parse().ok());
    let doc = items().replace(id, &item, expected)?;
    Ok(Response::json(&show(doc)))
}

fn remove(req: Request) -> Result<Response> {
    let id = req.require_param("id")?;
    if items().delete(id, None)? {
        Ok(Response::no_content())
    } else {
        Err(Error::not_found(format!("no item '{id}'")))
    }
}

ucms_sdk::export!(App);
