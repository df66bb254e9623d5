//! The @NAME@ plugin.

use serde::{Deserialize, Serialize};
use ucms_sdk::{Plugin, Request, Response, Result, Router, kv, log};

struct App;

impl Plugin for App {
    fn router() -> Router {
        Router::new()
            .get("/hello", hello)
            .get("/notes", list_notes)
            .post("/notes", add_note)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Note {
    text: String,
}

/// GET /api/@NAME@/hello?name=Ada
fn hello(req: Request) -> Result<Response> {
    let name = req.query("name").unwrap_or("world");
    Ok(Response::json(&serde_json::json!({ "message": format!("Hello from @NAME@, {name}!") })))
}

/// GET /api/@NAME@/notes
fn list_notes(_req: Request) -> Result<Response> {
    let notes: Vec<Note> = kv::get("notes")?.unwrap_or_default();
    Ok(Response::json(&notes))
}

/// POST /api/@NAME@/notes {"text": "..."} (needs the @NAME@.notes.write permission)
fn add_note(req: Request) -> Result<Response> {
    let note: Note = req.json()?;
    if note.text.trim().is_empty() {
        return Err(ucms_sdk::Error::unprocessable("a note needs some text"));
    }
    let notes = kv::update("notes", |notes: Option<Vec<Note>>| {
        let mut notes = notes.unwrap_or_default();
        notes.push(Note { text: note.text.clone() });
        notes
    })?;
    log::info(&format!("{} notes stored", notes.len()));
    Ok(Response::json(&notes).with_status(201))
}

ucms_sdk::export!(App);
