//! How the plugin keeps its data in documents.
//!
//! - `types`: one document per content type, id = its name.
//! - `entries.{type}`: one document per entry and locale (id `{entry}.{locale}`) holding the draft
//!   (`fields`) and the published version (`published`, null when unpublished) side by side, so a
//!   delivery query filters and sorts on `published.…` and a preview on `fields.…` in one table.
//!   Each version carries two shadows of its text values, `__lc` (lower-cased, for `$containsi`)
//!   and `__rev` (reversed, for `$endsWith`), because the documents filter has neither operator.
//! - `revisions`: one document per save (`{entry}.{locale}.{n}`), indexed by (entry, locale, n).
//!
//! Every write goes through one documents batch with its event, so the event exists if and only
//! if the write committed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use ucms_sdk::documents::{Batch, Collection, Doc, Filter};

use crate::schema::{Cardinality, ContentType, FieldType, OnDelete};
use crate::time;
use crate::{ApiError, ApiResult};

pub const TYPES: &str = "types";
pub const REVISIONS: &str = "revisions";

/// An entry in one locale, as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Stored {
    pub entry: String,
    pub locale: String,
    pub status: String,
    /// Whether a published version exists (what delivery filters on).
    pub live: bool,
    pub fields: Map<String, Value>,
    pub published: Option<Map<String, Value>>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub published_at: Option<i64>,
    pub revisions: u64,
    #[serde(default)]
    pub scheduled_publish: Option<i64>,
    #[serde(default)]
    pub scheduled_unpublish: Option<i64>,
    /// The review stage (types with a workflow); `None` reads as the first stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

/// A saved version of an entry's draft.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Revision {
    pub entry: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub locale: String,
    pub n: u64,
    pub action: String,
    pub author: Option<String>,
    pub at: i64,
    pub fields: Map<String, Value>,
    /// The review stage after this save (types with a workflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
}

pub fn types() -> Collection<ContentType> {
    Collection::new(TYPES)
}

pub fn entries(ty: &str) -> Collection<Stored> {
    Collection::new(format!("entries.{ty}"))
}

pub fn revisions() -> Collection<Revision> {
    Collection::new(REVISIONS)
}

pub fn doc_id(entry: &str, locale: &str) -> String {
    format!("{entry}.{locale}")
}

pub fn load_type(name: &str) -> ApiResult<ContentType> {
    types().get(name)?.map(|d| d.data).ok_or_else(|| {
        ApiError::new(
            404,
            "type_not_found",
            format!("there is no content type '{name}': GET /api/content/types lists them"),
        )
    })
}

pub fn all_types() -> ApiResult<BTreeMap<String, ContentType>> {
    let page = types().query().limit(1000).fetch()?;
    Ok(page
        .documents
        .into_iter()
        .map(|d| (d.data.name.clone(), d.data))
        .collect())
}

/// A new entry id: the time in milliseconds and some bits of a hash of the request, in hex.
pub fn new_id(seed: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes().chain(time::now_ms().to_le_bytes()).chain(
        COUNTER
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_le_bytes(),
    ) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}{:08x}", time::now_ms(), h as u32)
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A 64-bit FNV-1a hash in hex (ETags).
pub fn hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `fields` with the `__lc` and `__rev` shadows of its text values added.
pub fn with_shadows(ty: &ContentType, fields: &Map<String, Value>) -> Map<String, Value> {
    let mut out = strip(fields);
    let mut lc = Map::new();
    let mut rev = Map::new();
    for f in &ty.fields {
        if f.kind.has_shadows()
            && let Some(s) = fields.get(&f.name).and_then(Value::as_str)
        {
            lc.insert(f.name.clone(), Value::String(s.to_lowercase()));
            rev.insert(f.name.clone(), Value::String(s.chars().rev().collect()));
        }
    }
    if !lc.is_empty() {
        out.insert("__lc".into(), Value::Object(lc));
        out.insert("__rev".into(), Value::Object(rev));
    }
    out
}

