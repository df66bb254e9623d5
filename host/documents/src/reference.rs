//! The semantics of filters and sort orders, written plainly in Rust over in-memory documents.
//!
//! This is the specification the SQL compilers are tested against (the property tests run
//! random filters and sorts on SQLite and PostgreSQL and compare with [`run`]); it is also handy
//! for plugins' unit tests and for re-checking a result. It is not used to answer queries.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Number, Value};

use crate::path::{Pseudo, Segment};
use crate::{Document, Filter, Path, Query, Sort};

/// The order of JSON types in a sort: missing < null < booleans < numbers < strings < arrays <
/// objects. Arrays (and objects) are all equal to one another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Rank {
    Missing = 0,
    Null = 1,
    Bool = 2,
    Number = 3,
    String = 4,
    Array = 5,
    Object = 6,
}

impl Rank {
    pub fn of(value: Option<&Value>) -> Self {
        match value {
            None => Self::Missing,
            Some(Value::Null) => Self::Null,
            Some(Value::Bool(_)) => Self::Bool,
            Some(Value::Number(_)) => Self::Number,
            Some(Value::String(_)) => Self::String,
            Some(Value::Array(_)) => Self::Array,
            Some(Value::Object(_)) => Self::Object,
        }
    }
}

/// The value at `path` in `doc` (pseudo-paths give the document's columns); `None`: missing.
pub fn lookup<'a>(doc: &'a Document, path: &Path) -> Option<Cow<'a, Value>> {
    match path.as_pseudo() {
        Some(Pseudo::Id) => Some(Cow::Owned(Value::String(doc.id.clone()))),
        Some(Pseudo::Revision) => Some(Cow::Owned(Value::from(doc.revision))),
        Some(Pseudo::Created) => Some(Cow::Owned(Value::from(doc.created_at_ms))),
        Some(Pseudo::Updated) => Some(Cow::Owned(Value::from(doc.updated_at_ms))),
        None => lookup_data(&doc.data, path).map(Cow::Borrowed),
    }
}

/// The value at a data path: keys step into objects, indexes into arrays, nothing else.
pub fn lookup_data<'a>(data: &'a Value, path: &Path) -> Option<&'a Value> {
    let mut at = data;
    for segment in path.segments() {
        at = match (segment, at) {
            (Segment::Key(k), Value::Object(map)) => map.get(k)?,
            (Segment::Index(i), Value::Array(items)) => items.get(*i as usize)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Compares two numbers exactly (integers with floats too).
pub fn cmp_numbers(a: &Number, b: &Number) -> Ordering {
    fn int(n: &Number) -> Option<i128> {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    }
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(x), None) => cmp_int_float(x, b.as_f64().unwrap_or(0.0)),
        (None, Some(y)) => cmp_int_float(y, a.as_f64().unwrap_or(0.0)).reverse(),
        (None, None) => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
    }
}

fn cmp_int_float(i: i128, f: f64) -> Ordering {
    if f >= 1.8e19 {
        return Ordering::Less;
    }
    if f <= -1.8e19 {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    match i.cmp(&(whole as i128)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal),
        other => other,
    }
}

/// JSON-typed equality of a stored value with a filter's scalar: same type and equal value
/// (numbers by value, so `1` equals `1.0`). Arrays and objects never equal a scalar.
pub fn scalar_eq(stored: &Value, wanted: &Value) -> bool {
    match (stored, wanted) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Number(a), Value::Number(b)) => cmp_numbers(a, b) == Ordering::Equal,
        (Value::String(a), Value::String(b)) => a == b,
        _ => false,
    }
}

