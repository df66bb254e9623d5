//! `hello`: the smallest useful UCMS plugin.
//!
//! - `GET /api/hello/greet?name=Ada` answers `{"greeting":"Hello, Ada!"}` to anyone;
//! - `POST /api/hello/counter` increments a counter in the plugin's key-value store and answers
//!   `{"value": N}`; the caller needs the `hello.counter.increment` permission.

use serde_json::json;
use ucms_sdk::{Plugin, Request, Response, Result, Router, kv};

struct Hello;

impl Plugin for Hello {
    fn router() -> Router {
        Router::new()
            .get("/greet", greet)
            .post("/counter", increment)
    }
}

fn greet(req: Request) -> Result<Response> {
    let name = req.query("name").unwrap_or("world");
    Ok(Response::json(
        &json!({ "greeting": format!("Hello, {name}!") }),
    ))
}

fn increment(_req: Request) -> Result<Response> {
    let value = kv::increment("counter", 1)?;
    Ok(Response::json(&json!({ "value": value })))
}

ucms_sdk::export!(Hello);