/// `fields` without the shadows.
pub fn strip(fields: &Map<String, Value>) -> Map<String, Value> {
    fields
        .iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn status_of(fields: &Map<String, Value>, published: Option<&Map<String, Value>>) -> &'static str {
    match published {
        None => "draft",
        Some(p) if strip(p) == strip(fields) => "published",
        Some(_) => "changed",
    }
}

impl Stored {
    /// The entry's review stage under `ty`'s workflow (`None` without one).
    pub fn stage_in(&self, ty: &ContentType) -> Option<String> {
        let w = ty.workflow.as_ref()?;
        Some(
            self.stage
                .clone()
                .filter(|s| w.stage(s).is_some())
                .unwrap_or_else(|| w.first().to_string()),
        )
    }

    pub fn refresh_status(&mut self) {
        self.status = status_of(&self.fields, self.published.as_ref()).into();
        self.live = self.published.is_some();
    }
}

// ---- type storage ----------------------------------------------------------------------------

/// The indexes every entries collection has: (name, paths).
fn base_indexes() -> Vec<(String, Vec<String>, bool)> {
    vec![
        ("entry".into(), vec!["entry".into()], false),
        (
            "list".into(),
            vec!["locale".into(), "live".into(), "created-at".into()],
            false,
        ),
        ("sched-p".into(), vec!["scheduled-publish".into()], false),
        ("sched-u".into(), vec!["scheduled-unpublish".into()], false),
    ]
}

/// Creates the type's indexes and search (dropping the ones it no longer needs). An index that
/// existing entries violate (a new `unique`) fails here, before anything else changed.
pub fn ensure_storage(ty: &ContentType) -> ApiResult<()> {
    let col = entries(&ty.name);
    let mut wanted = base_indexes();
    wanted.extend(ty.indexes());
    let names: BTreeSet<String> = wanted.iter().map(|(n, _, _)| n.clone()).collect();
    for existing in col.indexes()? {
        let same = wanted
            .iter()
            .any(|(n, p, u)| *n == existing.name && *p == existing.fields && *u == existing.unique);
        if !names.contains(&existing.name) || !same {
            col.drop_index(&existing.name)?;
        }
    }
    for (name, paths, unique) in &wanted {
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        col.ensure_index(name, &paths, *unique).map_err(|e| {
            if e.code() == "unique_violation" || e.status() == 409 {
                ApiError::new(
                    409,
                    "type_change_refused",
                    format!(
                        "existing entries repeat values of a field made unique ({name}): {}",
                        e.message()
                    ),
                )
            } else {
                ApiError::from(e)
            }
        })?;
    }
    let search: Vec<String> = ty
        .search_fields()
        .iter()
        .map(|f| format!("published.{f}"))
        .collect();
    if !search.is_empty() {
        let paths: Vec<&str> = search.iter().map(String::as_str).collect();
        col.ensure_search(&paths, &ty.search_language)?;
    }
    Ok(())
}

/// Deletes every document of a collection, a batch at a time.
pub fn purge<T: serde::de::DeserializeOwned + Serialize>(
    col: &Collection<T>,
    filter: Option<Filter>,
) -> ApiResult<u64> {
    let mut n = 0;
    loop {
        let mut q = col.query().limit(500).fields(["entry"]);
        if let Some(f) = &filter {
            q = q.filter(f.clone());
        }
        let page = q.fetch_as::<Value>()?;
        if page.documents.is_empty() {
            return Ok(n);
        }
        let mut batch = Batch::new();
        for d in &page.documents {
            batch = batch.delete(col, &d.id, None);
            n += 1;
        }
        batch.commit()?;
    }
}

// ---- entries ----------------------------------------------------------------------------------

pub fn get(ty: &str, entry: &str, locale: &str) -> ApiResult<Option<Doc<Stored>>> {
    Ok(entries(ty).get(&doc_id(entry, locale))?)
}

pub fn not_found(ty: &str, id: &str) -> ApiError {
    ApiError::new(
        404,
        "entry_not_found",
        format!("there is no entry '{id}' of the type '{ty}' in this locale"),
    )
}

