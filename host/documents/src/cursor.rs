//! Opaque page cursors: the sort-key values and id of the last document of a page, plus a
//! fingerprint of the sort order they belong to.
//!
//! A cursor is not signed: a plugin that forges one only moves inside its own collection. Its
//! values are bind parameters like any other, and they are checked against the sort they claim.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::reference::{Rank, lookup};
use crate::sql::{KeyValue, key_value};
use crate::{DocError, Document, Sort};

const VERSION: u64 = 1;
const MAX_CURSOR_BYTES: usize = 8192;

/// Where a page ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Position {
    pub keys: Vec<KeyValue>,
    pub id: String,
}

fn fingerprint(sort: &[Sort]) -> String {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for key in sort {
        let part = format!("{}:{};", key.path, if key.descending { "d" } else { "a" });
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// The cursor after `doc` in a query sorted by `sort`.
pub(crate) fn encode(sort: &[Sort], doc: &Document) -> String {
    let keys: Vec<Value> = sort
        .iter()
        .map(|s| {
            let kv = key_value(lookup(doc, &s.path).as_deref());
            match kv.value {
                Some(v) => json!([kv.rank as u8, v]),
                None => json!([kv.rank as u8]),
            }
        })
        .collect();
    let body = json!({"v": VERSION, "s": fingerprint(sort), "k": keys, "id": doc.id});
    URL_SAFE_NO_PAD.encode(body.to_string())
}

pub(crate) fn decode(sort: &[Sort], cursor: &str) -> Result<Position, DocError> {
    let malformed = || {
        DocError::invalid(
            "the cursor is malformed: pass back `next_cursor` exactly as a previous page returned it",
        )
    };
    if cursor.len() > MAX_CURSOR_BYTES {
        return Err(malformed());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| malformed())?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    if body.get("v").and_then(Value::as_u64) != Some(VERSION) {
        return Err(malformed());
    }
    if body.get("s").and_then(Value::as_str) != Some(fingerprint(sort).as_str()) {
        return Err(DocError::invalid(
            "the cursor belongs to a query with a different sort order; use the same sort as the query that returned it, or start again without a cursor",
        ));
    }
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(malformed)?
        .to_owned();
    let raw = body
        .get("k")
        .and_then(Value::as_array)
        .ok_or_else(malformed)?;
    if raw.len() != sort.len() {
        return Err(malformed());
    }
    let mut keys = Vec::with_capacity(raw.len());
    for (item, s) in raw.iter().zip(sort) {
        let parts = item.as_array().ok_or_else(malformed)?;
        let rank = match parts.first().and_then(Value::as_u64) {
            Some(0) => Rank::Missing,
            Some(1) => Rank::Null,
            Some(2) => Rank::Bool,
            Some(3) => Rank::Number,
            Some(4) => Rank::String,
            Some(5) => Rank::Array,
            Some(6) => Rank::Object,
            _ => return Err(malformed()),
        };
        let value = parts.get(1).cloned();
        let consistent = match (rank, &value) {
            (Rank::Bool, Some(Value::Bool(_)))
            | (Rank::Number, Some(Value::Number(_)))
            | (Rank::String, Some(Value::String(_))) => parts.len() == 2,
            (Rank::Missing | Rank::Null | Rank::Array | Rank::Object, None) => parts.len() == 1,
            _ => false,
        };
        if !consistent {
            return Err(malformed());
        }
        // A pseudo-path is always present, with its column's type.
        if let Some(pseudo) = s.path.as_pseudo() {
            let expected = if pseudo == crate::path::Pseudo::Id {
                Rank::String
            } else {
                Rank::Number
            };
            if rank != expected
                || (rank == Rank::Number && value.as_ref().and_then(Value::as_i64).is_none())
            {
                return Err(malformed());
            }
        }
        if let Some(Value::String(s)) = &value
            && s.contains('\0')
        {
            return Err(malformed());
        }
        keys.push(KeyValue { rank, value });
    }
    if id.contains('\0') {
        return Err(malformed());
    }
    Ok(Position { keys, id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Path;

    #[test]
    fn round_trip_and_mismatch() {
        let sort = vec![
            Sort::desc(Path::parse("a").unwrap()),
            Sort::asc(Path::parse("b").unwrap()),
            Sort::asc(Path::parse("_created").unwrap()),
        ];
        let doc = Document {
            id: "x".into(),
            revision: 1,
            data: json!({"a": "é", "b": [1]}),
            created_at_ms: 5,
            updated_at_ms: 5,
        };
        let cursor = encode(&sort, &doc);
        let pos = decode(&sort, &cursor).unwrap();
        assert_eq!(pos.id, "x");
        assert_eq!(pos.keys[0].value, Some(json!("é")));
        assert_eq!(pos.keys[1].rank, Rank::Array);
        assert_eq!(pos.keys[2].value, Some(json!(5)));
        let other = vec![Sort::asc(Path::parse("a").unwrap())];
        let err = decode(&other, &cursor).unwrap_err().to_string();
        assert!(err.contains("different sort order"), "{err}");
        assert!(decode(&sort, "not a cursor!").is_err());
        assert!(decode(&sort, &URL_SAFE_NO_PAD.encode("{\"v\":1}")).is_err());
    }
}
