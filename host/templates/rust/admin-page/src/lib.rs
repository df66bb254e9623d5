//! The @NAME@ plugin: an admin page (`assets/admin/index.html`) and the routes it calls.
//!
//! - `GET /api/@NAME@/summary`: the message and how often the page was viewed
//!   (`@NAME@.dashboard.view`);
//! - `PUT /api/@NAME@/message {"message": "..."}`: change the message (`@NAME@.dashboard.edit`).

use serde::Deserialize;
use ucms_sdk::{Error, Plugin, Request, Response, Result, Router, kv};

struct App;

impl Plugin for App {
    fn router() -> Router {
        Router::new()
            .get("/summary", summary)
            .put("/message", set_message)
    }
}

fn summary(_req: Request) -> Result<Response> {
    let views = kv::increment("views", 1)?;
    let message: String = kv::get("message")?.unwrap_or_else(|| "Welcome!".to_string());
    Ok(Response::json(&serde_json::json!({ "message": message, "views": views })))
}

#[derive(Deserialize)]
struct Message {
    message: String,
}

fn set_message(req: Request) -> Result<Response> {
    let body: Message = req.json()?;
    if body.message.len() > 200 {
        return Err(Error::unprocessable("the message is at most 200 bytes"));
    }
    kv::set("message", &body.message)?;
    Ok(Response::no_content())
}

ucms_sdk::export!(App);