/// Turns a unique-index violation into a 409 naming the field.
pub fn unique_error(e: ucms_sdk::Error, ty: &ContentType) -> ApiError {
    if e.code() != "unique_violation" && !e.message().contains("unique") {
        return e.into();
    }
    let field = ty
        .fields
        .iter()
        .find(|f| {
            e.message().contains(&format!("f-{}-d", f.name))
                || e.message().contains(&format!("f-{}-p", f.name))
        })
        .map(|f| f.name.clone());
    match field {
        Some(f) => ApiError::new(
            409,
            "unique_violation",
            format!("another entry already has this value of '{f}': it must be unique"),
        )
        .with(
            "fields",
            json!({ f: "must be unique: another entry has this value" }),
        ),
        None => ApiError::new(409, "unique_violation", e.message()),
    }
}

/// What a write does, for its revision and event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Publish,
    Unpublish,
    Restore,
    Stage,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Publish => "publish",
            Self::Unpublish => "unpublish",
            Self::Restore => "restore",
            Self::Stage => "stage",
        }
    }

    fn topic(self) -> &'static str {
        match self {
            Self::Create => "content.entry.created",
            Self::Update | Self::Restore => "content.entry.updated",
            Self::Publish => "content.entry.published",
            Self::Unpublish => "content.entry.unpublished",
            Self::Stage => "content.entry.stage-changed",
        }
    }
}

/// Writes `stored` (inserted when `expected` is `None`, else replaced at that revision) with a
/// revision and the event, plus `extra` writes (other locales' copies) in one batch.
pub fn save(
    ty: &ContentType,
    stored: Stored,
    expected: Option<u64>,
    action: Action,
    extra: Vec<(String, Map<String, Value>)>,
) -> ApiResult<Doc<Stored>> {
    save_from(ty, stored, expected, action, extra, None)
}

/// [`save`], naming the stage an entry leaves (`from` in a `content.entry.stage-changed` event).
pub fn save_from(
    ty: &ContentType,
    mut stored: Stored,
    expected: Option<u64>,
    action: Action,
    extra: Vec<(String, Map<String, Value>)>,
    from_stage: Option<String>,
) -> ApiResult<Doc<Stored>> {
    let col = entries(&ty.name);
    let by = crate::access::user_id();
    stored.revisions += 1;
    stored.updated_at = time::now_ms();
    stored.fields = with_shadows(ty, &stored.fields);
    crate::taxonomy::shadow(ty, &mut stored.fields)?;
    if let Some(p) = &stored.published {
        let mut p = with_shadows(ty, p);
        crate::taxonomy::shadow(ty, &mut p)?;
        stored.published = Some(p);
    }
    stored.refresh_status();
    let id = doc_id(&stored.entry, &stored.locale);
    let revision = Revision {
        entry: stored.entry.clone(),
        ty: ty.name.clone(),
        locale: stored.locale.clone(),
        n: stored.revisions,
        action: action.name().into(),
        author: by.clone(),
        at: stored.updated_at,
        fields: strip(&stored.fields),
        stage: stored.stage_in(ty),
    };
    let mut batch = match expected {
        None => Batch::new().insert_with_id(&col, &id, &stored),
        Some(rev) => Batch::new().replace(&col, &id, &stored, Some(rev)),
    };
    batch = batch.insert_with_id(
        &revisions(),
        &format!("{id}.{}", stored.revisions),
        &revision,
    );
    for (other, patch) in &extra {
        batch = batch.patch(&col, other, json!({ "fields": patch }), None);
    }
    let mut payload = json!({
        "type": ty.name, "id": stored.entry, "locale": stored.locale,
        "status": stored.status, "by": by,
    });
    if let Some(stage) = stored.stage_in(ty) {
        payload["stage"] = json!(stage);
    }
    if let Some(from) = from_stage {
        payload["from"] = json!(from);
    }
    batch = batch.publish(action.topic(), Some(&stored.entry), &payload);
    if action == Action::Create && stored.live {
        batch = batch.publish("content.entry.published", Some(&stored.entry), &payload);
    }
    let results = batch.commit().map_err(|e| unique_error(e, ty))?;
    results
        .into_iter()
        .next()
        .and_then(|r| r.into_doc().transpose())
        .ok_or_else(|| ApiError::new(500, "internal", "the batch returned no document"))?
        .map_err(ApiError::from)
}

