//! The delivery query string: `filters[…]` (Strapi-like, nested through components and one
//! level of relations), `sort`, `fields`, `populate`, turned into documents filters and paths.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use ucms_sdk::documents::Filter;

use crate::schema::{Cardinality, ContentType, Field, FieldType};
use crate::store;
use crate::time;
use crate::{ApiError, ApiResult};

/// Which version of the entries a read sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Published,
    Draft,
}

impl View {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Draft => "fields",
        }
    }
}

const MAX_RELATION_IDS: usize = 100;

/// The parameters below `root` as a tree: `filters[a][b]=v` → `{"a": {"b": "v"}}`. A key
/// repeated at the same place collects its values in an array.
pub fn bracket_tree(pairs: &[(String, String)], root: &str) -> ApiResult<Option<Value>> {
    let mut tree = Map::new();
    let mut any = false;
    for (key, value) in pairs {
        let Some(rest) = key.strip_prefix(root) else {
            continue;
        };
        if !rest.starts_with('[') {
            continue;
        }
        any = true;
        let mut segments = Vec::new();
        let mut r = rest;
        while let Some(inner) = r.strip_prefix('[') {
            let Some(end) = inner.find(']') else {
                return Err(ApiError::bad_query(format!("'{key}': a '[' is not closed")));
            };
            segments.push(&inner[..end]);
            r = &inner[end + 1..];
        }
        if !r.is_empty() || segments.iter().any(|s| s.is_empty()) {
            return Err(ApiError::bad_query(format!(
                "'{key}' is not of the form {root}[field][$operator]"
            )));
        }
        insert(&mut tree, &segments, value, key)?;
    }
    Ok(any.then_some(Value::Object(tree)))
}

fn insert(
    map: &mut Map<String, Value>,
    segments: &[&str],
    value: &str,
    key: &str,
) -> ApiResult<()> {
    let (first, rest) = segments.split_first().expect("segments are not empty");
    if rest.is_empty() {
        match map.get_mut(*first) {
            None => {
                map.insert(first.to_string(), Value::String(value.into()));
            }
            Some(Value::String(s)) => {
                let prev = std::mem::take(s);
                map.insert(
                    first.to_string(),
                    Value::Array(vec![Value::String(prev), Value::String(value.into())]),
                );
            }
            Some(Value::Array(a)) => a.push(Value::String(value.into())),
            Some(_) => {
                return Err(ApiError::bad_query(format!(
                    "'{key}' gives a value where other parameters give conditions"
                )));
            }
        }
        return Ok(());
    }
    let child = map
        .entry(first.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    match child {
        Value::Object(m) => insert(m, rest, value, key),
        _ => Err(ApiError::bad_query(format!(
            "'{key}' gives conditions where another parameter gives a value"
        ))),
    }
}

/// The elements of a list given as `[0]`, `[1]`… keys, repeated keys, or a comma-separated value.
fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(m) => {
            let mut items: Vec<(u64, &Value)> = m
                .iter()
                .filter_map(|(k, v)| k.parse::<u64>().ok().map(|i| (i, v)))
                .collect();
            items.sort_by_key(|(i, _)| *i);
            items.into_iter().map(|(_, v)| v.clone()).collect()
        }
        Value::String(s) => s.split(',').map(|p| Value::String(p.into())).collect(),
        other => vec![other.clone()],
    }
}

/// Where a condition applies: the document path, the field (none for the entry's own
/// attributes), and the shadow paths of a top-level text field.
struct Target<'a> {
    param: String,
    path: String,
    field: Option<&'a Field>,
    meta_time: bool,
    shadows: Option<(String, String)>,
}

/// Builds the filter of `tree` (the `filters` parameter) for type `ty`.
pub fn build_filter(
    ty: &ContentType,
    tree: &Value,
    view: View,
    locale: &str,
    depth: u32,
) -> ApiResult<Filter> {
    let Some(obj) = tree.as_object() else {
        return Err(ApiError::bad_query(
            "filters must name fields: filters[field][$eq]=value",
        ));
    };
    let mut parts = Vec::new();
    for (k, v) in obj {
        let param = format!("filters[{k}]");
        parts.push(match k.as_str() {
            "$and" | "$or" => {
                let subs = list(v)
                    .iter()
                    .map(|s| build_filter(ty, s, view, locale, depth))
                    .collect::<ApiResult<Vec<_>>>()?;
                if k == "$and" {
                    Filter::all(subs)
                } else {
                    Filter::any(subs)
                }
            }
            "$not" => Filter::not(build_filter(ty, v, view, locale, depth)?),
            "id" => ops(
                &Target {
                    param,
                    path: "entry".into(),
                    field: None,
                    meta_time: false,
                    shadows: None,
                },
                v,
            )?,
            "created-at" | "updated-at" | "published-at" => ops(
                &Target {
                    param,
                    path: k.clone(),
                    field: None,
                    meta_time: true,
                    shadows: None,
                },
                v,
            )?,
            name => {
                let Some(field) = ty.field(name) else {
                    return Err(ApiError::bad_query(format!(
                        "{param}: '{name}' is not a field of '{}'",
                        ty.name
                    )));
                };
                let path = format!("{}.{name}", view.prefix());
                let shadows = field.kind.has_shadows().then(|| {
                    (
                        format!("{}.__lc.{name}", view.prefix()),
                        format!("{}.__rev.{name}", view.prefix()),
                    )
                });
                field_filter(field, path, shadows, param, v, view, locale, depth)?
            }
        });
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Filter::all(parts)
    })
}

