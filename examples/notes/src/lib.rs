//! `notes`: notes stored as documents, the example of the data APIs of `ucms:host@0.2.0`.
//!
//! - documents: the `notes` collection, a unique index on `slug` and full-text search over `title`
//!   and `body` (both declared in the manifest), filters, sorting, keyset pagination, totals and
//!   optimistic concurrency (`If-Match: <revision>`);
//! - blobs: `PUT /notes/{slug}/attachment` is an upload route — the host streams the body into the
//!   plugin's blobs and the handler gets a reference — and `GET` streams it back, with ranges;
//! - cache: `GET /stats` is computed at most every few seconds, and every write invalidates it by
//!   its tag.
//!
//! See README.md for the routes and curl examples.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use ucms_sdk::documents::{Batch, Collection, Doc, Filter};
use ucms_sdk::{Error, Plugin, Request, Response, Result, Router, Upload, blobs, cache};

struct Notes;

impl Plugin for Notes {
    fn router() -> Router {
        Router::new()
            .get("/notes", list)
            .post("/notes", create)
            .get("/notes/{slug}", get)
            .put("/notes/{slug}", replace)
            .patch("/notes/{slug}", patch)
            .delete("/notes/{slug}", delete)
            .put("/notes/{slug}/attachment", attach)
            .get("/notes/{slug}/attachment", download)
            .get("/stats", stats)
    }
}

/// A note as stored in the `notes` collection.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    title: String,
    slug: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attachment: Option<BlobRef>,
}

/// Where a note's attachment is stored: the blob key the host chose for the upload, and what the
/// download needs to know without reading the blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BlobRef {
    key: String,
    content_type: String,
    size: u64,
    sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
}

/// What `POST` and `PUT` take.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteInput {
    title: String,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    body: String,
    #[serde(default)]
    tags: Vec<String>,
}

/// A note as the API shows it: the document's metadata and its fields side by side.
#[derive(Serialize)]
struct NoteView<'a> {
    id: &'a str,
    revision: u64,
    created_at_ms: i64,
    updated_at_ms: i64,
    #[serde(flatten)]
    note: &'a Note,
}

const COLLECTION: &str = "notes";
/// The cache tag of everything derived from the notes; every write invalidates it.
const TAG: &str = "notes";
const STATS_TTL: Duration = Duration::from_secs(5);
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;
const MAX_SLUG: usize = 100;

fn notes() -> Collection<Note> {
    Collection::new(COLLECTION)
}

fn view(doc: &Doc<Note>) -> NoteView<'_> {
    NoteView {
        id: &doc.id,
        revision: doc.revision,
        created_at_ms: doc.created_at_ms,
        updated_at_ms: doc.updated_at_ms,
        note: &doc.data,
    }
}

/// The note as JSON, with its revision as the entity tag (what `If-Match` takes back).
fn note_response(doc: &Doc<Note>) -> Response {
    Response::json(&view(doc)).with_header("etag", &etag(doc.revision))
}

fn etag(revision: u64) -> String {
    format!("\"{revision}\"")
}

// ---- reads ---------------------------------------------------------------------------------

/// `GET /notes?tag=&q=&sort=&limit=&cursor=` → `{ items, next_cursor, total }`.
fn list(req: Request) -> Result<Response> {
    let limit = match req.query("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Error::bad_request(format!("limit must be a number from 1 to {MAX_LIMIT}"))
            })?,
    };
    let tag = req.query("tag").map(|t| Filter::contains("tags", t));
    let cursor = req.query("cursor").filter(|c| !c.is_empty());

    if let Some(text) = req.query("q").filter(|q| !q.trim().is_empty()) {
        return search(text, tag, limit, cursor);
    }

    let (path, descending) = sort_key(req.query("sort").unwrap_or("-updated"))?;
    let mut query = notes()
        .query()
        .sort_by(path, descending)
        .limit(limit)
        .with_total();
    if let Some(tag) = tag {
        query = query.filter(tag);
    }
    if let Some(cursor) = cursor {
        query = query.after(cursor);
    }
    let page = query.fetch()?;
    let items: Vec<NoteView<'_>> = page.documents.iter().map(view).collect();
    Ok(Response::json(&json!({
        "items": items,
        "next_cursor": page.next_cursor,
        "total": page.total,
    })))
}