/// Inserts many new entries (with their first revisions) in one batch and announces them with
/// one `content.entries.imported` event; their ids.
pub fn save_many(ty: &ContentType, items: Vec<Stored>) -> ApiResult<Vec<String>> {
    let col = entries(&ty.name);
    let by = crate::access::user_id();
    let mut batch = Batch::new();
    let mut ids = Vec::new();
    for mut s in items {
        s.revisions = 1;
        s.fields = with_shadows(ty, &s.fields);
        crate::taxonomy::shadow(ty, &mut s.fields)?;
        if let Some(p) = &s.published {
            let mut p = with_shadows(ty, p);
            crate::taxonomy::shadow(ty, &mut p)?;
            s.published = Some(p);
        }
        s.refresh_status();
        let id = doc_id(&s.entry, &s.locale);
        let revision = Revision {
            entry: s.entry.clone(),
            ty: ty.name.clone(),
            locale: s.locale.clone(),
            n: 1,
            action: if s.live { "publish" } else { "create" }.into(),
            author: by.clone(),
            at: s.updated_at,
            fields: strip(&s.fields),
            stage: s.stage_in(ty),
        };
        batch = batch.insert_with_id(&col, &id, &s).insert_with_id(
            &revisions(),
            &format!("{id}.1"),
            &revision,
        );
        ids.push(s.entry);
    }
    batch = batch.publish(
        "content.entries.imported",
        None,
        &json!({"type": ty.name, "ids": ids, "by": by}),
    );
    batch.commit().map_err(|e| unique_error(e, ty))?;
    Ok(ids)
}

/// Every locale document of an entry.
pub fn locales_of(ty: &str, entry: &str) -> ApiResult<Vec<Doc<Stored>>> {
    Ok(entries(ty)
        .query()
        .filter(Filter::eq("entry", entry))
        .limit(100)
        .fetch()?
        .documents)
}

/// What deleting an entry does to others: documents to delete and documents to rewrite, each
/// once, keyed by (type, document id).
#[derive(Default)]
struct Plan {
    deletes: BTreeMap<(String, String), Stored>,
    updates: BTreeMap<(String, String), (Stored, u64)>,
}

/// Deletes an entry (every locale, or one), applying the `on-delete` rules of the relations
/// that point at it, in one batch with the events.
pub fn delete_entry(ty: &ContentType, entry: &str, locale: Option<&str>) -> ApiResult<()> {
    let all = locales_of(&ty.name, entry)?;
    let whole = locale.is_none() || all.len() == 1;
    let docs: Vec<Doc<Stored>> = all
        .into_iter()
        .filter(|d| locale.is_none_or(|l| d.data.locale == l))
        .collect();
    if docs.is_empty() {
        return Err(not_found(&ty.name, entry));
    }
    let mut plan = Plan::default();
    for d in &docs {
        plan.deletes
            .insert((ty.name.clone(), d.id.clone()), d.data.clone());
    }
    let mut deleted_entries = vec![(ty.clone(), entry.to_string())];
    if whole {
        let types = all_types()?;
        let mut i = 0;
        while i < deleted_entries.len() {
            let (t, e) = deleted_entries[i].clone();
            let depth = u32::from(i > 0);
            referrers(&types, &t, &e, &mut plan, &mut deleted_entries, depth)?;
            i += 1;
        }
    }
    let by = crate::access::user_id();
    let mut batch = Batch::new();
    for ((t, id), s) in &plan.deletes {
        batch = batch.delete(&entries(t), id, None).publish(
            "content.entry.deleted",
            Some(&s.entry),
            &json!({"type": t, "id": s.entry, "locale": s.locale, "status": s.status, "by": by}),
        );
    }
    for ((t, id), (s, rev)) in &plan.updates {
        if plan.deletes.contains_key(&(t.clone(), id.clone())) {
            continue;
        }
        batch = batch.replace(&entries(t), id, s, Some(*rev)).publish(
            "content.entry.updated",
            Some(&s.entry),
            &json!({"type": t, "id": s.entry, "locale": s.locale, "status": s.status, "by": by}),
        );
    }
    batch.commit()?;
    if whole {
        let mut gone: BTreeSet<&str> = BTreeSet::new();
        for s in plan.deletes.values() {
            gone.insert(&s.entry);
        }
        for e in gone {
            purge(&revisions(), Some(Filter::eq("entry", e)))?;
        }
    }
    Ok(())
}