fn is_ops(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.keys().all(|k| k.starts_with('$')))
}

#[allow(clippy::too_many_arguments)]
fn field_filter(
    field: &Field,
    path: String,
    shadows: Option<(String, String)>,
    param: String,
    v: &Value,
    view: View,
    locale: &str,
    depth: u32,
) -> ApiResult<Filter> {
    if is_ops(v) || !v.is_object() {
        return ops(
            &Target {
                param,
                path,
                field: Some(field),
                meta_time: false,
                shadows,
            },
            v,
        );
    }
    let obj = v.as_object().expect("checked");
    match field.kind {
        FieldType::Component if !field.repeatable => {
            let sub = field.fields.as_deref().unwrap_or_default();
            let mut parts = Vec::new();
            for (k, v) in obj {
                let Some(f) = sub.iter().find(|f| &f.name == k) else {
                    return Err(ApiError::bad_query(format!(
                        "{param}[{k}]: '{k}' is not a field of the component '{}'",
                        field.name
                    )));
                };
                parts.push(field_filter(
                    f,
                    format!("{path}.{k}"),
                    None,
                    format!("{param}[{k}]"),
                    v,
                    view,
                    locale,
                    depth,
                )?);
            }
            Ok(Filter::all(parts))
        }
        FieldType::Relation => {
            if depth >= 1 {
                return Err(ApiError::bad_query(format!(
                    "{param}: filters go through one level of relations"
                )));
            }
            let target = store::load_type(field.target.as_deref().unwrap_or_default())?;
            let target_locale = if target.locales.iter().any(|l| l == locale) {
                locale.to_string()
            } else {
                target.default_locale().to_string()
            };
            let sub = build_filter(&target, v, view, &target_locale, depth + 1)?;
            let mut base = vec![Filter::eq("locale", target_locale.as_str()), sub];
            if view == View::Published {
                base.push(Filter::eq("live", true));
            }
            let page = store::entries(&target.name)
                .query()
                .filter(Filter::all(base))
                .limit(MAX_RELATION_IDS as u32 + 1)
                .fields(["entry"])
                .fetch_as::<Value>()?;
            if page.documents.len() > MAX_RELATION_IDS {
                return Err(ApiError::bad_query(format!(
                    "{param}: more than {MAX_RELATION_IDS} entries of '{}' match; narrow the condition on the relation",
                    target.name
                )));
            }
            let ids: Vec<String> = page
                .documents
                .iter()
                .filter_map(|d| {
                    d.data
                        .get("entry")
                        .and_then(Value::as_str)
                        .map(String::from)
                })
                .collect();
            Ok(relation_match(field, &path, &ids))
        }
        _ => Err(ApiError::bad_query(format!(
            "{param}: conditions on '{}' are operators like $eq, not nested fields",
            field.name
        ))),
    }
}

fn relation_match(field: &Field, path: &str, ids: &[String]) -> Filter {
    if field.cardinality == Some(Cardinality::OneToOne) {
        Filter::is_in(path.to_string(), ids)
    } else {
        Filter::any(ids.iter().map(|id| Filter::contains(path.to_string(), id)))
    }
}

/// The value of a condition, read by the field's type.
fn typed(t: &Target<'_>, op: &str, v: &Value) -> ApiResult<Value> {
    let s = match v {
        Value::String(s) => s.as_str(),
        _ => {
            return Err(ApiError::bad_query(format!(
                "{}[{op}] takes one value",
                t.param
            )));
        }
    };
    let bad = |what: &str| ApiError::bad_query(format!("{}[{op}]: '{s}' is not {what}", t.param));
    if t.meta_time {
        return time::parse_datetime(s)
            .or_else(|| s.parse::<i64>().ok())
            .map(Value::from)
            .ok_or_else(|| bad("an RFC 3339 time or Unix milliseconds"));
    }
    let Some(field) = t.field else {
        return Ok(Value::String(s.into()));
    };
    Ok(match field.kind {
        FieldType::Integer => s
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| bad("a whole number"))?,
        FieldType::Decimal => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| bad("a number"))?,
        FieldType::Boolean => match s {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("true or false")),
        },
        FieldType::Datetime => Value::String(
            time::parse_datetime(s)
                .map(time::format_ms)
                .ok_or_else(|| bad("an RFC 3339 time"))?,
        ),
        _ => Value::String(s.into()),
    })
}

