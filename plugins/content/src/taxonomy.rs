//! Taxonomy: vocabularies of hierarchical terms (categories, tags), referenced by `taxonomy`
//! fields and filtered with `$under` (a term or any of its descendants).
//!
//! - `vocabularies`: one document per vocabulary (id = its name).
//! - `terms`: one document per term (id `{vocabulary}.{slug}`) with its `parent` and its
//!   `ancestors` (root first), kept up to date when a term moves, so a term's subtree is one
//!   query (`ancestors` contains it) and a cycle is one look at the new parent's ancestors.
//! - Each entry version keeps, beside its values, `__tax.{field}`: the terms it holds and all
//!   their ancestors, written with the entry (and rewritten when a term above them moves), so
//!   `$under` is one `contains` in the entries query.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use ucms_sdk::documents::{Batch, Collection, Doc, Filter};
use ucms_sdk::{Request, Response};

use crate::access;
use crate::api::body;
use crate::schema::{self, ContentType, FieldErrors, FieldType};
use crate::store;
use crate::time;
use crate::{ApiError, ApiResult};

/// Terms per vocabulary, and how many entry versions a term move may re-index in one batch.
const MAX_TERMS: u32 = 1000;
const MAX_REINDEX: usize = 400;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Vocabulary {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Whether terms may have parents (categories) or not (tags).
    #[serde(default = "yes")]
    pub hierarchical: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Term {
    pub vocabulary: String,
    pub slug: String,
    pub name: String,
    pub parent: Option<String>,
    /// The parent's ancestors and the parent, root first.
    pub ancestors: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub fn vocabularies() -> Collection<Vocabulary> {
    Collection::new("vocabularies")
}

pub fn terms() -> Collection<Term> {
    Collection::new("terms")
}

fn term_id(vocabulary: &str, slug: &str) -> String {
    format!("{vocabulary}.{slug}")
}

fn may_read() -> ApiResult<()> {
    if access::any("read") || access::any("schema") || access::any("taxonomy") {
        Ok(())
    } else {
        Err(access::denied("read", "taxonomies"))
    }
}

fn may_write() -> ApiResult<()> {
    if access::grant("taxonomy", "taxonomies").is_some()
        || access::grant("schema", "taxonomies").is_some()
    {
        Ok(())
    } else if ucms_sdk::auth::principal().is_anonymous() {
        Err(access::denied("taxonomy", "taxonomies"))
    } else {
        Err(ApiError::new(
            403,
            "forbidden",
            "changing vocabularies and terms needs the 'content.taxonomy' (or 'content.schema') permission",
        ))
    }
}

pub fn load_vocabulary(name: &str) -> ApiResult<Vocabulary> {
    vocabularies().get(name)?.map(|d| d.data).ok_or_else(|| {
        ApiError::new(
            404,
            "vocabulary_not_found",
            format!("there is no vocabulary '{name}': GET /api/content/taxonomies lists them"),
        )
    })
}

fn load_term(vocabulary: &str, slug: &str) -> ApiResult<Doc<Term>> {
    terms().get(&term_id(vocabulary, slug))?.ok_or_else(|| {
        ApiError::new(
            404,
            "term_not_found",
            format!("the vocabulary '{vocabulary}' has no term '{slug}'"),
        )
    })
}

fn all_terms(vocabulary: &str) -> ApiResult<Vec<Term>> {
    Ok(terms()
        .query()
        .filter(Filter::eq("vocabulary", vocabulary))
        .sort("created-at")
        .limit(MAX_TERMS)
        .fetch()?
        .documents
        .into_iter()
        .map(|d| d.data)
        .collect())
}

/// The terms below `slug` (not itself).
fn descendants(vocabulary: &str, slug: &str) -> ApiResult<Vec<Doc<Term>>> {
    Ok(terms()
        .query()
        .filter(Filter::all([
            Filter::eq("vocabulary", vocabulary),
            Filter::contains("ancestors", slug),
        ]))
        .limit(MAX_TERMS)
        .fetch()?
        .documents)
}

/// Checks that `slug` is a term of `vocabulary` (for a `$under` filter).
pub fn require_term(vocabulary: &str, slug: &str, param: &str) -> ApiResult<()> {
    if terms().get(&term_id(vocabulary, slug))?.is_none() {
        return Err(ApiError::bad_query(format!(
            "{param}: '{slug}' is not a term of the vocabulary '{vocabulary}'"
        )));
    }
    Ok(())
}

/// Ancestors of terms that differ from the stored ones (a move not yet committed), by
/// (vocabulary, slug).
type Overrides = std::collections::BTreeMap<(String, String), Vec<String>>;

/// Sets `fields.__tax` to each taxonomy field's terms and all their ancestors (`null` for a field
/// set to null, so a merge patch clears it). Nothing for types without taxonomy fields.
pub fn shadow(ty: &ContentType, fields: &mut Map<String, Value>) -> ApiResult<()> {
    shadow_with(ty, fields, &Overrides::new())
}

fn shadow_with(
    ty: &ContentType,
    fields: &mut Map<String, Value>,
    overrides: &Overrides,
) -> ApiResult<()> {
    let mut tax = Map::new();
    for f in ty.fields.iter().filter(|f| f.kind == FieldType::Taxonomy) {
        let slugs: Vec<String> = match fields.get(&f.name) {
            None => continue,
            Some(Value::Null) => {
                tax.insert(f.name.clone(), Value::Null);
                continue;
            }
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            Some(_) => continue,
        };
        let vocabulary = f.vocabulary.clone().unwrap_or_default();
        let found = if slugs.is_empty() {
            Vec::new()
        } else {
            terms().get_many(
                slugs
                    .iter()
                    .map(|s| term_id(&vocabulary, s))
                    .collect::<Vec<_>>(),
            )?
        };
        let mut all: Vec<String> = Vec::new();
        for (slug, doc) in slugs
            .iter()
            .zip(found.iter().chain(std::iter::repeat(&None)))
        {
            let ancestors = overrides
                .get(&(vocabulary.clone(), slug.clone()))
                .cloned()
                .or_else(|| doc.as_ref().map(|d| d.data.ancestors.clone()))
                .unwrap_or_default();
            for s in ancestors.into_iter().chain([slug.clone()]) {
                if !all.contains(&s) {
                    all.push(s);
                }
            }
        }
        tax.insert(f.name.clone(), json!(all));
    }
    if !tax.is_empty() {
        fields.insert("__tax".into(), Value::Object(tax));
    }
    Ok(())
}

fn render(t: &Term) -> Value {
    json!({
        "slug": t.slug, "name": t.name, "parent": t.parent, "ancestors": t.ancestors,
        "created-at": time::format_ms(t.created_at), "updated-at": time::format_ms(t.updated_at),
    })
}

/// Routes below `/taxonomies`.
pub fn route(req: &Request) -> ApiResult<Response> {
    let p = |name: &str| req.param(name).unwrap_or_default();
    match (req.method(), req.route()) {
        ("GET", "/taxonomies") => {
            may_read()?;
            let page = vocabularies().query().limit(1000).fetch()?;
            let data: Vec<Vocabulary> = page.documents.into_iter().map(|d| d.data).collect();
            Ok(Response::json(&json!({ "data": data })))
        }
        ("POST", "/taxonomies") => create_vocabulary(req),
        ("GET", "/taxonomies/{vocabulary}") => {
            may_read()?;
            let v = load_vocabulary(p("vocabulary"))?;
            let list: Vec<Value> = all_terms(&v.name)?.iter().map(render).collect();
            let mut out = serde_json::to_value(&v)?;
            out["terms"] = Value::Array(list);
            Ok(Response::json(&out))
        }
        ("DELETE", "/taxonomies/{vocabulary}") => delete_vocabulary(p("vocabulary")),
        ("POST", "/taxonomies/{vocabulary}/terms") => create_term(req, p("vocabulary")),
        ("GET", "/taxonomies/{vocabulary}/terms/{term}") => {
            may_read()?;
            let t = load_term(p("vocabulary"), p("term"))?;
            let mut out = render(&t.data);
            out["children"] = json!(
                terms()
                    .query()
                    .filter(Filter::all([
                        Filter::eq("vocabulary", p("vocabulary")),
                        Filter::eq("parent", p("term")),
                    ]))
                    .limit(MAX_TERMS)
                    .fetch()?
                    .documents
                    .iter()
                    .map(|d| d.data.slug.clone())
                    .collect::<Vec<_>>()
            );
            Ok(Response::json(&out))
        }
        ("PUT", "/taxonomies/{vocabulary}/terms/{term}") => {
            update_term(req, p("vocabulary"), p("term"))
        }
        ("DELETE", "/taxonomies/{vocabulary}/terms/{term}") => {
            delete_term(req, p("vocabulary"), p("term"))
        }
        (m, r) => Err(ApiError::new(
            404,
            "not_found",
            format!("{m} {r} is not a route of the content plugin"),
        )),
    }
}

fn create_vocabulary(req: &Request) -> ApiResult<Response> {
    may_write()?;
    let v: Vocabulary = serde_json::from_value(body::<Value>(req)?).map_err(|e| {
        ApiError::new(
            422,
            "validation_failed",
            format!("the vocabulary is not valid: {e}"),
        )
    })?;
    if !schema::valid_name(&v.name) {
        return Err(ApiError::validation(
            [(
                "name".to_string(),
                "must be 1-40 lower-case letters, digits and dashes, starting with a letter"
                    .to_string(),
            )]
            .into(),
        ));
    }
    if vocabularies().get(&v.name)?.is_some() {
        return Err(ApiError::new(
            409,
            "vocabulary_exists",
            format!("the vocabulary '{}' exists", v.name),
        ));
    }
    vocabularies().insert_with_id(&v.name, &v)?;
    Ok(Response::json(&v).with_status(201))
}

/// Types whose taxonomy fields use `vocabulary`: (type, field, multiple).
fn users_of(vocabulary: &str) -> ApiResult<Vec<(ContentType, String, bool)>> {
    let mut out = Vec::new();
    for (_, ty) in store::all_types()? {
        for f in &ty.fields {
            if f.kind == FieldType::Taxonomy && f.vocabulary.as_deref() == Some(vocabulary) {
                out.push((ty.clone(), f.name.clone(), f.multiple));
            }
        }
    }
    Ok(out)
}

fn delete_vocabulary(name: &str) -> ApiResult<Response> {
    may_write()?;
    load_vocabulary(name)?;
    if let Some((ty, field, _)) = users_of(name)?.first() {
        return Err(ApiError::new(
            409,
            "vocabulary_in_use",
            format!(
                "the field '{field}' of the type '{}' uses the vocabulary '{name}': remove that field first",
                ty.name
            ),
        ));
    }
    let n = store::purge(&terms(), Some(Filter::eq("vocabulary", name)))?;
    vocabularies().delete(name, None)?;
    Ok(Response::json(&json!({"deleted": name, "terms": n})))
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct TermInput {
    #[serde(default)]
    slug: Option<String>,
    name: String,
    #[serde(default)]
    parent: Option<String>,
}

/// Checks a term's name and parent; the parent's ancestors then the parent (the new term's
/// ancestors). `moving`: the term being re-parented (its subtree can't become its parent).
fn check_term(
    v: &Vocabulary,
    input: &TermInput,
    moving: Option<&str>,
    errors: &mut FieldErrors,
) -> ApiResult<Vec<String>> {
    if input.name.trim().is_empty() || input.name.chars().count() > 100 || input.name.contains('\n')
    {
        errors.insert("name".into(), "is one line of 1-100 characters".into());
    }
    let Some(parent) = &input.parent else {
        return Ok(Vec::new());
    };
    if !v.hierarchical {
        errors.insert(
            "parent".into(),
            format!(
                "the vocabulary '{}' is flat (hierarchical: false): its terms have no parents",
                v.name
            ),
        );
        return Ok(Vec::new());
    }
    let Some(p) = terms().get(&term_id(&v.name, parent))? else {
        errors.insert(
            "parent".into(),
            format!("'{parent}' is not a term of the vocabulary '{}'", v.name),
        );
        return Ok(Vec::new());
    };
    if let Some(m) = moving
        && (parent == m || p.data.ancestors.iter().any(|a| a == m))
    {
        errors.insert(
            "parent".into(),
            format!("'{parent}' is '{m}' or below it: a term can't be its own ancestor"),
        );
        return Ok(Vec::new());
    }
    let mut ancestors = p.data.ancestors.clone();
    ancestors.push(parent.clone());
    Ok(ancestors)
}

fn create_term(req: &Request, vocabulary: &str) -> ApiResult<Response> {
    may_write()?;
    let v = load_vocabulary(vocabulary)?;
    let input: TermInput = body(req)?;
    let mut errors = FieldErrors::new();
    let slug = input
        .slug
        .clone()
        .unwrap_or_else(|| schema::slugify(&input.name));
    if !schema::valid_slug(&slug) || slug.len() > 100 {
        errors.insert(
            "slug".into(),
            "must be a slug of at most 100 characters: lower-case letters, digits and inner dashes"
                .into(),
        );
    }
    let ancestors = check_term(&v, &input, None, &mut errors)?;
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if terms().get(&term_id(&v.name, &slug))?.is_some() {
        return Err(ApiError::new(
            409,
            "term_exists",
            format!("the vocabulary '{}' has a term '{slug}'", v.name),
        )
        .with("fields", json!({"slug": "another term has it"})));
    }
    if terms().count(Filter::eq("vocabulary", v.name.as_str()))? >= u64::from(MAX_TERMS) {
        return Err(ApiError::new(
            409,
            "too_many_terms",
            format!("a vocabulary holds at most {MAX_TERMS} terms"),
        ));
    }
    let now = time::now_ms();
    let term = Term {
        vocabulary: v.name.clone(),
        slug: slug.clone(),
        name: input.name.trim().to_string(),
        parent: input.parent.clone(),
        ancestors,
        created_at: now,
        updated_at: now,
    };
    terms().insert_with_id(&term_id(&v.name, &slug), &term)?;
    Ok(Response::json(&render(&term)).with_status(201))
}

/// Renames a term or moves it (with its subtree) under another parent; the slug stays.
fn update_term(req: &Request, vocabulary: &str, slug: &str) -> ApiResult<Response> {
    may_write()?;
    let v = load_vocabulary(vocabulary)?;
    let doc = load_term(vocabulary, slug)?;
    let input: TermInput = body(req)?;
    let mut errors = FieldErrors::new();
    if input.slug.as_deref().is_some_and(|s| s != slug) {
        errors.insert(
            "slug".into(),
            "can't be changed (entries refer to it): create a new term".into(),
        );
    }
    let ancestors = check_term(&v, &input, Some(slug), &mut errors)?;
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut term = doc.data.clone();
    term.name = input.name.trim().to_string();
    term.updated_at = time::now_ms();
    let mut batch = Batch::new();
    if term.ancestors != ancestors {
        // The subtree moves along: each descendant's ancestors start with the new path.
        for d in descendants(vocabulary, slug)? {
            let mut t = d.data;
            let below: Vec<String> = t
                .ancestors
                .iter()
                .skip_while(|a| a.as_str() != slug)
                .cloned()
                .collect();
            t.ancestors = ancestors.iter().cloned().chain(below).collect();
            t.updated_at = term.updated_at;
            batch = batch.replace(&terms(), &d.id, &t, Some(d.revision));
        }
    }
    let moved = term.ancestors != ancestors;
    term.parent = input.parent.clone();
    term.ancestors = ancestors.clone();
    batch = batch.replace(&terms(), &doc.id, &term, Some(doc.revision));
    if moved {
        batch = reindex(batch, vocabulary, slug, &ancestors)?;
    }
    batch.commit()?;
    Ok(Response::json(&render(&term)))
}

/// Adds to `batch` the rewrite of `__tax` of every entry version holding `slug` or a term below
/// it, with the subtree's new ancestors (the term now under `ancestors`).
fn reindex(
    mut batch: Batch,
    vocabulary: &str,
    slug: &str,
    ancestors: &[String],
) -> ApiResult<Batch> {
    let mut overrides = Overrides::new();
    overrides.insert(
        (vocabulary.to_string(), slug.to_string()),
        ancestors.to_vec(),
    );
    for d in descendants(vocabulary, slug)? {
        let below: Vec<String> = d
            .data
            .ancestors
            .iter()
            .skip_while(|a| a.as_str() != slug)
            .cloned()
            .collect();
        overrides.insert(
            (vocabulary.to_string(), d.data.slug.clone()),
            ancestors.iter().cloned().chain(below).collect(),
        );
    }
    let mut n = 0;
    for (ty, field, _) in users_of(vocabulary)? {
        let holds = |view: &str| Filter::contains(format!("{view}.__tax.{field}"), slug);
        let docs = store::entries(&ty.name)
            .query()
            .filter(Filter::any([holds("fields"), holds("published")]))
            .limit(MAX_REINDEX as u32 + 1)
            .fetch()?
            .documents;
        n += docs.len();
        if n > MAX_REINDEX {
            return Err(ApiError::new(
                409,
                "too_many_entries",
                format!(
                    "more than {MAX_REINDEX} entries hold '{slug}' or a term below it: move its children one at a time"
                ),
            ));
        }
        for d in docs {
            let mut s = d.data;
            shadow_with(&ty, &mut s.fields, &overrides)?;
            if let Some(p) = s.published.as_mut() {
                shadow_with(&ty, p, &overrides)?;
            }
            batch = batch.replace(&store::entries(&ty.name), &d.id, &s, Some(d.revision));
        }
    }
    Ok(batch)
}

/// Deletes a term. A term with children needs `?cascade=true` (its subtree goes too); a term
/// entries use needs `?detach=true` (it is removed from their drafts and published versions).
fn delete_term(req: &Request, vocabulary: &str, slug: &str) -> ApiResult<Response> {
    may_write()?;
    load_vocabulary(vocabulary)?;
    let doc = load_term(vocabulary, slug)?;
    let below = descendants(vocabulary, slug)?;
    if !below.is_empty() && req.query("cascade") != Some("true") {
        return Err(ApiError::new(
            409,
            "term_has_children",
            format!(
                "the term '{slug}' has {} terms below it: move them, or delete them with it (?cascade=true)",
                below.len()
            ),
        ));
    }
    let gone: BTreeSet<String> = below
        .iter()
        .map(|d| d.data.slug.clone())
        .chain([slug.to_string()])
        .collect();
    // Entries using any of them.
    let mut using: Vec<(ContentType, String, Doc<store::Stored>)> = Vec::new();
    for (ty, field, multiple) in users_of(vocabulary)? {
        let matches = |view: &str| {
            let path = format!("{view}.{field}");
            if multiple {
                Filter::any(
                    gone.iter()
                        .map(|s| Filter::contains(path.clone(), s.as_str())),
                )
            } else {
                Filter::is_in(path, gone.iter().map(String::as_str).collect::<Vec<_>>())
            }
        };
        for d in store::entries(&ty.name)
            .query()
            .filter(Filter::any([matches("fields"), matches("published")]))
            .limit(500)
            .fetch()?
            .documents
        {
            using.push((ty.clone(), field.clone(), d));
        }
    }
    if !using.is_empty() && req.query("detach") != Some("true") {
        let ids: BTreeSet<&str> = using
            .iter()
            .map(|(_, _, d)| d.data.entry.as_str())
            .collect();
        return Err(ApiError::new(
            409,
            "term_in_use",
            format!(
                "{} entries use '{slug}'{}: change them, or remove the term from them (?detach=true)",
                ids.len(),
                if gone.len() > 1 { " or a term below it" } else { "" }
            ),
        )
        .with("entries", json!(ids)));
    }
    let by = access::user_id();
    let mut batch = Batch::new();
    for (ty, field, d) in &using {
        let mut s = d.data.clone();
        let unset = |m: &mut Map<String, Value>| match m.get_mut(field) {
            Some(Value::Array(a)) => a.retain(|v| !v.as_str().is_some_and(|x| gone.contains(x))),
            Some(Value::String(x)) if gone.contains(x.as_str()) => {
                m.insert(field.clone(), Value::Null);
            }
            _ => {}
        };
        unset(&mut s.fields);
        shadow(ty, &mut s.fields)?;
        if let Some(p) = s.published.as_mut() {
            unset(p);
            shadow(ty, p)?;
        }
        s.refresh_status();
        batch = batch.replace(&store::entries(&ty.name), &d.id, &s, Some(d.revision)).publish(
            "content.entry.updated",
            Some(&s.entry),
            &json!({"type": ty.name, "id": s.entry, "locale": s.locale, "status": s.status, "by": by}),
        );
    }
    for d in &below {
        batch = batch.delete(&terms(), &d.id, None);
    }
    batch = batch.delete(&terms(), &doc.id, None);
    batch.commit()?;
    Ok(Response::json(&json!({
        "deleted": gone.into_iter().collect::<Vec<_>>(),
        "detached": using.len(),
    })))
}

/// Checks that every taxonomy field of `ty` names an existing vocabulary.
pub fn check_type(ty: &ContentType, errors: &mut FieldErrors) -> ApiResult<()> {
    for f in ty.fields.iter().filter(|f| f.kind == FieldType::Taxonomy) {
        if let Some(v) = &f.vocabulary
            && vocabularies().get(v)?.is_none()
        {
            errors.insert(
                f.name.clone(),
                format!("the vocabulary '{v}' does not exist: create it with POST /api/content/taxonomies"),
            );
        }
    }
    Ok(())
}

/// Checks that every taxonomy value names terms of its vocabulary.
pub fn check_values(
    ty: &ContentType,
    fields: &Map<String, Value>,
    errors: &mut FieldErrors,
) -> ApiResult<()> {
    for f in ty.fields.iter().filter(|f| f.kind == FieldType::Taxonomy) {
        let slugs: Vec<&str> = match fields.get(&f.name) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        if slugs.is_empty() || errors.contains_key(&f.name) {
            continue;
        }
        let vocabulary = f.vocabulary.clone().unwrap_or_default();
        let found = terms().get_many(
            slugs
                .iter()
                .map(|s| term_id(&vocabulary, s))
                .collect::<Vec<_>>(),
        )?;
        let missing: Vec<&str> = slugs
            .iter()
            .zip(&found)
            .filter(|(_, d)| d.is_none())
            .map(|(s, _)| *s)
            .collect();
        if !missing.is_empty() {
            errors.insert(
                f.name.clone(),
                format!(
                    "names {}, which {} not a term of the vocabulary '{vocabulary}'",
                    missing.join(", "),
                    if missing.len() == 1 { "is" } else { "are" }
                ),
            );
        }
    }
    Ok(())
}