/// `?sort=` values: a field, `-` in front for descending.
fn sort_key(sort: &str) -> Result<(&'static str, bool)> {
    let (name, descending) = match sort.strip_prefix('-') {
        Some(name) => (name, true),
        None => (sort, false),
    };
    let path = match name {
        "title" => "title",
        "slug" => "slug",
        "created" => "_created",
        "updated" => "_updated",
        other => {
            return Err(Error::bad_request(format!(
                "cannot sort by '{other}': use title, slug, created or updated, with - in front for descending"
            )));
        }
    };
    Ok((path, descending))
}

/// Full-text search, best matches first. Search results have no keyset cursor, so this one's
/// cursor is the offset of the next page.
fn search(text: &str, tag: Option<Filter>, limit: u32, cursor: Option<&str>) -> Result<Response> {
    let offset = match cursor {
        None => 0,
        Some(c) => c.parse::<u32>().map_err(|_| {
            Error::bad_request(
                "this cursor is not from a search: pass the next_cursor of the previous page",
            )
        })?,
    };
    let collection = notes();
    let mut search = collection.search(text).limit(limit).offset(offset);
    if let Some(tag) = tag {
        search = search.filter(tag);
    }
    let page = search.fetch()?;
    let seen = u64::from(offset) + page.hits.len() as u64;
    let more = page.hits.len() as u32 == limit && page.total.is_none_or(|total| seen < total);
    let items: Vec<Value> = page
        .hits
        .iter()
        .map(|hit| {
            let mut item = serde_json::to_value(view(&hit.doc)).unwrap_or_default();
            item["score"] = json!(hit.score);
            item
        })
        .collect();
    Ok(Response::json(&json!({
        "items": items,
        "next_cursor": more.then(|| seen.to_string()),
        "total": page.total,
    })))
}

/// The note with `slug`, or a 404 that says so.
fn find(slug: &str) -> Result<Doc<Note>> {
    notes()
        .query()
        .filter(Filter::eq("slug", slug))
        .first()?
        .ok_or_else(|| Error::new(404, "note_not_found", format!("there is no note '{slug}'")))
}

/// `GET /notes/{slug}`; `If-None-Match` with the current revision gives 304.
fn get(req: Request) -> Result<Response> {
    let doc = find(req.require_param("slug")?)?;
    if req
        .header("if-none-match")
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag(doc.revision)))
    {
        return Ok(Response::new(304).with_header("etag", &etag(doc.revision)));
    }
    Ok(note_response(&doc))
}