fn ops(t: &Target<'_>, v: &Value) -> ApiResult<Filter> {
    let obj: Map<String, Value> = match v {
        Value::Object(m) => m.clone(),
        // `filters[title]=x` is `$eq`.
        other => [("$eq".to_string(), other.clone())].into_iter().collect(),
    };
    let many = t.field.is_some_and(|f| {
        (f.kind == FieldType::Relation && f.cardinality != Some(Cardinality::OneToOne))
            || (f.kind == FieldType::Taxonomy && f.multiple)
    });
    let path = t.path.clone();
    let mut parts = Vec::new();
    for (op, v) in &obj {
        let one = |op: &str| typed(t, op, v);
        let text_only = |op: &str| -> ApiResult<()> {
            match t.field {
                Some(f)
                    if f.kind.is_scalar()
                        || f.kind == FieldType::Relation
                        || f.kind == FieldType::Taxonomy =>
                {
                    Ok(())
                }
                None => Ok(()),
                Some(f) => Err(ApiError::bad_query(format!(
                    "{}[{op}]: '{}' is a {} field, which takes $null and $notNull only",
                    t.param,
                    f.name,
                    f.kind.name()
                ))),
            }
        };
        text_only(op)?;
        let shadow = |which: usize, op: &str| -> ApiResult<String> {
            match &t.shadows {
                Some((lc, rev)) => Ok(if which == 0 { lc.clone() } else { rev.clone() }),
                None => Err(ApiError::bad_query(format!(
                    "{}[{op}] works on the type's own text fields (short-text, long-text, slug, email, url, enumeration)",
                    t.param
                ))),
            }
        };
        let string = |op: &str| -> ApiResult<String> {
            one(op)?
                .as_str()
                .map(String::from)
                .ok_or_else(|| ApiError::bad_query(format!("{}[{op}] compares text", t.param)))
        };
        let null = || {
            Filter::any([
                Filter::not(Filter::exists(path.clone())),
                Filter::is_null(path.clone()),
            ])
        };
        let flag = |op: &str| -> ApiResult<bool> {
            match v.as_str() {
                Some("true") | Some("") => Ok(true),
                Some("false") => Ok(false),
                _ => Err(ApiError::bad_query(format!(
                    "{}[{op}] is true or false",
                    t.param
                ))),
            }
        };
        let f = match op.as_str() {
            "$eq" if many => Filter::contains(path.clone(), one(op)?),
            "$ne" if many => Filter::not(Filter::contains(path.clone(), one(op)?)),
            "$eq" => Filter::eq(path.clone(), one(op)?),
            "$ne" => Filter::ne(path.clone(), one(op)?),
            "$lt" => Filter::lt(path.clone(), one(op)?),
            "$lte" => Filter::lte(path.clone(), one(op)?),
            "$gt" => Filter::gt(path.clone(), one(op)?),
            "$gte" => Filter::gte(path.clone(), one(op)?),
            "$in" | "$notIn" | "$not-in" => {
                let values = list(v)
                    .iter()
                    .map(|x| typed(t, op, x))
                    .collect::<ApiResult<Vec<_>>>()?;
                let f = if many {
                    Filter::any(values.iter().map(|x| Filter::contains(path.clone(), x)))
                } else {
                    Filter::is_in(path.clone(), values)
                };
                if op == "$in" { f } else { Filter::not(f) }
            }
            "$between" => {
                let values = list(v);
                if values.len() != 2 {
                    return Err(ApiError::bad_query(format!(
                        "{}[$between] takes two values: [$between]=1,10",
                        t.param
                    )));
                }
                Filter::all([
                    Filter::gte(path.clone(), typed(t, op, &values[0])?),
                    Filter::lte(path.clone(), typed(t, op, &values[1])?),
                ])
            }
            "$under" => {
                let Some(f) = t.field.filter(|f| f.kind == FieldType::Taxonomy) else {
                    return Err(ApiError::bad_query(format!(
                        "{}[$under] works on taxonomy fields (a term or any term below it)",
                        t.param
                    )));
                };
                let slug = string(op)?;
                crate::taxonomy::require_term(
                    f.vocabulary.as_deref().unwrap_or_default(),
                    &slug,
                    &format!("{}[$under]", t.param),
                )?;
                // `published.topic` → `published.__tax.topic`: the terms and their ancestors.
                Filter::contains(path.replacen('.', ".__tax.", 1), slug)
            }
            "$contains" => Filter::contains(path.clone(), string(op)?),
            "$notContains" | "$not-contains" => {
                Filter::not(Filter::contains(path.clone(), string(op)?))
            }
            "$containsi" | "$contains-i" => {
                Filter::contains(shadow(0, op)?, string(op)?.to_lowercase())
            }
            "$startsWith" | "$starts-with" => Filter::starts_with(path.clone(), string(op)?),
            "$endsWith" | "$ends-with" => Filter::starts_with(
                shadow(1, op)?,
                string(op)?.chars().rev().collect::<String>(),
            ),
            "$null" => {
                if flag(op)? {
                    null()
                } else {
                    Filter::not(null())
                }
            }
            "$notNull" | "$not-null" => {
                if flag(op)? {
                    Filter::not(null())
                } else {
                    null()
                }
            }
            other => {
                return Err(ApiError::bad_query(format!(
                    "{}[{other}]: unknown operator; use $eq $ne $lt $lte $gt $gte $in $notIn $contains $containsi $startsWith $endsWith $null $notNull $between $under",
                    t.param
                )));
            }
        };
        parts.push(f);
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Filter::all(parts)
    })
}

