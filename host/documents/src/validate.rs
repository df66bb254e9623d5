//! Checks on everything that comes in, before it gets near SQL.

use serde_json::Value;

use crate::path::Pseudo;
use crate::{DocError, Filter, Limits, Path};

pub(crate) fn plugin(plugin: &str) -> Result<(), DocError> {
    if plugin.is_empty() || plugin.len() > 128 || plugin.chars().any(char::is_control) {
        return Err(DocError::invalid(format!(
            "invalid plugin id `{}`",
            plugin.escape_debug()
        )));
    }
    Ok(())
}

/// Collection and index names: 1–64 ASCII letters, digits, `_`, `-` or `.`.
pub(crate) fn name(kind: &str, name: &str) -> Result<(), DocError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !ok {
        return Err(DocError::invalid(format!(
            "invalid {kind} name `{}`: use 1 to 64 ASCII letters, digits, `_`, `-` or `.`",
            name.escape_debug()
        )));
    }
    Ok(())
}

pub(crate) fn id(limits: &Limits, id: &str) -> Result<(), DocError> {
    if id.is_empty() || id.len() > limits.max_id_bytes || id.chars().any(char::is_control) {
        return Err(DocError::invalid(format!(
            "invalid document id `{}`: an id is 1 to {} bytes of text without control characters",
            id.escape_debug(),
            limits.max_id_bytes
        )));
    }
    Ok(())
}

pub(crate) fn expected_revision(revision: Option<u64>) -> Result<(), DocError> {
    if revision.is_some_and(|r| r == 0 || r > i64::MAX as u64) {
        return Err(DocError::invalid(
            "an expected revision is at least 1 (the revision of a new document)",
        ));
    }
    Ok(())
}

/// Checks a document's data and returns its compact JSON text.
pub(crate) fn data(limits: &Limits, data: &Value) -> Result<String, DocError> {
    let Value::Object(map) = data else {
        return Err(DocError::invalid(format!(
            "a document is a JSON object, not {}",
            type_name(data)
        )));
    };
    if let Some(key) = Pseudo::NAMES.iter().find(|k| map.contains_key(**k)) {
        return Err(DocError::invalid(format!(
            "`{key}` is reserved for the document's own {}; rename that field",
            &key[1..]
        )));
    }
    walk(data, 1, limits.max_document_depth)?;
    let text = serde_json::to_string(data)
        .map_err(|e| DocError::invalid(format!("the document cannot be encoded: {e}")))?;
    if text.len() > limits.max_document_bytes {
        return Err(DocError::invalid(format!(
            "the document is {} bytes as JSON, above the limit of {} bytes; split it or store large content as a blob",
            text.len(),
            limits.max_document_bytes
        )));
    }
    Ok(text)
}

fn walk(value: &Value, depth: usize, max_depth: usize) -> Result<(), DocError> {
    match value {
        Value::String(s) => no_nul(s),
        Value::Array(items) => {
            deeper(depth, max_depth)?;
            items.iter().try_for_each(|v| walk(v, depth + 1, max_depth))
        }
        Value::Object(map) => {
            deeper(depth, max_depth)?;
            map.iter().try_for_each(|(k, v)| {
                no_nul(k)?;
                walk(v, depth + 1, max_depth)
            })
        }
        _ => Ok(()),
    }
}

fn deeper(depth: usize, max_depth: usize) -> Result<(), DocError> {
    if depth > max_depth {
        return Err(DocError::invalid(format!(
            "the document nests arrays and objects more than {max_depth} deep"
        )));
    }
    Ok(())
}

fn no_nul(s: &str) -> Result<(), DocError> {
    if s.contains('\0') {
        return Err(DocError::invalid(
            "strings in documents cannot contain the NUL character (\\u0000)",
        ));
    }
    Ok(())
}

pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks a filter tree: its size, and that every operator got a value it can use.
pub(crate) fn filter(limits: &Limits, filter: &Filter) -> Result<(), DocError> {
    let mut nodes = 0usize;
    check_filter(filter, &mut nodes, limits.max_filter_nodes)
}

fn check_filter(filter: &Filter, nodes: &mut usize, max: usize) -> Result<(), DocError> {
    *nodes += 1;
    if let Filter::In(_, values) | Filter::NotIn(_, values) = filter {
        *nodes += values.len();
    }
    if *nodes > max {
        return Err(DocError::invalid(format!(
            "the filter has more than {max} nodes (each value of an `in` list counts); simplify it"
        )));
    }
    match filter {
        Filter::Eq(p, v) | Filter::Ne(p, v) => scalar("eq/ne", p, v),
        Filter::Lt(p, v) | Filter::Lte(p, v) | Filter::Gt(p, v) | Filter::Gte(p, v) => match v {
            Value::Number(_) => Ok(()),
            Value::String(s) => no_nul(s),
            other => Err(DocError::invalid(format!(
                "lt/lte/gt/gte on `{p}` compare with a number or a string, not {}",
                type_name(other)
            ))),
        },
        Filter::In(p, vs) | Filter::NotIn(p, vs) => vs.iter().try_for_each(|v| scalar("in", p, v)),
        Filter::Contains(p, v) => scalar("contains", p, v),
        Filter::StartsWith(_, s) => no_nul(s),
        Filter::Exists(_) | Filter::IsNull(_) => Ok(()),
        Filter::And(fs) | Filter::Or(fs) => fs.iter().try_for_each(|f| check_filter(f, nodes, max)),
        Filter::Not(f) => check_filter(f, nodes, max),
    }
}

fn scalar(op: &str, path: &Path, value: &Value) -> Result<(), DocError> {
    match value {
        Value::Array(_) | Value::Object(_) => Err(DocError::invalid(format!(
            "{op} on `{path}` takes a null, boolean, number or string, not {}",
            type_name(value)
        ))),
        Value::String(s) => no_nul(s),
        _ => Ok(()),
    }
}

/// Projection paths: data keys only.
pub(crate) fn fields(fields: &[Path]) -> Result<(), DocError> {
    if fields.len() > 64 {
        return Err(DocError::invalid("a projection has at most 64 paths"));
    }
    if let Some(p) = fields.iter().find(|p| p.has_index()) {
        return Err(DocError::invalid(format!(
            "projection path `{p}` has an array index; project the whole array instead"
        )));
    }
    Ok(())
}
