//! The HTTP handlers of `/api/content/…` (docs/content.md).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use ucms_sdk::documents::{Doc, Filter};
use ucms_sdk::{Request, Response, hooks};

use crate::access::{self, Grant};
use crate::conditional;
use crate::query::{self, Populate, View};
use crate::schema::{self, ContentType, FieldErrors, FieldType, Kind};
use crate::store::{self, Action, Stored};
use crate::time;
use crate::{ApiError, ApiResult};

/// Every route of the manifest, all served by [`route`].
pub const ROUTES: [(&str, &str); 31] = [
    ("GET", "/types"),
    ("POST", "/types"),
    ("GET", "/types/{name}"),
    ("PUT", "/types/{name}"),
    ("DELETE", "/types/{name}"),
    ("GET", "/schema"),
    ("POST", "/schema"),
    ("GET", "/openapi.json"),
    ("GET", "/sitemap.xml"),
    ("GET", "/taxonomies"),
    ("POST", "/taxonomies"),
    ("GET", "/taxonomies/{vocabulary}"),
    ("DELETE", "/taxonomies/{vocabulary}"),
    ("POST", "/taxonomies/{vocabulary}/terms"),
    ("GET", "/taxonomies/{vocabulary}/terms/{term}"),
    ("PUT", "/taxonomies/{vocabulary}/terms/{term}"),
    ("DELETE", "/taxonomies/{vocabulary}/terms/{term}"),
    ("GET", "/{type}"),
    ("POST", "/{type}"),
    ("POST", "/{type}/bulk"),
    ("GET", "/{type}/{id}"),
    ("PUT", "/{type}/{id}"),
    ("DELETE", "/{type}/{id}"),
    ("POST", "/{type}/{id}/publish"),
    ("POST", "/{type}/{id}/unpublish"),
    ("POST", "/{type}/{id}/schedule"),
    ("POST", "/{type}/{id}/preview-token"),
    ("POST", "/{type}/{id}/stage"),
    ("GET", "/{type}/{id}/revisions"),
    ("GET", "/{type}/{id}/revisions/{n}"),
    ("POST", "/{type}/{id}/revisions/{n}/restore"),
];

pub fn route(req: &Request) -> ApiResult<Response> {
    let p = |name: &str| req.param(name).unwrap_or_default();
    match (req.method(), req.route()) {
        ("GET", "/types") => list_types(),
        ("POST", "/types") => create_type(req),
        ("GET", "/types/{name}") => get_type(p("name")),
        ("PUT", "/types/{name}") => change_type(req, p("name")),
        ("DELETE", "/types/{name}") => delete_type(p("name")),
        ("GET", "/schema") => export_schema(),
        ("POST", "/schema") => import_schema(req),
        ("GET", "/openapi.json") => crate::openapi::document(req),
        ("GET", "/sitemap.xml") => crate::seo::sitemap(req),
        (_, r) if r.starts_with("/taxonomies") => crate::taxonomy::route(req),
        ("GET", "/{type}") => list(req, p("type")),
        ("POST", "/{type}") => create(req, p("type")),
        ("POST", "/{type}/bulk") => bulk(req, p("type")),
        ("GET", "/{type}/{id}") => get(req, p("type"), p("id")),
        ("PUT", "/{type}/{id}") => update(req, p("type"), p("id")),
        ("DELETE", "/{type}/{id}") => delete(req, p("type"), p("id")),
        ("POST", "/{type}/{id}/publish") => publish(req, p("type"), p("id"), true),
        ("POST", "/{type}/{id}/unpublish") => publish(req, p("type"), p("id"), false),
        ("POST", "/{type}/{id}/schedule") => schedule(req, p("type"), p("id")),
        ("POST", "/{type}/{id}/preview-token") => preview_token(req, p("type"), p("id")),
        ("POST", "/{type}/{id}/stage") => change_stage(req, p("type"), p("id")),
        ("GET", "/{type}/{id}/revisions") => list_revisions(req, p("type"), p("id")),
        ("GET", "/{type}/{id}/revisions/{n}") => get_revision(req, p("type"), p("id"), p("n")),
        ("POST", "/{type}/{id}/revisions/{n}/restore") => restore(req, p("type"), p("id"), p("n")),
        (m, r) => Err(ApiError::new(
            404,
            "not_found",
            format!("{m} {r} is not a route of the content plugin"),
        )),
    }
}

/// The request's JSON body as `T`, or 400 `invalid_body` saying why.
pub(crate) fn body<T: serde::de::DeserializeOwned>(req: &Request) -> ApiResult<T> {
    serde_json::from_slice(req.body()).map_err(|e| {
        ApiError::new(
            400,
            "invalid_body",
            format!("the body is not the JSON this route takes: {e}"),
        )
    })
}

fn created_event(ty: &str, action: &str) -> ApiResult<()> {
    ucms_sdk::events::publish(
        "content.type.changed",
        &json!({"type": ty, "action": action}),
    )?;
    Ok(())
}

// ---- types -----------------------------------------------------------------------------------

fn may_read_types() -> ApiResult<()> {
    if access::any("read") || access::any("schema") || access::any("update") {
        Ok(())
    } else {
        Err(access::denied("read", "types"))
    }
}

fn list_types() -> ApiResult<Response> {
    may_read_types()?;
    let types: Vec<ContentType> = store::all_types()?.into_values().collect();
    Ok(Response::json(&json!({ "data": types })))
}

fn get_type(name: &str) -> ApiResult<Response> {
    may_read_types()?;
    Ok(Response::json(&store::load_type(name)?))
}

fn parse_type(value: Value) -> ApiResult<ContentType> {
    serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            422,
            "validation_failed",
            format!("the type definition is not valid: {e}"),
        )
    })
}

fn create_type(req: &Request) -> ApiResult<Response> {
    let ty = parse_type(body(req)?)?;
    let created = save_new_type(ty)?;
    Ok(Response::json(&created).with_status(201))
}

fn save_new_type(ty: ContentType) -> ApiResult<ContentType> {
    let types = store::all_types()?;
    let mut errors = ty.check(&types);
    crate::taxonomy::check_type(&ty, &mut errors)?;
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if types.contains_key(&ty.name) {
        return Err(ApiError::new(
            409,
            "type_exists",
            format!(
                "the type '{}' exists: change it with PUT /api/content/types/{}",
                ty.name, ty.name
            ),
        ));
    }
    store::ensure_storage(&ty)?;
    store::types().insert_with_id(&ty.name, &ty)?;
    created_event(&ty.name, "created")?;
    Ok(ty)
}