/// `GET /stats`, computed at most every few seconds.
fn stats(_req: Request) -> Result<Response> {
    let stats: Value = cache::get_or_set_with("stats", Some(STATS_TTL), &[TAG], || {
        let collection = notes();
        Ok(json!({
            "notes": collection.count(None)?,
            "with_attachment": collection.count(Filter::exists("attachment"))?,
            "computed_at_ms": now_ms(),
        }))
    })?;
    Ok(Response::json(&stats))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// ---- writes --------------------------------------------------------------------------------

/// `POST /notes`: creates a note, deriving its slug from the title when none is given.
fn create(req: Request) -> Result<Response> {
    let input: NoteInput = req.json()?;
    let note = validate(input, None)?;
    // The note and the `notes.created` event commit together: a refused insert (a taken slug)
    // publishes nothing, and a stored note is always announced.
    let results = Batch::new()
        .insert(&notes(), &note)
        .publish(
            "notes.created",
            Some(&note.slug),
            &json!({ "slug": note.slug }),
        )
        .commit()
        .map_err(|e| slug_taken(e, &note.slug))?;
    let doc: Doc<Note> = results
        .into_iter()
        .next()
        .and_then(|r| r.into_doc().transpose())
        .ok_or_else(|| Error::internal("the batch returned no document"))??;
    written();
    Ok(note_response(&doc).with_status(201))
}

/// `PUT /notes/{slug}`: replaces the title, slug, body and tags (the attachment stays).
/// With `If-Match: <revision>`, a 409 when someone else changed the note since.
fn replace(req: Request) -> Result<Response> {
    let current = find(req.require_param("slug")?)?;
    let expected = if_match(&req)?;
    let input: NoteInput = req.json()?;
    let mut note = validate(input, Some(&current.data.slug))?;
    note.attachment = current.data.attachment;
    let doc = notes()
        .replace(&current.id, &note, expected)
        .map_err(|e| slug_taken(e, &note.slug))?;
    written();
    Ok(note_response(&doc))
}

/// `PATCH /notes/{slug}`: a JSON merge patch of `title`, `slug`, `body` and `tags` (`null`
/// clears `body` or `tags`). With `If-Match: <revision>`, a 409 on a stale revision.
fn patch(req: Request) -> Result<Response> {
    let current = find(req.require_param("slug")?)?;
    let expected = if_match(&req)?;
    let patch: Map<String, Value> = req.json()?;
    for (field, value) in &patch {
        match (field.as_str(), value) {
            ("title", Value::String(title)) if !title.trim().is_empty() => {}
            ("slug", Value::String(slug)) => check_slug(slug)?,
            ("body", Value::String(_) | Value::Null) => {}
            ("tags", Value::Null) => {}
            ("tags", Value::Array(tags)) if tags.iter().all(Value::is_string) => {}
            ("title" | "slug" | "body" | "tags", _) => {
                return Err(Error::bad_request(format!(
                    "'{field}' has the wrong type: title and slug are non-empty strings, body a string, tags an array of strings"
                )));
            }
            (other, _) => {
                return Err(Error::bad_request(format!(
                    "cannot change '{other}': a patch may set title, slug, body and tags"
                )));
            }
        }
    }
    let slug = patch
        .get("slug")
        .and_then(Value::as_str)
        .unwrap_or(&current.data.slug)
        .to_string();
    let doc = notes()
        .patch(&current.id, Value::Object(patch), expected)
        .map_err(|e| slug_taken(e, &slug))?;
    written();
    Ok(note_response(&doc))
}

/// `DELETE /notes/{slug}`: deletes the note, then its attachment. With `If-Match: <revision>`,
/// a 409 on a stale revision.
fn delete(req: Request) -> Result<Response> {
    let current = find(req.require_param("slug")?)?;
    let expected = if_match(&req)?;
    notes().delete(&current.id, expected)?;
    written();
    if let Some(attachment) = &current.data.attachment {
        // The note is gone either way; a blob that could not be deleted now is only unreferenced.
        let _ = blobs::delete(&attachment.key);
    }
    Ok(Response::no_content())
}

/// `PUT /notes/{slug}/attachment` (an upload route): records the blob the host stored as the
/// note's attachment, replacing (and deleting) any previous one. When this answers with an error
/// status, the host deletes the uploaded blob itself.
fn attach(req: Request) -> Result<Response> {
    let upload = req
        .upload("file")
        .or_else(|| req.uploads().first())
        .ok_or_else(|| {
            Error::bad_request("send the file as the body, or as the form field 'file'")
        })?;
    record_attachment(&req, upload)
}

fn record_attachment(req: &Request, upload: &Upload) -> Result<Response> {
    let current = find(req.require_param("slug")?)?;
    let expected = if_match(req)?;
    let attachment = BlobRef {
        key: upload.blob.key.clone(),
        content_type: upload.blob.content_type.clone(),
        size: upload.blob.size,
        sha256: upload.blob.sha256.clone(),
        filename: upload.filename.clone(),
    };
    let doc = notes().patch(&current.id, json!({ "attachment": attachment }), expected)?;
    written();
    // The note now points at the new blob, so this must not fail the request (the caller would
    // delete the new blob): at worst the old one stays behind unreferenced.
    if let Some(previous) = &current.data.attachment
        && previous.key != attachment.key
    {
        let _ = blobs::delete(&previous.key);
    }
    Ok(note_response(&doc))
}

/// `GET /notes/{slug}/attachment`: the attachment with its content type; honours
/// `Range: bytes=a-b` and `If-None-Match`.
fn download(req: Request) -> Result<Response> {
    let note = find(req.require_param("slug")?)?;
    let attachment = note.data.attachment.ok_or_else(|| {
        Error::new(
            404,
            "no_attachment",
            format!("note '{}' has no attachment", note.data.slug),
        )
    })?;
    let mut response = Response::blob_for(&req, &attachment.key)?;
    if let Some(filename) = &attachment.filename {
        let safe: String = filename
            .chars()
            .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
            .collect();
        response = response.with_header(
            "content-disposition",
            &format!("inline; filename=\"{safe}\""),
        );
    }
    Ok(response)
}

/// After every write: the cached stats are stale. An unavailable cache holds nothing to
/// invalidate (and the stats expire in seconds anyway), so a failure here doesn't fail the write.
fn written() {
    let _ = cache::invalidate_tag(TAG);
}

// ---- validation ----------------------------------------------------------------------------

/// Checks a `POST`/`PUT` body and turns it into a note; the slug defaults to `current_slug` (on
/// a replace) or one derived from the title.
fn validate(input: NoteInput, current_slug: Option<&str>) -> Result<Note> {
    let title = input.title.trim().to_string();
    if title.is_empty() {
        return Err(Error::unprocessable("a note needs a title"));
    }
    let slug = match (input.slug, current_slug) {
        (Some(slug), _) => {
            check_slug(&slug)?;
            slug
        }
        (None, Some(current)) => current.to_string(),
        (None, None) => {
            let slug = slugify(&title);
            if slug.is_empty() {
                return Err(Error::unprocessable(
                    "the title has no letters or digits to make a slug of: give a slug",
                ));
            }
            slug
        }
    };
    Ok(Note {
        title,
        slug,
        body: input.body,
        tags: input.tags,
        attachment: None,
    })
}

fn check_slug(slug: &str) -> Result<()> {
    let valid = !slug.is_empty()
        && slug.len() <= MAX_SLUG
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(Error::bad_request(format!(
            "'{slug}' is not a slug: use 1 to {MAX_SLUG} lower-case letters, digits and inner dashes"
        )))
    }
}