/// Compares a stored value with a range bound: `None` when the types differ (the filter is false).
fn range_cmp(stored: &Value, bound: &Value) -> Option<Ordering> {
    match (stored, bound) {
        (Value::Number(a), Value::Number(b)) => Some(cmp_numbers(a, b)),
        (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        _ => None,
    }
}

/// Whether `doc` satisfies `filter`.
pub fn matches(filter: &Filter, doc: &Document) -> bool {
    let at = |p: &Path| lookup(doc, p);
    match filter {
        Filter::Eq(p, v) => at(p).is_some_and(|x| scalar_eq(&x, v)),
        Filter::Ne(p, v) => !at(p).is_some_and(|x| scalar_eq(&x, v)),
        Filter::Lt(p, v) => at(p).and_then(|x| range_cmp(&x, v)) == Some(Ordering::Less),
        Filter::Lte(p, v) => at(p)
            .and_then(|x| range_cmp(&x, v))
            .is_some_and(|o| o != Ordering::Greater),
        Filter::Gt(p, v) => at(p).and_then(|x| range_cmp(&x, v)) == Some(Ordering::Greater),
        Filter::Gte(p, v) => at(p)
            .and_then(|x| range_cmp(&x, v))
            .is_some_and(|o| o != Ordering::Less),
        Filter::In(p, vs) => at(p).is_some_and(|x| vs.iter().any(|v| scalar_eq(&x, v))),
        Filter::NotIn(p, vs) => !at(p).is_some_and(|x| vs.iter().any(|v| scalar_eq(&x, v))),
        Filter::Contains(p, v) => at(p).is_some_and(|x| match (&*x, v) {
            (Value::String(s), Value::String(needle)) => s.contains(needle.as_str()),
            (Value::Array(items), _) => items.iter().any(|item| scalar_eq(item, v)),
            _ => false,
        }),
        Filter::StartsWith(p, prefix) => {
            at(p).is_some_and(|x| matches!(&*x, Value::String(s) if s.starts_with(prefix.as_str())))
        }
        Filter::Exists(p) => at(p).is_some(),
        Filter::IsNull(p) => at(p).is_some_and(|x| x.is_null()),
        Filter::And(fs) => fs.iter().all(|f| matches(f, doc)),
        Filter::Or(fs) => fs.iter().any(|f| matches(f, doc)),
        Filter::Not(f) => !matches(f, doc),
    }
}

/// The sort order of two values at one path (`None`: missing), ascending.
pub fn compare_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let (ra, rb) = (Rank::of(a), Rank::of(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => cmp_numbers(x, y),
        (Some(Value::String(x)), Some(Value::String(y))) => x.as_str().cmp(y.as_str()),
        _ => Ordering::Equal,
    }
}

/// The order of two documents under `sort`, ties broken by id in the direction of the last key
/// (ascending without sort keys).
pub fn compare(sort: &[Sort], a: &Document, b: &Document) -> Ordering {
    for key in sort {
        let order = compare_values(
            lookup(a, &key.path).as_deref(),
            lookup(b, &key.path).as_deref(),
        );
        let order = if key.descending {
            order.reverse()
        } else {
            order
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    let by_id = a.id.as_str().cmp(b.id.as_str());
    if sort.last().is_some_and(|k| k.descending) {
        by_id.reverse()
    } else {
        by_id
    }
}

/// The documents of `query` (filter, sort, offset, limit, projection) out of `docs`. The cursor
/// is not interpreted: page through with `offset`.
pub fn run(docs: &[Document], query: &Query) -> Vec<Document> {
    let mut hits: Vec<&Document> = docs
        .iter()
        .filter(|d| query.filter.as_ref().is_none_or(|f| matches(f, d)))
        .collect();
    hits.sort_by(|a, b| compare(&query.sort, a, b));
    hits.into_iter()
        .skip(query.offset as usize)
        .take(query.limit as usize)
        .map(|d| match &query.fields {
            Some(fields) => Document {
                data: project(&d.data, fields),
                ..d.clone()
            },
            None => d.clone(),
        })
        .collect()
}

/// How many of `docs` match `filter`.
pub fn count(docs: &[Document], filter: Option<&Filter>) -> u64 {
    docs.iter()
        .filter(|d| filter.is_none_or(|f| matches(f, d)))
        .count() as u64
}

/// The parts of `data` at `fields` (data paths made of keys), in the same nesting. Pseudo-paths
/// are ignored (the document's columns are always returned).
pub fn project(data: &Value, fields: &[Path]) -> Value {
    let mut out = serde_json::Map::new();
    for path in fields.iter().filter(|p| p.as_pseudo().is_none()) {
        let Some(value) = lookup_data(data, path) else {
            continue;
        };
        let keys: Vec<&str> = path
            .segments()
            .iter()
            .filter_map(|s| match s {
                Segment::Key(k) => Some(k.as_str()),
                Segment::Index(_) => None,
            })
            .collect();
        let Some((last, parents)) = keys.split_last() else {
            continue;
        };
        let mut at = Some(&mut out);
        for key in parents {
            let slot = at.and_then(|map| {
                map.entry((*key).to_owned())
                    .or_insert_with(|| Value::Object(Default::default()))
                    .as_object_mut()
            });
            // `None`: an ancestor was projected whole already.
            at = slot;
        }
        if let Some(map) = at {
            map.insert((*last).to_owned(), value.clone());
        }
    }
    Value::Object(out)
}

/// Applies an RFC 7386 JSON merge patch to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let map = target.as_object_mut().expect("just made an object");
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(id: &str, data: Value) -> Document {
        Document {
            id: id.into(),
            revision: 1,
            data,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    fn p(s: &str) -> Path {
        Path::parse(s).unwrap()
    }

    #[test]
    fn typed_semantics() {
        let d = doc(
            "x",
            json!({"n": 1, "s": "1", "b": true, "z": null, "t": ["a", 2], "o": {"k": "v"}}),
        );
        assert!(matches(&Filter::Eq(p("n"), json!(1.0)), &d));
        assert!(!matches(&Filter::Eq(p("n"), json!("1")), &d));
        assert!(!matches(&Filter::Eq(p("b"), json!(1)), &d));
        assert!(matches(&Filter::Ne(p("missing"), json!(1)), &d));
        assert!(!matches(&Filter::Lt(p("s"), json!(5)), &d));
        assert!(matches(&Filter::Lt(p("s"), json!("2")), &d));
        assert!(matches(&Filter::Contains(p("t"), json!(2)), &d));
        assert!(!matches(&Filter::Contains(p("t"), json!("2")), &d));
        assert!(matches(&Filter::Contains(p("o.k"), json!("v")), &d));
        assert!(matches(&Filter::Exists(p("z")), &d));
        assert!(matches(&Filter::IsNull(p("z")), &d));
        assert!(!matches(&Filter::IsNull(p("missing")), &d));
        assert!(matches(&Filter::Eq(p("t.1"), json!(2)), &d));
        assert!(!matches(&Filter::Exists(p("o.0")), &d));
        assert!(matches(&Filter::Eq(p("_id"), json!("x")), &d));
        assert!(matches(&Filter::And(vec![]), &d));
        assert!(!matches(&Filter::Or(vec![]), &d));
    }

    #[test]
    fn exact_numbers() {
        let n = |v: Value| v.as_number().unwrap().clone();
        assert_eq!(
            cmp_numbers(
                &n(json!(9007199254740993i64)),
                &n(json!(9007199254740992.0))
            ),
            Ordering::Greater
        );
        assert_eq!(cmp_numbers(&n(json!(-1)), &n(json!(-0.5))), Ordering::Less);
        assert_eq!(
            cmp_numbers(&n(json!(-1)), &n(json!(-1.5))),
            Ordering::Greater
        );
        assert_eq!(cmp_numbers(&n(json!(2)), &n(json!(2.0))), Ordering::Equal);
    }

    #[test]
    fn projection_and_patch() {
        let data = json!({"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 3});
        assert_eq!(
            project(&data, &[p("a.b"), p("d"), p("nope"), p("_id")]),
            json!({"a": {"b": 1}, "d": [1, 2]})
        );
        assert_eq!(
            project(&data, &[p("a"), p("a.b")]),
            json!({"a": {"b": 1, "c": 2}})
        );
        let mut target = json!({"a": {"b": 1, "c": 2}, "e": 3});
        merge_patch(
            &mut target,
            &json!({"a": {"b": null, "x": [1]}, "e": null, "f": "g"}),
        );
        assert_eq!(target, json!({"a": {"c": 2, "x": [1]}, "f": "g"}));
    }
}