fn change_type(req: &Request, name: &str) -> ApiResult<Response> {
    let mut value: Value = body(req)?;
    if let Some(o) = value.as_object_mut() {
        match o.get("name").and_then(Value::as_str) {
            None => {
                o.insert("name".into(), Value::String(name.into()));
            }
            Some(n) if n != name => {
                return Err(ApiError::new(
                    422,
                    "validation_failed",
                    "a type can't be renamed: create a new type and move the entries",
                )
                .with("fields", json!({"name": "can't be changed"})));
            }
            Some(_) => {}
        }
    }
    let new = parse_type(value)?;
    let dry_run = req.query("dry-run") == Some("true");
    let (status, report) = apply_type_change(new, dry_run)?;
    Ok(Response::json(&report).with_status(status))
}

/// Changes a type: checks every stored entry against the new definition, refuses with a report
/// of what would break, else migrates the entries (dropping removed fields, filling defaults),
/// rebuilds the indexes and saves the type.
/// An entry's fields under a changed type: fields the type no longer has are dropped, new ones
/// get their defaults.
fn migrated(new: &ContentType, m: &Map<String, Value>) -> Map<String, Value> {
    let mut out: Map<String, Value> = store::strip(m)
        .into_iter()
        .filter(|(k, _)| new.field(k).is_some())
        .collect();
    schema::complete(new, &mut out);
    out
}