/// `"Hello, World! (2nd draft)"` → `"hello-world-2nd-draft"`.
fn slugify(title: &str) -> String {
    let mut slug = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= MAX_SLUG {
            break;
        }
    }
    slug.trim_end_matches('-').to_string()
}

/// `If-Match: 3` or `If-Match: "3"` → the revision the write expects; `*` or none → any.
fn if_match(req: &Request) -> Result<Option<u64>> {
    match req.header("if-match").map(str::trim) {
        None | Some("*") => Ok(None),
        Some(value) => value
            .trim_start_matches("W/")
            .trim_matches('"')
            .parse::<u64>()
            .map(Some)
            .map_err(|_| {
                Error::bad_request(format!(
                    "If-Match must be a note's revision (its etag), not '{value}'"
                ))
            }),
    }
}

/// A unique violation on insert or update can only be the slug index: say so in words.
fn slug_taken(error: Error, slug: &str) -> Error {
    if error.code() == "unique_violation" {
        Error::new(
            409,
            "slug_taken",
            format!("a note with the slug '{slug}' already exists: choose another slug"),
        )
    } else {
        error
    }
}

ucms_sdk::export!(Notes);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_from_titles() {
        assert_eq!(
            slugify("Hello, World! (2nd draft)"),
            "hello-world-2nd-draft"
        );
        assert_eq!(slugify("  Ünïcode  & more "), "n-code-more");
        assert_eq!(slugify("!!!"), "");
        assert!(check_slug("hello-world-2").is_ok());
        assert!(check_slug("Hello").is_err());
        assert!(check_slug("-a").is_err());
    }

    #[test]
    fn sort_keys() {
        assert_eq!(sort_key("-updated").unwrap(), ("_updated", true));
        assert_eq!(sort_key("title").unwrap(), ("title", false));
        assert_eq!(sort_key("body").unwrap_err().status(), 400);
    }
}