/// `sort=title:asc,published-at:desc` → (path, descending).
pub fn sort(ty: &ContentType, param: &str, view: View) -> ApiResult<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for part in param.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, dir) = part.split_once(':').unwrap_or((part, "asc"));
        let descending = match dir {
            "asc" => false,
            "desc" => true,
            other => {
                return Err(ApiError::bad_query(format!(
                    "sort: '{other}' is not a direction; use {name}:asc or {name}:desc"
                )));
            }
        };
        let path = match name {
            "id" => "entry".to_string(),
            "created-at" | "updated-at" | "published-at" => name.to_string(),
            f => match ty.field(f) {
                Some(field) if field.kind.is_scalar() => format!("{}.{f}", view.prefix()),
                Some(field) => {
                    return Err(ApiError::bad_query(format!(
                        "sort: '{f}' is a {} field; sort by text, numbers, dates or booleans",
                        field.kind.name()
                    )));
                }
                None => {
                    return Err(ApiError::bad_query(format!(
                        "sort: '{f}' is not a field of '{}'",
                        ty.name
                    )));
                }
            },
        };
        out.push((path, descending));
    }
    if out.len() > 4 {
        return Err(ApiError::bad_query("sort: at most 4 keys"));
    }
    Ok(out)
}

/// `populate=author,tags.author` → relation field → what to populate inside it (two levels at
/// most); `*` populates every relation one level.
#[derive(Debug, Default, Clone)]
pub struct Populate(pub BTreeMap<String, Populate>);

pub fn populate(ty: &ContentType, param: &str) -> ApiResult<Populate> {
    let mut root = Populate::default();
    for part in param.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part == "*" {
            for f in ty.relations() {
                root.0.entry(f.name.clone()).or_default();
            }
            continue;
        }
        let segments: Vec<&str> = part.split('.').collect();
        if segments.len() > 2 {
            return Err(ApiError::bad_query(format!(
                "populate: '{part}' goes {} levels deep; the maximum is 2",
                segments.len()
            )));
        }
        let mut current_ty = ty.clone();
        let mut node = &mut root;
        for s in segments {
            let field = current_ty
                .field(s)
                .filter(|f| f.kind == FieldType::Relation);
            let Some(field) = field else {
                return Err(ApiError::bad_query(format!(
                    "populate: '{s}' is not a relation of '{}'",
                    current_ty.name
                )));
            };
            let target = field.target.clone().unwrap_or_default();
            node = node.0.entry(s.to_string()).or_default();
            current_ty = if target == current_ty.name {
                current_ty
            } else {
                store::load_type(&target)?
            };
        }
    }
    Ok(root)
}

/// `fields=title,slug` → the field names, each checked.
pub fn fields(ty: &ContentType, param: &str) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for f in param.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if ty.field(f).is_none() {
            return Err(ApiError::bad_query(format!(
                "fields: '{f}' is not a field of '{}'",
                ty.name
            )));
        }
        out.push(f.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_nest_and_collect() {
        let pairs = vec![
            ("filters[title][$eq]".to_string(), "a".to_string()),
            ("filters[price][$in]".to_string(), "1".to_string()),
            ("filters[price][$in]".to_string(), "2".to_string()),
            ("filters[$or][0][x][$eq]".to_string(), "y".to_string()),
            ("sort".to_string(), "title".to_string()),
        ];
        let t = bracket_tree(&pairs, "filters").unwrap().unwrap();
        assert_eq!(t["title"]["$eq"], "a");
        assert_eq!(t["price"]["$in"], serde_json::json!(["1", "2"]));
        assert_eq!(t["$or"]["0"]["x"]["$eq"], "y");
        assert!(bracket_tree(&[("filters[a".into(), "1".into())], "filters").is_err());
    }
}