/// Adds to `plan` what deleting `entry` of `ty` does to the entries relating to it: refuses
/// (`restrict`), deletes them (`cascade`, up to 3 levels) or removes the reference (`set-null`).
fn referrers(
    types: &BTreeMap<String, ContentType>,
    ty: &ContentType,
    entry: &str,
    plan: &mut Plan,
    cascaded: &mut Vec<(ContentType, String)>,
    depth: u32,
) -> ApiResult<()> {
    for other in types.values() {
        for f in other.relations() {
            if f.target.as_deref() != Some(ty.name.as_str()) {
                continue;
            }
            let many = f.cardinality != Some(Cardinality::OneToOne);
            let path = |view: &str| format!("{view}.{}", f.name);
            let matches = |view: &str| {
                if many {
                    Filter::contains(path(view), entry)
                } else {
                    Filter::eq(path(view), entry)
                }
            };
            let found: Vec<Doc<Stored>> = entries(&other.name)
                .query()
                .filter(Filter::any([matches("fields"), matches("published")]))
                .limit(1000)
                .fetch()?
                .documents
                .into_iter()
                .filter(|d| {
                    !plan
                        .deletes
                        .contains_key(&(other.name.clone(), d.id.clone()))
                })
                .collect();
            if found.is_empty() {
                continue;
            }
            match f.on_delete.unwrap_or_default() {
                OnDelete::Restrict => {
                    let ids: BTreeSet<&str> = found.iter().map(|d| d.data.entry.as_str()).collect();
                    return Err(ApiError::new(
                        409,
                        "relation_restricted",
                        format!(
                            "entries of '{}' refer to this entry through '{}' (on-delete: restrict): change or delete them first",
                            other.name, f.name
                        ),
                    )
                    .with("entries", json!(ids)));
                }
                OnDelete::Cascade => {
                    if depth >= 3 || cascaded.len() > 1000 {
                        return Err(ApiError::new(
                            409,
                            "relation_restricted",
                            "cascading deletes go at most 3 levels and 1000 entries deep",
                        ));
                    }
                    for d in found {
                        if !cascaded
                            .iter()
                            .any(|(t, e)| t.name == other.name && *e == d.data.entry)
                        {
                            cascaded.push((other.clone(), d.data.entry.clone()));
                        }
                        plan.deletes
                            .insert((other.name.clone(), d.id.clone()), d.data);
                    }
                }
                OnDelete::SetNull => {
                    for d in found {
                        let key = (other.name.clone(), d.id.clone());
                        let (s, _) = plan
                            .updates
                            .entry(key)
                            .or_insert_with(|| (d.data.clone(), d.revision));
                        let unset = |m: &mut Map<String, Value>| {
                            if many {
                                if let Some(Value::Array(a)) = m.get_mut(&f.name) {
                                    a.retain(|v| v.as_str() != Some(entry));
                                }
                            } else if m.get(&f.name).and_then(Value::as_str) == Some(entry) {
                                m.insert(f.name.clone(), Value::Null);
                            }
                        };
                        unset(&mut s.fields);
                        if let Some(p) = s.published.as_mut() {
                            unset(p);
                        }
                        s.refresh_status();
                    }
                }
            }
        }
    }
    Ok(())
}