fn apply_type_change(new: ContentType, dry_run: bool) -> ApiResult<(u16, Value)> {
    let old = store::load_type(&new.name)?;
    let mut types = store::all_types()?;
    types.remove(&new.name);
    let mut errors = new.check(&types);
    crate::taxonomy::check_type(&new, &mut errors)?;
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut report: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut migrations: Vec<(String, u64, Stored)> = Vec::new();
    let col = store::entries(&new.name);
    let mut cursor: Option<String> = None;
    let changed_kinds = store::type_changed(&old, &new);
    loop {
        let mut q = col.query().limit(500);
        if let Some(c) = &cursor {
            q = q.after(c.clone());
        }
        let page = q.fetch()?;
        for d in &page.documents {
            let mut s = d.data.clone();
            s.fields = migrated(&new, &d.data.fields);
            s.published = d.data.published.as_ref().map(|m| migrated(&new, m));
            for (version, fields) in [
                ("draft", Some(&s.fields)),
                ("published", s.published.as_ref()),
            ] {
                let Some(fields) = fields else { continue };
                let mut errs = schema::check_entry(&new, fields);
                if s.locale != new.default_locale() {
                    // Other locales may leave localized fields to the default locale.
                    errs.retain(|k, v| {
                        !(v == "is required" && new.field(k).is_some_and(|f| f.localized))
                    });
                }
                for (field, problem) in errs {
                    let (p, ids) = report
                        .entry(field)
                        .or_insert_with(|| (format!("{problem} ({version})"), Vec::new()));
                    let _ = p;
                    if !ids.contains(&s.entry) && ids.len() < 100 {
                        ids.push(s.entry.clone());
                    }
                }
            }
            if store::strip(&s.fields) != store::strip(&d.data.fields)
                || s.published.as_ref().map(store::strip)
                    != d.data.published.as_ref().map(store::strip)
            {
                migrations.push((d.id.clone(), d.revision, s));
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut lines: Vec<Value> = report
        .into_iter()
        .map(|(field, (problem, entries))| {
            let kind = changed_kinds
                .iter()
                .find(|(f, _, _)| *f == field)
                .map(|(_, a, b)| format!("; its type changes from {} to {}", a.name(), b.name()))
                .unwrap_or_default();
            json!({"field": field, "problem": format!("{} entries break it: {problem}{kind}", entries.len()), "entries": entries})
        })
        .collect();
    lines.sort_by_key(|l| l["field"].as_str().map(String::from));
    if !lines.is_empty() {
        if dry_run {
            return Ok((200, json!({"ok": false, "report": lines})));
        }
        return Err(ApiError::new(
            409,
            "type_change_refused",
            format!(
                "existing entries don't fit the new definition of '{}': fix them or change the definition (see report)",
                new.name
            ),
        )
        .with("report", json!(lines)));
    }
    if dry_run {
        return Ok((
            200,
            json!({"ok": true, "report": [], "migrates": migrations.len()}),
        ));
    }
    store::ensure_storage(&new)?;
    for chunk in migrations.chunks(200) {
        let mut batch = ucms_sdk::documents::Batch::new();
        for (id, rev, s) in chunk {
            let mut s = s.clone();
            s.fields = store::with_shadows(&new, &s.fields);
            crate::taxonomy::shadow(&new, &mut s.fields)?;
            if let Some(p) = s.published.as_ref() {
                let mut p = store::with_shadows(&new, p);
                crate::taxonomy::shadow(&new, &mut p)?;
                s.published = Some(p);
            }
            s.refresh_status();
            batch = batch.replace(&col, id, &s, Some(*rev));
        }
        batch.commit().map_err(|e| store::unique_error(e, &new))?;
    }
    store::types().replace(&new.name, &new, None)?;
    created_event(&new.name, "changed")?;
    Ok((200, json!({"type": new, "migrated": migrations.len()})))
}

fn delete_type(name: &str) -> ApiResult<Response> {
    let ty = store::load_type(name)?;
    for (_, other) in store::all_types()? {
        if other.name == ty.name {
            continue;
        }
        if let Some(f) = other
            .relations()
            .find(|f| f.target.as_deref() == Some(name))
        {
            return Err(ApiError::new(
                409,
                "relation_restricted",
                format!(
                    "the type '{}' relates to '{name}' through '{}': remove that field first",
                    other.name, f.name
                ),
            ));
        }
    }
    let deleted = store::purge(&store::entries(name), None)?;
    store::purge(&store::revisions(), Some(Filter::eq("type", name)))?;
    for index in store::entries(name).indexes()? {
        store::entries(name).drop_index(&index.name)?;
    }
    store::types().delete(name, None)?;
    created_event(name, "deleted")?;
    Ok(Response::json(
        &json!({"deleted": name, "entries": deleted}),
    ))
}

fn export_schema() -> ApiResult<Response> {
    let types: Vec<ContentType> = store::all_types()?.into_values().collect();
    Ok(Response::json(&json!({"version": 1, "types": types})))
}

#[derive(Deserialize)]
struct SchemaFile {
    version: u32,
    types: Vec<Value>,
}

fn import_schema(req: &Request) -> ApiResult<Response> {
    let file: SchemaFile = body(req)?;
    if file.version != 1 {
        return Err(ApiError::new(
            422,
            "validation_failed",
            format!(
                "schema version {} is not supported; this plugin reads version 1",
                file.version
            ),
        ));
    }
    let mut types: Vec<ContentType> = file
        .types
        .into_iter()
        .map(parse_type)
        .collect::<ApiResult<_>>()?;
    // Targets first: a type whose relations point at types not yet created waits its turn.
    let mut created = Vec::new();
    let mut changed = Vec::new();
    let mut unchanged = Vec::new();
    let mut rounds = 0;
    while !types.is_empty() {
        rounds += 1;
        let existing = store::all_types()?;
        let (ready, waiting): (Vec<_>, Vec<_>) = types.into_iter().partition(|t| {
            rounds > 50
                || t.relations().all(|f| {
                    let target = f.target.as_deref().unwrap_or_default();
                    target == t.name || existing.contains_key(target)
                })
        });
        if ready.is_empty() {
            return Err(ApiError::new(
                422,
                "validation_failed",
                "the schema's types relate to types that are neither in the file nor on the site",
            ));
        }
        for t in ready {
            match existing.get(&t.name) {
                None => {
                    created.push(t.name.clone());
                    save_new_type(t)?;
                }
                Some(old) if *old == t => unchanged.push(t.name.clone()),
                Some(_) => {
                    changed.push(t.name.clone());
                    apply_type_change(t, false)?;
                }
            }
        }
        types = waiting;
    }
    Ok(Response::json(
        &json!({"created": created, "changed": changed, "unchanged": unchanged}),
    ))
}

// ---- entries: reading ----------------------------------------------------------------------

/// The locale a request asks for, checked against the type.
fn locale<'a>(req: &'a Request, ty: &'a ContentType) -> ApiResult<&'a str> {
    match req.query("locale") {
        None | Some("") => Ok(ty.default_locale()),
        Some(l) if ty.locales.iter().any(|x| x == l) => Ok(l),
        Some(l) => Err(ApiError::bad_query(format!(
            "locale: '{l}' is not a locale of '{}' ({})",
            ty.name,
            ty.locales.join(", ")
        ))),
    }
}

/// The view a read asks for and whether the caller may see it.
fn view(req: &Request, ty: &ContentType) -> ApiResult<(View, Grant)> {
    let read = access::require("read", &ty.name)?;
    match req.query("status") {
        None | Some("") | Some("published") => Ok((View::Published, read)),
        Some("draft") => {
            let preview = access::require("preview", &ty.name)?;
            Ok((
                View::Draft,
                Grant {
                    own: read.own.or(preview.own),
                },
            ))
        }
        Some(other) => Err(ApiError::bad_query(format!(
            "status: '{other}' is not 'published' or 'draft'"
        ))),
    }
}

/// How reads are shaped: fields, populate, view, locale, private fields.
struct Shape {
    view: View,
    locale: String,
    select: Option<Vec<String>>,
    populate: Populate,
    show_private: bool,
}

/// The API form of a stored entry; `fallback` is the default-locale document, whose values fill
/// localized fields this locale leaves empty. `None` when the view has no version (unpublished).
fn render(ty: &ContentType, s: &Stored, fallback: Option<&Stored>, shape: &Shape) -> Option<Value> {
    let version = match shape.view {
        View::Published => s.published.as_ref()?,
        View::Draft => &s.fields,
    };
    let mut fields = store::strip(version);
    if let Some(fb) = fallback {
        let fb_version = match shape.view {
            View::Published => fb.published.as_ref(),
            View::Draft => Some(&fb.fields),
        };
        if let Some(fbv) = fb_version {
            for f in ty.fields.iter().filter(|f| f.localized) {
                if fields.get(&f.name).is_none_or(Value::is_null)
                    && let Some(v) = fbv.get(&f.name)
                {
                    fields.insert(f.name.clone(), v.clone());
                }
            }
        }
    }
    let path = ty.path_of(&s.entry, &s.locale, &fields);
    if !shape.show_private {
        for f in ty.fields.iter().filter(|f| f.private) {
            fields.remove(&f.name);
        }
    }
    if let Some(select) = &shape.select {
        fields.retain(|k, _| select.contains(k) || shape.populate.0.contains_key(k));
    }
    let mut out = json!({
        "id": s.entry,
        "type": ty.name,
        "status": s.status,
        "locale": s.locale,
        "fields": fields,
        "created-at": time::format_ms(s.created_at),
        "updated-at": time::format_ms(s.updated_at),
        "published-at": s.published_at.map(time::format_ms),
        "created-by": s.created_by,
    });
    if let Some(path) = path {
        out["path"] = json!(path);
    }
    if let Some(stage) = s.stage_in(ty) {
        out["stage"] = json!(stage);
    }
    if s.scheduled_publish.is_some() || s.scheduled_unpublish.is_some() {
        out["scheduled"] = json!({
            "publish-at": s.scheduled_publish.map(time::format_ms),
            "unpublish-at": s.scheduled_unpublish.map(time::format_ms),
        });
    }
    Some(out)
}

/// Renders a page of documents of one type with locale fallback and population: one batched
/// read for the fallbacks and one per populated relation and level.
fn render_all(
    ty: &ContentType,
    docs: &[Stored],
    shape: &Shape,
    depth: u32,
) -> ApiResult<Vec<Value>> {
    let default = ty.default_locale();
    let needs_fallback = shape.locale != default && ty.fields.iter().any(|f| f.localized);
    let fallbacks: BTreeMap<String, Stored> = if needs_fallback {
        let ids: Vec<String> = docs
            .iter()
            .map(|d| store::doc_id(&d.entry, default))
            .collect();
        store::entries(&ty.name)
            .get_many(ids)?
            .into_iter()
            .flatten()
            .map(|d| (d.data.entry.clone(), d.data))
            .collect()
    } else {
        BTreeMap::new()
    };
    let mut out: Vec<Value> = docs
        .iter()
        .filter_map(|d| render(ty, d, fallbacks.get(&d.entry), shape))
        .collect();
    if depth < 2 {
        for (name, inner) in &shape.populate.0 {
            populate_field(ty, name, inner, &mut out, shape, depth)?;
        }
    }
    Ok(out)
}

fn populate_field(
    ty: &ContentType,
    name: &str,
    inner: &Populate,
    rendered: &mut [Value],
    shape: &Shape,
    depth: u32,
) -> ApiResult<()> {
    let Some(field) = ty.field(name) else {
        return Ok(());
    };
    let target_name = field.target.clone().unwrap_or_default();
    let target = if target_name == ty.name {
        ty.clone()
    } else {
        store::load_type(&target_name)?
    };
    let mut ids = BTreeSet::new();
    for e in rendered.iter() {
        match &e["fields"][name] {
            Value::String(s) => {
                ids.insert(s.clone());
            }
            Value::Array(a) => ids.extend(a.iter().filter_map(|v| v.as_str().map(String::from))),
            _ => {}
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    let locale = if target.locales.contains(&shape.locale) {
        shape.locale.clone()
    } else {
        target.default_locale().to_string()
    };
    let ids: Vec<String> = ids.into_iter().collect();
    let mut found: Vec<Stored> = Vec::new();
    for chunk in ids.chunks(1000) {
        let docs = store::entries(&target.name).get_many(
            chunk
                .iter()
                .map(|id| store::doc_id(id, &locale))
                .collect::<Vec<_>>(),
        )?;
        found.extend(docs.into_iter().flatten().map(|d| d.data));
    }
    let inner_shape = Shape {
        view: shape.view,
        locale,
        select: None,
        populate: inner.clone(),
        show_private: shape.show_private,
    };
    let by_id: BTreeMap<String, Value> = render_all(&target, &found, &inner_shape, depth + 1)?
        .into_iter()
        .map(|v| (v["id"].as_str().unwrap_or_default().to_string(), v))
        .collect();
    for e in rendered.iter_mut() {
        let v = &mut e["fields"][name];
        *v = match v.take() {
            Value::String(s) => by_id.get(&s).cloned().unwrap_or(Value::Null),
            Value::Array(a) => Value::Array(
                a.iter()
                    .filter_map(|x| x.as_str().and_then(|s| by_id.get(s)).cloned())
                    .collect(),
            ),
            other => other,
        };
    }
    Ok(())
}

fn shape(req: &Request, ty: &ContentType, view: View) -> ApiResult<Shape> {
    Ok(Shape {
        view,
        locale: locale(req, ty)?.to_string(),
        select: req
            .query("fields")
            .map(|f| query::fields(ty, f))
            .transpose()?,
        populate: match req.query("populate") {
            Some(p) => query::populate(ty, p)?,
            None => Populate::default(),
        },
        show_private: access::grant("update", &ty.name).is_some(),
    })
}

/// A JSON read with an ETag, `If-None-Match` → 304, and Cache-Control.
fn cached(req: &Request, value: &Value, public: bool) -> Response {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    conditional::cached_bytes(
        req,
        bytes,
        "application/json",
        &conditional::cache_control(public),
    )
}

fn is_public_read(view: View) -> bool {
    view == View::Published && ucms_sdk::auth::principal().is_anonymous()
}

fn list(req: &Request, type_name: &str) -> ApiResult<Response> {
    let ty = store::load_type(type_name)?;
    if req.query("preview").is_some() {
        return Err(ApiError::bad_query(format!(
            "preview: a preview token opens one entry: GET /api/content/{}/{{id}}?status=draft&preview=…",
            ty.name
        )));
    }
    let (view, grant) = view(req, &ty)?;
    let shape = shape(req, &ty, view)?;
    let mut conditions = vec![Filter::eq("locale", shape.locale.as_str())];
    if view == View::Published {
        conditions.push(Filter::eq("live", true));
    }
    if let Some(user) = &grant.own {
        conditions.push(Filter::eq("created-by", user.as_str()));
    }
    if let Some(tree) = query::bracket_tree(req.query_pairs(), "filters")? {
        conditions.push(query::build_filter(&ty, &tree, view, &shape.locale, 0)?);
    }
    let filter = Filter::all(conditions);
    let page_size = match req.query("page-size").or(req.query("pageSize")) {
        None => 25,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::bad_query("page-size: a number from 1 to 100"))?,
    };
    let page = match req.query("page") {
        None => 1,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::bad_query("page: a number from 1"))?,
    };
    let offset = (page - 1).saturating_mul(page_size);
    if offset > 10_000 {
        return Err(ApiError::bad_query(
            "page: offsets stop at 10,000 entries; use cursor pagination (meta.next-cursor) to go further",
        ));
    }
    // `cursor` (empty for the first page) asks for keyset pages: no total, no offset limit.
    let keyset = req.query("cursor").is_some();
    let cursor = req.query("cursor").filter(|c| !c.is_empty());
    let col = store::entries(&ty.name);

    let (docs, total, next): (Vec<Stored>, Option<u64>, Option<String>) =
        if let Some(q) = req.query("q").filter(|q| !q.trim().is_empty()) {
            if view == View::Draft {
                return Err(ApiError::bad_query(
                    "q: full-text search covers published versions; search without status=draft",
                ));
            }
            if ty.search_fields().is_empty() {
                return Err(ApiError::bad_query(format!(
                    "q: the type '{}' has no text fields to search",
                    ty.name
                )));
            }
            let found = col
                .search(q)
                .filter(filter)
                .limit(page_size)
                .offset(offset)
                .with_total()
                .fetch()?;
            let seen = u64::from(offset) + found.hits.len() as u64;
            let more = found.total.is_some_and(|t| seen < t);
            (
                found.hits.into_iter().map(|h| h.doc.data).collect(),
                found.total,
                more.then(|| format!("o{seen}")),
            )
        } else {
            let sort = match req.query("sort") {
                Some(s) => query::sort(&ty, s, view)?,
                None => vec![("created-at".to_string(), true)],
            };
            let mut q = col.query().filter(filter).limit(page_size);
            for (path, desc) in sort {
                q = q.sort_by(path, desc);
            }
            q = match (keyset, cursor) {
                (_, Some(c)) => q.after(c),
                (true, None) => q,
                (false, None) => q.offset(offset).with_total(),
            };
            let found = q.fetch()?;
            (
                found.documents.into_iter().map(|d| d.data).collect(),
                found.total,
                found.next_cursor,
            )
        };
    let data = render_all(&ty, &docs, &shape, 0)?;
    if ty.kind == Kind::Single {
        let entry = data.into_iter().next().ok_or_else(|| {
            ApiError::new(
                404,
                "entry_not_found",
                format!("the single type '{}' has no entry yet", ty.name),
            )
        })?;
        return Ok(cached(req, &json!({ "data": entry }), is_public_read(view)));
    }
    let mut meta = json!({"page-size": page_size, "next-cursor": next});
    if !keyset {
        meta["page"] = json!(page);
        meta["total"] = json!(total);
    }
    Ok(cached(
        req,
        &json!({"data": data, "meta": meta}),
        is_public_read(view),
    ))
}

/// The stored entry `id` (or the entry whose slug is `id`) in `locale`.
fn find(ty: &ContentType, id: &str, locale: &str, view: View) -> ApiResult<Doc<Stored>> {
    if let Some(d) = store::get(&ty.name, id, locale)? {
        return Ok(d);
    }
    if let Some(slug) = ty.slug_field() {
        let found = store::entries(&ty.name)
            .query()
            .filter(Filter::all([
                Filter::eq("locale", locale),
                Filter::eq(format!("{}.{}", view.prefix(), slug.name), id),
            ]))
            .first()?;
        if let Some(d) = found {
            return Ok(d);
        }
    }
    Err(store::not_found(&ty.name, id))
}

fn get(req: &Request, type_name: &str, id: &str) -> ApiResult<Response> {
    let ty = store::load_type(type_name)?;
    if let Some(token) = req.query("preview") {
        return get_preview(req, &ty, id, token);
    }
    let (view, grant) = view(req, &ty)?;
    let shape = shape(req, &ty, view)?;
    let doc = find(&ty, id, &shape.locale, view)?;
    grant.allows(doc.data.created_by.as_deref(), "read")?;
    let data = render_all(&ty, std::slice::from_ref(&doc.data), &shape, 0)?;
    let entry = data
        .into_iter()
        .next()
        .ok_or_else(|| store::not_found(&ty.name, id))?;
    Ok(cached(req, &json!({ "data": entry }), is_public_read(view)))
}

/// `GET /{type}/{id}?status=draft&preview=TOKEN`: the draft for whoever holds a valid token for
/// this entry, never cached.
fn get_preview(req: &Request, ty: &ContentType, id: &str, token: &str) -> ApiResult<Response> {
    if req.query("status") != Some("draft") {
        return Err(ApiError::bad_query(
            "preview: a preview token reads the draft; add status=draft",
        ));
    }
    if req.query("populate").is_some() {
        // Related entries' drafts are not the token's to show.
        return Err(ApiError::bad_query(
            "populate: a preview token shows one entry; read related entries by their own ids",
        ));
    }
    let mut shape = shape(req, ty, View::Draft)?;
    shape.show_private = false;
    let claims = crate::preview::verify(token, &ty.name, &shape.locale)?;
    let doc = match find(ty, id, &shape.locale, View::Draft) {
        Ok(d) if d.data.entry == claims.entry => d,
        Err(e) if id == claims.entry => return Err(e),
        _ => return Err(crate::preview::other_entry(&claims)),
    };
    let data = render_all(ty, std::slice::from_ref(&doc.data), &shape, 0)?;
    let entry = data
        .into_iter()
        .next()
        .ok_or_else(|| store::not_found(&ty.name, id))?;
    let bytes = serde_json::to_vec(&json!({ "data": entry })).unwrap_or_default();
    Ok(conditional::cached_bytes(
        req,
        bytes,
        "application/json",
        "no-store",
    ))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct PreviewInput {
    expires_in: Option<i64>,
    locale: Option<String>,
}

/// `POST /{type}/{id}/preview-token`: a signed token showing this entry's draft, for callers
/// who may change (`update`) or preview (`preview`) it.
fn preview_token(req: &Request, type_name: &str, id: &str) -> ApiResult<Response> {
    let ty = store::load_type(type_name)?;
    let grant = access::grant("update", &ty.name)
        .or_else(|| access::grant("preview", &ty.name))
        .ok_or_else(|| {
            let mut e = access::denied("update", &ty.name);
            e.message = format!("{} (or 'content.preview')", e.message.trim_end_matches('.'));
            e
        })?;
    let input: PreviewInput = if req.body().iter().all(u8::is_ascii_whitespace) {
        PreviewInput::default()
    } else {
        body(req)?
    };
    let docs = store::locales_of(&ty.name, id)?;
    let Some(first) = docs.first() else {
        return Err(store::not_found(&ty.name, id));
    };
    grant.allows(first.data.created_by.as_deref(), "preview")?;
    let mut errors = FieldErrors::new();
    let ttl = input.expires_in.unwrap_or(crate::preview::DEFAULT_TTL);
    if !(1..=crate::preview::MAX_TTL).contains(&ttl) {
        errors.insert(
            "expires-in".into(),
            format!(
                "must be 1 to {} seconds (a preview token is short-lived)",
                crate::preview::MAX_TTL
            ),
        );
    }
    if let Some(l) = &input.locale
        && !docs.iter().any(|d| &d.data.locale == l)
    {
        errors.insert("locale".into(), format!("the entry has no '{l}' version"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (token, expires) = crate::preview::issue(&ty.name, id, input.locale.as_deref(), ttl)?;
    let mut url = format!("/api/content/{}/{id}?status=draft&preview={token}", ty.name);
    if let Some(l) = &input.locale {
        url.push_str(&format!("&locale={l}"));
    }
    Ok(Response::json(&json!({
        "token": token, "expires-at": time::format_ms(expires), "url": url,
    }))
    .with_status(201)
    .with_header("cache-control", "no-store"))
}

// ---- entries: writing ----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryInput {
    fields: Map<String, Value>,
}

/// Normalizes datetimes (so they compare as text) and fills defaults and slugs.
fn prepare(ty: &ContentType, fields: &mut Map<String, Value>) {
    schema::complete(ty, fields);
    for f in ty.fields.iter().filter(|f| f.kind == FieldType::Datetime) {
        if let Some(Value::String(s)) = fields.get(&f.name)
            && let Some(ms) = time::parse_datetime(s)
        {
            fields.insert(f.name.clone(), Value::String(time::format_ms(ms)));
        }
    }
}

/// Runs the hook point on an entry's fields; the hooks may change them or refuse.
fn run_hook(
    point: &str,
    ty: &ContentType,
    id: &str,
    locale: &str,
    action: &str,
    fields: Map<String, Value>,
) -> ApiResult<Map<String, Value>> {
    let value =
        json!({"type": ty.name, "id": id, "locale": locale, "action": action, "fields": fields});
    let out = hooks::run_json(point, &value)?;
    match out.get("fields") {
        Some(Value::Object(m)) => Ok(m.clone()),
        _ => Err(ApiError::new(
            500,
            "hook_invalid",
            format!("a plugin joined to '{point}' left a value without 'fields'"),
        )),
    }
}

/// Validates `fields` for `locale`, with the default locale's values standing in for localized
/// fields a non-default locale leaves empty.
fn validate(
    ty: &ContentType,
    fields: &Map<String, Value>,
    fallback: Option<&Map<String, Value>>,
) -> ApiResult<()> {
    let mut merged = fields.clone();
    if let Some(fb) = fallback {
        for f in ty.fields.iter().filter(|f| f.localized) {
            if merged.get(&f.name).is_none_or(Value::is_null)
                && let Some(v) = fb.get(&f.name)
            {
                merged.insert(f.name.clone(), v.clone());
            }
        }
    }
    let mut errors: FieldErrors = schema::check_entry(ty, &merged);
    store::check_relations(ty, fields, &mut errors)?;
    crate::taxonomy::check_values(ty, fields, &mut errors)?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

fn create(req: &Request, type_name: &str) -> ApiResult<Response> {
    let ty = store::load_type(type_name)?;
    access::require("create", &ty.name)?;
    let locale = locale(req, &ty)?.to_string();
    if locale != ty.default_locale() {
        return Err(ApiError::bad_query(format!(
            "locale: create entries in the default locale '{}', then add '{locale}' with PUT …/{{id}}?locale={locale}",
            ty.default_locale()
        )));
    }
    let input: EntryInput = body(req)?;
    if ty.kind == Kind::Single
        && store::entries(&ty.name).count(Filter::eq("locale", locale.as_str()))? > 0
    {
        return Err(ApiError::new(
            409,
            "single_exists",
            format!(
                "'{}' is a single type and has its entry: change it with PUT",
                ty.name
            ),
        ));
    }
    let id = store::new_id(req.request_id());
    let mut fields = input.fields;
    prepare(&ty, &mut fields);
    let mut fields = run_hook("content.before-save", &ty, &id, &locale, "create", fields)?;
    prepare(&ty, &mut fields);
    validate(&ty, &fields, None)?;
    let now = time::now_ms();
    let published = (!ty.draft_and_publish).then(|| fields.clone());
    let stored = Stored {
        entry: id,
        locale,
        status: String::new(),
        live: false,
        published_at: published.as_ref().map(|_| now),
        published,
        fields,
        created_by: access::user_id(),
        created_at: now,
        updated_at: now,
        revisions: 0,
        scheduled_publish: None,
        scheduled_unpublish: None,
        stage: ty.workflow.as_ref().map(|w| w.first().to_string()),
    };
    let doc = store::save(&ty, stored, None, Action::Create, Vec::new())?;
    let shape = full_shape(&ty, &doc.data.locale);
    let entry = render(&ty, &doc.data, None, &shape);
    Ok(Response::json(&json!({ "data": entry })).with_status(201))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkInput {
    entries: Vec<EntryInput>,
    #[serde(default)]
    publish: bool,
}

/// Two writes per entry (the entry and its first revision) within a batch's 1000.
const MAX_BULK: usize = 400;

/// `POST /{type}/bulk`: creates up to 400 entries (in the default locale) in one transaction,
/// published at once with `"publish": true`. Each is validated and runs `content.before-save`
/// like a single create; one `content.entries.imported` event names them all.
fn bulk(req: &Request, type_name: &str) -> ApiResult<Response> {
    let ty = store::load_type(type_name)?;
    access::require("create", &ty.name)?;
    let input: BulkInput = body(req)?;
    if input.publish {
        access::require("publish", &ty.name)?;
        if let Some(w) = &ty.workflow {
            return Err(ApiError::new(
                409,
                "stage_required",
                format!(
                    "'{}' has review stages: entries are published from the last stage '{}', so a bulk create can't publish them",
                    ty.name,
                    w.last()
                ),
            ));
        }
    }
    if input.entries.is_empty() || input.entries.len() > MAX_BULK {
        return Err(ApiError::new(
            422,
            "validation_failed",
            format!("a bulk create takes 1 to {MAX_BULK} entries"),
        ));
    }
    if ty.kind == Kind::Single {
        return Err(ApiError::new(
            409,
            "single_exists",
            "single types have one entry: use POST",
        ));
    }
    let locale = ty.default_locale().to_string();
    let now = time::now_ms();
    let by = access::user_id();
    let mut errors = FieldErrors::new();
    let mut stored = Vec::new();
    let mut all_fields = Map::new();
    for (i, e) in input.entries.into_iter().enumerate() {
        let id = store::new_id(&format!("{}-{i}", req.request_id()));
        let mut fields = e.fields;
        prepare(&ty, &mut fields);
        let mut fields = run_hook("content.before-save", &ty, &id, &locale, "create", fields)?;
        prepare(&ty, &mut fields);
        let mut entry_errors = schema::check_entry(&ty, &fields);
        crate::taxonomy::check_values(&ty, &fields, &mut entry_errors)?;
        for (k, v) in entry_errors {
            errors.insert(format!("entries.{i}.{k}"), v);
        }
        // Relations are checked together below: gather every id per field.
        for f in ty.relations() {
            let ids = match fields.get(&f.name) {
                Some(Value::String(s)) => vec![Value::String(s.clone())],
                Some(Value::Array(a)) => a.clone(),
                _ => continue,
            };
            let slot = all_fields
                .entry(f.name.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = slot {
                for id in ids {
                    if !a.contains(&id) {
                        a.push(id);
                    }
                }
            }
        }
        let published = (input.publish || !ty.draft_and_publish).then(|| fields.clone());
        stored.push(Stored {
            entry: id,
            locale: locale.clone(),
            status: String::new(),
            live: false,
            published_at: published.as_ref().map(|_| now),
            published,
            fields,
            created_by: by.clone(),
            created_at: now,
            updated_at: now,
            revisions: 0,
            scheduled_publish: None,
            scheduled_unpublish: None,
            stage: ty.workflow.as_ref().map(|w| w.first().to_string()),
        });
    }
    // One existence check per relation field for the whole batch.
    let mut relation_errors = FieldErrors::new();
    let as_many: Map<String, Value> = all_fields;
    let mut probe = ty.clone();
    for f in probe.fields.iter_mut() {
        if f.kind == FieldType::Relation {
            f.cardinality = Some(schema::Cardinality::ManyToMany);
        }
    }
    store::check_relations(&probe, &as_many, &mut relation_errors)?;
    for (k, v) in relation_errors {
        errors.insert(format!("entries.*.{k}"), v);
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let ids = store::save_many(&ty, stored)?;
    Ok(Response::json(&json!({"created": ids.len(), "ids": ids})).with_status(201))
}

fn full_shape(ty: &ContentType, locale: &str) -> Shape {
    let _ = ty;
    Shape {
        view: View::Draft,
        locale: locale.into(),
        select: None,
        populate: Populate::default(),
        show_private: true,
    }
}

/// The entry to change and the caller's grant, checked against "own".
fn for_change(
    req: &Request,
    ty: &ContentType,
    id: &str,
    permission: &str,
) -> ApiResult<(Grant, Option<Doc<Stored>>, String)> {
    let grant = access::require(permission, &ty.name)?;
    let locale = locale(req, ty)?.to_string();
    let doc = store::get(&ty.name, id, &locale)?;
    if let Some(d) = &doc {
        grant.allows(d.data.created_by.as_deref(), permission)?;
    }
    Ok((grant, doc, locale))
}

fn update(req: &Request, type_name: &str, id: &str) -> ApiResult<Response> {
    let ty = store::load_type(type_name)?;
    let (grant, doc, locale) = for_change(req, &ty, id, "update")?;
    let input: EntryInput = body(req)?;
    let default = ty.default_locale().to_string();
    let base = if locale == default {
        None
    } else {
        store::get(&ty.name, id, &default)?
    };
    let (current, expected) = match doc {
        Some(d) => (d.data, Some(d.revision)),
        None => {
            // A new localization of an existing entry: it starts from the default locale's
            // shared (non-localized) values.
            let Some(base) = &base else {
                return Err(store::not_found(&ty.name, id));
            };
            grant.allows(base.data.created_by.as_deref(), "update")?;
            let shared: Map<String, Value> = store::strip(&base.data.fields)
                .into_iter()
                .filter(|(k, _)| ty.field(k).is_some_and(|f| !f.localized))
                .collect();
            let mut s = base.data.clone();
            s.locale = locale.clone();
            s.fields = shared;
            s.published = None;
            s.published_at = None;
            s.revisions = 0;
            s.scheduled_publish = None;
            s.scheduled_unpublish = None;
            (s, None)
        }
    };
    let mut fields = input.fields;
    if let Some(base) = &base {
        // Shared (non-localized) fields a translation leaves out keep the entry's values.
        for f in ty.fields.iter().filter(|f| !f.localized) {
            if !fields.contains_key(&f.name)
                && let Some(v) = base.data.fields.get(&f.name)
            {
                fields.insert(f.name.clone(), v.clone());
            }
        }
    }
    prepare(&ty, &mut fields);
    let mut fields = run_hook("content.before-save", &ty, id, &locale, "update", fields)?;
    prepare(&ty, &mut fields);
    validate(&ty, &fields, base.as_ref().map(|b| &b.data.fields))?;
    write_fields(&ty, current, expected, fields, Action::Update)
}

/// Saves new draft fields (published at once for types without drafts), copying shared fields
/// to the entry's other locales.
fn write_fields(
    ty: &ContentType,
    mut current: Stored,
    expected: Option<u64>,
    fields: Map<String, Value>,
    action: Action,
) -> ApiResult<Response> {
    let shared: Map<String, Value> = fields
        .iter()
        .filter(|(k, _)| ty.field(k).is_some_and(|f| !f.localized))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut extra = Vec::new();
    if !shared.is_empty() && ty.locales.len() > 1 {
        for other in store::locales_of(&ty.name, &current.entry)? {
            if other.data.locale != current.locale
                && shared
                    .iter()
                    .any(|(k, v)| other.data.fields.get(k) != Some(v))
            {
                let mut patch = shared.clone();
                let mut lc = Map::new();
                let mut rev = Map::new();
                for (k, v) in &shared {
                    if let (Some(s), true) = (
                        v.as_str(),
                        ty.field(k).is_some_and(|f| f.kind.has_shadows()),
                    ) {
                        lc.insert(k.clone(), Value::String(s.to_lowercase()));
                        rev.insert(k.clone(), Value::String(s.chars().rev().collect()));
                    }
                }
                if !lc.is_empty() {
                    patch.insert("__lc".into(), Value::Object(lc));
                    patch.insert("__rev".into(), Value::Object(rev));
                }
                // Shared taxonomy fields' ancestors (merged into the locale's own `__tax`).
                crate::taxonomy::shadow(ty, &mut patch)?;
                extra.push((other.id, patch));
            }
        }
    }
    if let Some(w) = &ty.workflow
        && current.stage_in(ty).as_deref() == Some(w.last())
        && store::strip(&current.fields) != fields
    {
        // An approved draft that changes needs approval again.
        current.stage = Some(w.first().to_string());
    }
    current.fields = fields;
    if !ty.draft_and_publish {
        current.published = Some(current.fields.clone());
        current.published_at = Some(time::now_ms());
    }
    let doc = store::save(ty, current, expected, action, extra)?;
    let entry = render(ty, &doc.data, None, &full_shape(ty, &doc.data.locale));
    Ok(
        Response::json(&json!({ "data": entry })).with_status(if expected.is_none() {
            201
        } else {
            200
        }),
    )
}

fn delete(req: &Request, type_name: &str, id: &str) -> ApiResult<Response> {
    let ty = store::load_type(type_name)?;
    let grant = access::require("delete", &ty.name)?;
    let docs = store::locales_of(&ty.name, id)?;
    let Some(first) = docs.first() else {
        return Err(store::not_found(&ty.name, id));
    };
    grant.allows(first.data.created_by.as_deref(), "delete")?;
    let only = match req.query("locale") {
        Some(l) => Some(locale(req, &ty).map(|_| l)?),
        None => None,
    };
    store::delete_entry(&ty, id, only)?;
    Ok(Response::no_content())
}

fn publish(req: &Request, type_name: &str, id: &str, on: bool) -> ApiResult<Response> {
    let ty = store::load_type(type_name)?;
    let (_, doc, locale) = for_change(req, &ty, id, "publish")?;
    let doc = doc.ok_or_else(|| store::not_found(&ty.name, id))?;
    let mut s = doc.data;
    if on
        && let Some(w) = &ty.workflow
        && s.stage_in(&ty).as_deref() != Some(w.last())
    {
        return Err(ApiError::new(
            409,
            "stage_required",
            format!(
                "the entry '{id}' is in the review stage '{}'; publishing needs the last stage '{}': move it with POST /api/content/{}/{id}/stage",
                s.stage_in(&ty).unwrap_or_default(),
                w.last(),
                ty.name
            ),
        ));
    }
    let action = if on {
        let fields = run_hook(
            "content.before-publish",
            &ty,
            id,
            &locale,
            "publish",
            store::strip(&s.fields),
        )?;
        if fields != store::strip(&s.fields) {
            let default = ty.default_locale().to_string();
            let base = if locale == default {
                None
            } else {
                store::get(&ty.name, id, &default)?
            };
            validate(&ty, &fields, base.as_ref().map(|b| &b.data.fields))?;
            s.fields = fields;
        }
        s.published = Some(store::strip(&s.fields));
        s.published_at = Some(time::now_ms());
        s.scheduled_publish = None;
        Action::Publish
    } else {
        if s.published.is_none() {
            return Err(ApiError::new(
                409,
                "not_published",
                format!("the entry '{id}' is not published"),
            ));
        }
        s.published = None;
        s.scheduled_unpublish = None;
        Action::Unpublish
    };
    let doc = store::save(&ty, s, Some(doc.revision), action, Vec::new())?;
    let entry = render(&ty, &doc.data, None, &full_shape(&ty, &locale));
    Ok(Response::json(&json!({ "data": entry })))
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ScheduleInput {
    #[serde(default, with = "double_option")]
    publish_at: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    unpublish_at: Option<Option<String>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

fn schedule(req: &Request, type_name: &str, id: &str) -> ApiResult<Response> {
    let ty = store::load_type(type_name)?;
    let (_, doc, locale) = for_change(req, &ty, id, "publish")?;
    let doc = doc.ok_or_else(|| store::not_found(&ty.name, id))?;
    let input: ScheduleInput = body(req)?;
    let parse =
        |key: &str, v: Option<Option<String>>, current: Option<i64>| -> ApiResult<Option<i64>> {
            match v {
                None => Ok(current),
                Some(None) => Ok(None),
                Some(Some(s)) => time::parse_datetime(&s).map(Some).ok_or_else(|| {
                    ApiError::validation(
                        [(
                            key.to_string(),
                            "must be an RFC 3339 time like 2026-01-31T12:00:00Z".to_string(),
                        )]
                        .into(),
                    )
                }),
            }
        };
    let mut s = doc.data;
    s.scheduled_publish = parse("publish-at", input.publish_at, s.scheduled_publish)?;
    s.scheduled_unpublish = parse("unpublish-at", input.unpublish_at, s.scheduled_unpublish)?;
    let saved = store::entries(&ty.name).replace(&doc.id, &s, Some(doc.revision))?;
    let entry = render(&ty, &saved.data, None, &full_shape(&ty, &locale));
    Ok(Response::json(&json!({ "data": entry })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageInput {
    stage: String,
}

/// `POST /{type}/{id}/stage`: moves the entry (in `?locale=`) into another review stage, with the
/// permission that stage asks for; recorded as a revision and a `content.entry.stage-changed`
/// event.
fn change_stage(req: &Request, type_name: &str, id: &str) -> ApiResult<Response> {
    let ty = store::load_type(type_name)?;
    let Some(w) = ty.workflow.clone() else {
        return Err(ApiError::new(
            409,
            "no_workflow",
            format!(
                "the type '{}' has no review stages: give it a \"workflow\" with PUT /api/content/types/{}",
                ty.name, ty.name
            ),
        ));
    };
    let input: StageInput = body(req)?;
    let Some(stage) = w.stage(&input.stage) else {
        return Err(ApiError::validation(
            [(
                "stage".to_string(),
                format!(
                    "must be one of the stages of '{}': {}",
                    ty.name,
                    w.names().join(", ")
                ),
            )]
            .into(),
        ));
    };
    let permission = stage.permission.as_deref().unwrap_or("update");
    let grant = access::grant_stage(permission, &ty.name, &stage.name).ok_or_else(|| {
        if ucms_sdk::auth::principal().is_anonymous() {
            access::denied(permission, &ty.name)
        } else {
            ApiError::new(
                403,
                "forbidden",
                format!(
                    "moving an entry of '{}' into the stage '{}' needs the 'content.{permission}' permission (unconditional, or with the condition stage-{})",
                    ty.name, stage.name, stage.name
                ),
            )
        }
    })?;
    let locale = locale(req, &ty)?.to_string();
    let doc = store::get(&ty.name, id, &locale)?.ok_or_else(|| store::not_found(&ty.name, id))?;
    grant.allows(doc.data.created_by.as_deref(), permission)?;
    let from = doc.data.stage_in(&ty);
    if from.as_deref() == Some(stage.name.as_str()) {
        let entry = render(&ty, &doc.data, None, &full_shape(&ty, &locale));
        return Ok(Response::json(&json!({ "data": entry })));
    }
    let mut s = doc.data;
    s.stage = Some(stage.name.clone());
    let saved = store::save_from(&ty, s, Some(doc.revision), Action::Stage, Vec::new(), from)?;
    let entry = render(&ty, &saved.data, None, &full_shape(&ty, &locale));
    Ok(Response::json(&json!({ "data": entry })))
}

// ---- revisions -------------------------------------------------------------------------------

fn list_revisions(req: &Request, type_name: &str, id: &str) -> ApiResult<Response> {
    let ty = store::load_type(type_name)?;
    let (_, doc, locale) = for_change(req, &ty, id, "update")?;
    doc.ok_or_else(|| store::not_found(&ty.name, id))?;
    let page = store::revisions()
        .query()
        .filter(Filter::all([
            Filter::eq("entry", id),
            Filter::eq("locale", locale.as_str()),
        ]))
        .sort_desc("n")
        .limit(100)
        .fetch()?;
    let data: Vec<Value> = page
        .documents
        .iter()
        .map(|d| {
            let mut r = json!({"n": d.data.n, "action": d.data.action, "author": d.data.author, "at": time::format_ms(d.data.at)});
            if let Some(stage) = &d.data.stage {
                r["stage"] = json!(stage);
            }
            r
        })
        .collect();
    Ok(Response::json(&json!({ "data": data })))
}

fn revision_n(n: &str) -> ApiResult<u64> {
    n.parse::<u64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::bad_query(format!("'{n}' is not a revision number (1, 2, …)")))
}

fn load_revision(ty: &ContentType, id: &str, locale: &str, n: u64) -> ApiResult<store::Revision> {
    store::revisions()
        .get(&format!("{}.{n}", store::doc_id(id, locale)))?
        .map(|d| d.data)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "revision_not_found",
                format!(
                    "the entry '{id}' of '{}' has no revision {n} in this locale",
                    ty.name
                ),
            )
        })
}

fn get_revision(req: &Request, type_name: &str, id: &str, n: &str) -> ApiResult<Response> {
    let ty = store::load_type(type_name)?;
    let (_, doc, locale) = for_change(req, &ty, id, "update")?;
    doc.ok_or_else(|| store::not_found(&ty.name, id))?;
    let n = revision_n(n)?;
    let rev = load_revision(&ty, id, &locale, n)?;
    let before = if n > 1 {
        load_revision(&ty, id, &locale, n - 1)
            .map(|r| r.fields)
            .unwrap_or_default()
    } else {
        Map::new()
    };
    Ok(Response::json(&json!({
        "n": rev.n, "action": rev.action, "author": rev.author, "at": time::format_ms(rev.at),
        "fields": rev.fields, "diff": store::diff(&before, &rev.fields),
    })))
}

fn restore(req: &Request, type_name: &str, id: &str, n: &str) -> ApiResult<Response> {
    let ty = store::load_type(type_name)?;
    let (_, doc, locale) = for_change(req, &ty, id, "update")?;
    let doc = doc.ok_or_else(|| store::not_found(&ty.name, id))?;
    let rev = load_revision(&ty, id, &locale, revision_n(n)?)?;
    // The type may have changed since: keep only fields it still has, and validate.
    let mut fields: Map<String, Value> = rev
        .fields
        .into_iter()
        .filter(|(k, _)| ty.field(k).is_some())
        .collect();
    prepare(&ty, &mut fields);
    let default = ty.default_locale().to_string();
    let base = if locale == default {
        None
    } else {
        store::get(&ty.name, id, &default)?
    };
    validate(&ty, &fields, base.as_ref().map(|b| &b.data.fields))?;
    write_fields(&ty, doc.data, Some(doc.revision), fields, Action::Restore)
}