/// Checks that every relation value names an existing entry of its target type.
pub fn check_relations(
    ty: &ContentType,
    fields: &Map<String, Value>,
    errors: &mut crate::schema::FieldErrors,
) -> ApiResult<()> {
    for f in ty.relations() {
        let ids: Vec<String> = match fields.get(&f.name) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => continue,
        };
        if ids.is_empty() {
            continue;
        }
        let target_name = f.target.clone().unwrap_or_default();
        let target = if target_name == ty.name {
            ty.clone()
        } else {
            load_type(&target_name)?
        };
        let found = entries(&target.name).get_many(
            ids.iter()
                .map(|id| doc_id(id, target.default_locale()))
                .collect::<Vec<_>>(),
        )?;
        let missing: Vec<&str> = ids
            .iter()
            .zip(&found)
            .filter(|(_, d)| d.is_none())
            .map(|(id, _)| id.as_str())
            .collect();
        if !missing.is_empty() {
            errors.insert(
                f.name.clone(),
                format!(
                    "refers to {}, which {} not an entry of '{}'",
                    missing.join(", "),
                    if missing.len() == 1 { "is" } else { "are" },
                    target.name
                ),
            );
        }
    }
    Ok(())
}

// ---- scheduling --------------------------------------------------------------------------------

/// Publishes and unpublishes the entries whose scheduled time is before `now`; how many.
pub fn run_schedule(now: i64) -> ApiResult<u64> {
    let mut n = 0;
    for (_, ty) in all_types()? {
        for (path, publish) in [("scheduled-publish", true), ("scheduled-unpublish", false)] {
            let due = entries(&ty.name)
                .query()
                .filter(Filter::lte(path, now))
                .limit(200)
                .fetch()?
                .documents;
            for d in due {
                let mut s = d.data;
                let action = if publish {
                    s.scheduled_publish = None;
                    if let Some(w) = &ty.workflow
                        && s.stage_in(&ty).as_deref() != Some(w.last())
                    {
                        ucms_sdk::log::write(
                            ucms_sdk::log::Level::Warn,
                            "a scheduled publish was refused: the entry is not in the workflow's last stage; the schedule is dropped",
                            &[
                                ("entry", s.entry.as_str()),
                                ("stage", s.stage_in(&ty).unwrap_or_default().as_str()),
                            ],
                        );
                        entries(&ty.name).replace(&d.id, &s, Some(d.revision))?;
                        continue;
                    }
                    // The same hook as a publish through the API; a refusal drops the schedule.
                    let value = json!({"type": ty.name, "id": s.entry, "locale": s.locale, "action": "publish", "fields": strip(&s.fields)});
                    if let Err(e) = ucms_sdk::hooks::run_json("content.before-publish", &value) {
                        ucms_sdk::log::write(
                            ucms_sdk::log::Level::Warn,
                            "a scheduled publish was refused by content.before-publish; the schedule is dropped",
                            &[("entry", s.entry.as_str()), ("reason", e.message())],
                        );
                        entries(&ty.name).replace(&d.id, &s, Some(d.revision))?;
                        continue;
                    }
                    s.published = Some(strip(&s.fields));
                    s.published_at = Some(now);
                    Action::Publish
                } else {
                    s.scheduled_unpublish = None;
                    s.published = None;
                    Action::Unpublish
                };
                save(&ty, s, Some(d.revision), action, Vec::new())?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// The fields of `a` and `b` that differ: `{field: {"before", "after"}}`.
pub fn diff(before: &Map<String, Value>, after: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for k in keys {
        let (b, a) = (before.get(k), after.get(k));
        if b != a {
            let mut change = Map::new();
            if let Some(b) = b {
                change.insert("before".into(), b.clone());
            }
            change.insert("after".into(), a.cloned().unwrap_or(Value::Null));
            out.insert(k.clone(), Value::Object(change));
        }
    }
    out
}

/// Which field types a type change can't convert between: any change of `type`.
pub fn type_changed(old: &ContentType, new: &ContentType) -> Vec<(String, FieldType, FieldType)> {
    new.fields
        .iter()
        .filter_map(|f| {
            old.field(&f.name)
                .filter(|o| o.kind != f.kind)
                .map(|o| (f.name.clone(), o.kind, f.kind))
        })
        .collect()
}
