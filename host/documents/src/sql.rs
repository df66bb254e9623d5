//! Filters and sort orders compiled to SQL, one dialect per backend.
//!
//! Every value is a bind parameter. The only things written into SQL text are our own table
//! names, integer constants of our own, and path segments, which [`Path::parse`] limited to
//! letters, digits, `_` and `-` (so they can neither close a string literal nor a quoted JSON
//! path label). Paths must be literals: an expression index is used only when the query repeats
//! its expression exactly.
//!
//! A value at a path is compared through its *sort key*, the same expressions on which declared
//! indexes are built:
//!
//! - SQLite: `rank` (the type: 0 missing, 1 null, 2 boolean, 3 number, 4 string, 5 array,
//!   6 object) and `val` (the number, the string, 0/1 for booleans, 0 otherwise).
//! - PostgreSQL: `rank`, `num` (numbers and booleans as `numeric`, else 0) and `txt` (strings,
//!   `COLLATE "C"`, else '').
//!
//! None of them is ever NULL, so every compiled predicate is two-valued (`NOT` is exact), and
//! `ORDER BY rank, val` gives the documented order across types on both backends.

use std::fmt::Write as _;

use serde_json::{Number, Value};

use crate::path::{Pseudo, Segment};
use crate::reference::Rank;
use crate::{Filter, Path, Sort};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A bind parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
    Float(f64),
}

/// SQL text under construction, with its parameters (`$1`, `$2`, ... on both backends).
#[derive(Debug)]
pub(crate) struct Sql {
    pub dialect: Dialect,
    pub text: String,
    pub binds: Vec<Bind>,
}

impl Sql {
    pub fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            text: String::with_capacity(256),
            binds: Vec::new(),
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder for `bind`.
    pub fn bind(&mut self, bind: Bind) -> &mut Self {
        self.binds.push(bind);
        let n = self.binds.len();
        let _ = write!(self.text, "${n}");
        self
    }

    pub fn bind_text(&mut self, s: &str) -> &mut Self {
        self.bind(Bind::Text(s.to_owned()))
    }

    /// A JSON number compared with `val` (SQLite) or `num` (PostgreSQL, exact `numeric`).
    fn bind_number(&mut self, n: &Number) -> &mut Self {
        match self.dialect {
            Dialect::Sqlite => match n.as_i64() {
                Some(i) => self.bind(Bind::Int(i)),
                None => self.bind(Bind::Float(n.as_f64().unwrap_or(0.0))),
            },
            Dialect::Postgres => {
                self.bind(Bind::Text(n.to_string()));
                self.push("::numeric")
            }
        }
    }

    /// A JSON number compared with a `BIGINT` column.
    fn bind_column_number(&mut self, n: &Number) -> &mut Self {
        match (self.dialect, n.as_i64()) {
            (_, Some(i)) => self.bind(Bind::Int(i)),
            (Dialect::Sqlite, None) => self.bind(Bind::Float(n.as_f64().unwrap_or(0.0))),
            (Dialect::Postgres, None) => {
                self.bind(Bind::Text(n.to_string()));
                self.push("::numeric")
            }
        }
    }
}

const TRUE: &str = "(1=1)";
const FALSE: &str = "(1=0)";

/// The SQL form of a path.
#[derive(Debug, Clone)]
pub(crate) enum Key {
    /// A column of the document table (pseudo-paths), whose type is fixed.
    Column {
        column: &'static str,
        rank: Rank,
    },
    Data(DataKey),
}

#[derive(Debug, Clone)]
pub(crate) struct DataKey {
    /// SQLite: the JSON path literal (`'$."a"[0]'`); PostgreSQL: the `jsonb` expression.
    pub json: String,
    pub rank: String,
    /// SQLite: `val`; PostgreSQL: `num` for numbers and booleans.
    pub num: String,
    /// SQLite: `val`; PostgreSQL: `txt` for strings.
    pub txt: String,
    pub dialect: Dialect,
}

impl Key {
    pub fn new(dialect: Dialect, path: &Path) -> Self {
        Self::on(dialect, path, "data")
    }

    /// The key of `path` in the JSON column `column` (`new.data` in triggers).
    pub fn on(dialect: Dialect, path: &Path, column: &str) -> Self {
        if let Some(pseudo) = path.as_pseudo() {
            return Self::Column {
                column: pseudo.column(),
                rank: if pseudo == Pseudo::Id {
                    Rank::String
                } else {
                    Rank::Number
                },
            };
        }
        Self::Data(match dialect {
            Dialect::Sqlite => {
                let json = sqlite_json_path(path);
                let jt = format!("json_type({column}, {json})");
                let je = format!("json_extract({column}, {json})");
                let val = format!(
                    "(CASE {jt} WHEN 'integer' THEN {je} WHEN 'real' THEN {je} WHEN 'text' THEN {je} WHEN 'true' THEN 1 ELSE 0 END)"
                );
                DataKey {
                    rank: format!(
                        "(CASE {jt} WHEN 'null' THEN 1 WHEN 'true' THEN 2 WHEN 'false' THEN 2 WHEN 'integer' THEN 3 WHEN 'real' THEN 3 WHEN 'text' THEN 4 WHEN 'array' THEN 5 WHEN 'object' THEN 6 ELSE 0 END)"
                    ),
                    num: val.clone(),
                    txt: val,
                    json,
                    dialect,
                }
            }
            Dialect::Postgres => {
                let j = pg_json_expr(path, column);
                DataKey {
                    rank: format!(
                        "(CASE jsonb_typeof({j}) WHEN 'null' THEN 1 WHEN 'boolean' THEN 2 WHEN 'number' THEN 3 WHEN 'string' THEN 4 WHEN 'array' THEN 5 WHEN 'object' THEN 6 ELSE 0 END)"
                    ),
                    num: format!(
                        "(CASE jsonb_typeof({j}) WHEN 'number' THEN ({j})::numeric WHEN 'boolean' THEN (CASE WHEN ({j})::boolean THEN 1 ELSE 0 END) ELSE 0 END)"
                    ),
                    txt: format!(
                        "((CASE WHEN jsonb_typeof({j}) = 'string' THEN {j} #>> '{{}}' ELSE '' END) COLLATE \"C\")"
                    ),
                    json: j,
                    dialect,
                }
            }
        })
    }

    /// The expressions this key sorts by, most significant first (what an index is built on).
    pub fn sort_columns(&self) -> Vec<String> {
        match self {
            Self::Column { column, .. } => vec![(*column).to_owned()],
            Self::Data(k) => match k.dialect {
                Dialect::Sqlite => vec![k.rank.clone(), k.num.clone()],
                Dialect::Postgres => vec![k.rank.clone(), k.num.clone(), k.txt.clone()],
            },
        }
    }

    /// The column (or value expression) holding values of `rank`.
    fn value_expr(&self, rank: Rank) -> &str {
        match self {
            Self::Column { column, .. } => column,
            Self::Data(k) if rank == Rank::String => &k.txt,
            Self::Data(k) => &k.num,
        }
    }
}

impl DataKey {
    /// `rank = R AND `: the type test in front of a value comparison. On PostgreSQL a string
    /// test also pins `num` (always 0 for strings), so an index on (rank, num, txt) is searched
    /// on all three columns instead of scanning every string.
    fn guard(&self, sql: &mut Sql, rank: Rank) {
        let _ = write!(sql.text, "{} = {} AND ", self.rank, rank as u8);
        if self.dialect == Dialect::Postgres && rank == Rank::String {
            let _ = write!(sql.text, "{} = 0 AND ", self.num);
        }
    }
}

/// `'$."a"[0]."b"'`: labels are quoted, so `-` is fine; segments cannot contain `"` or `'`.
pub(crate) fn sqlite_json_path(path: &Path) -> String {
    let mut s = String::from("'$");
    for segment in path.segments() {
        match segment {
            Segment::Key(k) => {
                let _ = write!(s, ".\"{k}\"");
            }
            Segment::Index(i) => {
                let _ = write!(s, "[{i}]");
            }
        }
    }
    s.push('\'');
    s
}

/// `(data -> 'a' -> 'b')`: `->` with a key steps only into objects, like SQLite's `."a"`. With
/// an array index, a strict JSON path instead (`jsonb_path_query_first(data, 'strict $."a"[0]',
/// '{}', true)`), because `->` with an integer also "steps" into a scalar (`'5'::jsonb -> 0` is
/// `5`), where SQLite's `[0]` finds nothing.
pub(crate) fn pg_json_expr(path: &Path, column: &str) -> String {
    if path.has_index() {
        let mut jsonpath = String::from("strict $");
        for segment in path.segments() {
            match segment {
                Segment::Key(k) => {
                    let _ = write!(jsonpath, ".\"{k}\"");
                }
                Segment::Index(i) => {
                    let _ = write!(jsonpath, "[{i}]");
                }
            }
        }
        return format!("jsonb_path_query_first({column}, '{jsonpath}', '{{}}'::jsonb, true)");
    }
    let mut s = format!("({column}");
    for segment in path.segments() {
        if let Segment::Key(k) = segment {
            let _ = write!(s, " -> '{k}'");
        }
    }
    s.push(')');
    s
}

fn rank_of(value: &Value) -> Rank {
    Rank::of(Some(value))
}

/// Compiles `filter` into `sql` as a boolean expression that is never NULL.
pub(crate) fn filter(sql: &mut Sql, filter: &Filter) {
    let dialect = sql.dialect;
    let key = |p: &Path| Key::new(dialect, p);
    match filter {
        Filter::Eq(p, v) => eq(sql, &key(p), v),
        Filter::Ne(p, v) => {
            sql.push("(NOT ");
            eq(sql, &key(p), v);
            sql.push(")");
        }
        Filter::Lt(p, v) => compare(sql, &key(p), "<", v),
        Filter::Lte(p, v) => compare(sql, &key(p), "<=", v),
        Filter::Gt(p, v) => compare(sql, &key(p), ">", v),
        Filter::Gte(p, v) => compare(sql, &key(p), ">=", v),
        Filter::In(p, vs) => in_list(sql, &key(p), vs),
        Filter::NotIn(p, vs) => {
            sql.push("(NOT ");
            in_list(sql, &key(p), vs);
            sql.push(")");
        }
        Filter::Contains(p, v) => contains(sql, &key(p), v),
        Filter::StartsWith(p, prefix) => starts_with(sql, &key(p), prefix),
        Filter::Exists(p) => match key(p) {
            Key::Column { .. } => {
                sql.push(TRUE);
            }
            Key::Data(k) => {
                sql.push("(").push(&k.rank).push(" > 0)");
            }
        },
        Filter::IsNull(p) => match key(p) {
            Key::Column { .. } => {
                sql.push(FALSE);
            }
            Key::Data(k) => {
                sql.push("(").push(&k.rank).push(" = 1)");
            }
        },
        Filter::And(fs) | Filter::Or(fs) => {
            let (op, empty) = if matches!(filter, Filter::And(_)) {
                (" AND ", TRUE)
            } else {
                (" OR ", FALSE)
            };
            if fs.is_empty() {
                sql.push(empty);
                return;
            }
            sql.push("(");
            for (i, f) in fs.iter().enumerate() {
                if i > 0 {
                    sql.push(op);
                }
                self::filter(sql, f);
            }
            sql.push(")");
        }
        Filter::Not(f) => {
            sql.push("(NOT ");
            self::filter(sql, f);
            sql.push(")");
        }
    }
}

/// `key <op> value` for a value of the key's type; FALSE for any other type.
fn compare(sql: &mut Sql, key: &Key, op: &str, value: &Value) {
    let rank = rank_of(value);
    match key {
        Key::Column { column, rank: r } => {
            if *r != rank {
                sql.push(FALSE);
                return;
            }
            sql.push("(").push(column).push(" ").push(op).push(" ");
            match value {
                Value::Number(n) => sql.bind_column_number(n),
                Value::String(s) => sql.bind_text(s),
                _ => unreachable!("the rank matched a column type"),
            };
            sql.push(")");
        }
        Key::Data(k) => {
            sql.push("(");
            k.guard(sql, rank);
            sql.push(key.value_expr(rank)).push(" ").push(op).push(" ");
            match value {
                Value::Number(n) => sql.bind_number(n),
                Value::String(s) => sql.bind_text(s),
                Value::Bool(b) => sql.push(if *b { "1" } else { "0" }),
                _ => unreachable!("validated: range values are numbers or strings"),
            };
            sql.push(")");
        }
    }
}

fn eq(sql: &mut Sql, key: &Key, value: &Value) {
    match (key, value) {
        (Key::Data(k), Value::Null) => {
            sql.push("(").push(&k.rank).push(" = 1)");
        }
        _ => compare(sql, key, "=", value),
    }
}

fn in_list(sql: &mut Sql, key: &Key, values: &[Value]) {
    let mut terms = 0;
    sql.push("(");
    for rank in [Rank::Null, Rank::Bool, Rank::Number, Rank::String] {
        let group: Vec<&Value> = values.iter().filter(|v| rank_of(v) == rank).collect();
        if group.is_empty() {
            continue;
        }
        match key {
            Key::Column { rank: r, .. } if *r != rank => continue,
            _ => {}
        }
        if terms > 0 {
            sql.push(" OR ");
        }
        terms += 1;
        if rank == Rank::Null {
            eq(sql, key, &Value::Null);
            continue;
        }
        sql.push("(");
        if let Key::Data(k) = key {
            k.guard(sql, rank);
        }
        sql.push(key.value_expr(rank)).push(" IN (");
        for (i, v) in group.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            match (v, key) {
                (Value::Bool(b), _) => {
                    sql.push(if *b { "1" } else { "0" });
                }
                (Value::Number(n), Key::Column { .. }) => {
                    sql.bind_column_number(n);
                }
                (Value::Number(n), Key::Data(_)) => {
                    sql.bind_number(n);
                }
                (Value::String(s), _) => {
                    sql.bind_text(s);
                }
                _ => unreachable!("grouped by rank"),
            }
        }
        sql.push("))");
    }
    if terms == 0 {
        sql.push(FALSE);
    }
    sql.push(")");
}

fn contains(sql: &mut Sql, key: &Key, value: &Value) {
    let substring = |sql: &mut Sql, expr: &str, needle: &str| match sql.dialect {
        Dialect::Sqlite => {
            sql.push("instr(")
                .push(expr)
                .push(", ")
                .bind_text(needle)
                .push(") > 0");
        }
        Dialect::Postgres => {
            sql.push("strpos(")
                .push(expr)
                .push(", ")
                .bind_text(needle)
                .push(") > 0");
        }
    };
    match key {
        Key::Column { column, rank } => match value {
            Value::String(needle) if *rank == Rank::String => {
                sql.push("(");
                substring(sql, column, needle);
                sql.push(")");
            }
            _ => {
                sql.push(FALSE);
            }
        },
        Key::Data(k) => {
            sql.push("(");
            if let Value::String(needle) = value {
                sql.push("(");
                k.guard(sql, Rank::String);
                substring(sql, &k.txt, needle);
                sql.push(") OR ");
            }
            let _ = write!(sql.text, "({} = 5 AND ", k.rank);
            match sql.dialect {
                Dialect::Sqlite => {
                    let _ = write!(
                        sql.text,
                        "EXISTS (SELECT 1 FROM json_each(data, {}) AS e WHERE ",
                        k.json
                    );
                    match value {
                        Value::Null => sql.push("e.type = 'null'"),
                        Value::Bool(true) => sql.push("e.type = 'true'"),
                        Value::Bool(false) => sql.push("e.type = 'false'"),
                        Value::Number(n) => sql
                            .push("e.type IN ('integer', 'real') AND e.atom = ")
                            .bind_number(n),
                        Value::String(s) => sql.push("e.type = 'text' AND e.atom = ").bind_text(s),
                        _ => unreachable!("validated: contains takes a scalar"),
                    };
                    sql.push(")");
                }
                Dialect::Postgres => {
                    // Top-level containment of a one-element array: an element equal to the
                    // scalar (jsonb equality: typed, numbers by value).
                    let array = Value::Array(vec![value.clone()]).to_string();
                    sql.push(&k.json)
                        .push(" @> ")
                        .bind_text(&array)
                        .push("::jsonb");
                }
            }
            sql.push("))");
        }
    }
}

/// The smallest string above every string that starts with `prefix` (`None`: there is none).
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn starts_with(sql: &mut Sql, key: &Key, prefix: &str) {
    let expr = match key {
        Key::Column { column, rank } if *rank == Rank::String => (*column).to_owned(),
        Key::Column { .. } => {
            sql.push(FALSE);
            return;
        }
        Key::Data(k) => {
            sql.push("(");
            k.guard(sql, Rank::String);
            k.txt.clone()
        }
    };
    // A range, so an index on the path serves it; exact because strings compare by code point.
    sql.push("(").push(&expr).push(" >= ").bind_text(prefix);
    if let Some(upper) = prefix_upper_bound(prefix) {
        sql.push(" AND ").push(&expr).push(" < ").bind_text(&upper);
    }
    sql.push(")");
    if matches!(key, Key::Data(_)) {
        sql.push(")");
    }
}

/// Paths whose rank is the same in every document `filter` matches: a top-level conjunct
/// compares them with a value (`=`, `<`, `<=`, `>`, `>=` all check the rank first).
pub(crate) fn pinned_ranks(filter: Option<&Filter>) -> Vec<&Path> {
    fn walk<'a>(f: &'a Filter, out: &mut Vec<&'a Path>) {
        match f {
            Filter::And(fs) => fs.iter().for_each(|f| walk(f, out)),
            Filter::Eq(p, _)
            | Filter::Lt(p, _)
            | Filter::Lte(p, _)
            | Filter::Gt(p, _)
            | Filter::Gte(p, _) => out.push(p),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(f) = filter {
        walk(f, &mut out);
    }
    out
}

/// The columns a sort on `path` orders by. On SQLite a rank the filter pins is left out: sorting
/// on it changes nothing, and SQLite does not see that an expression fixed by `=` in the WHERE
/// clause can be skipped, so with it an index on the path could not give the order (a temporary
/// B-tree sorted every match instead: 140 ms for a page of 25 among 17,000 matches).
fn sort_columns_for(dialect: Dialect, path: &Path, pinned: &[&Path]) -> Vec<String> {
    let key = Key::new(dialect, path);
    match &key {
        Key::Data(k) if dialect == Dialect::Sqlite && pinned.contains(&path) => {
            vec![k.num.clone()]
        }
        _ => key.sort_columns(),
    }
}

/// `ORDER BY` terms for `sort`, with the id tie-breaker; `pinned` from [`pinned_ranks`].
pub(crate) fn order_by(dialect: Dialect, sort: &[Sort], pinned: &[&Path]) -> String {
    let mut terms = Vec::new();
    for s in sort {
        let dir = if s.descending { "DESC" } else { "ASC" };
        for column in sort_columns_for(dialect, &s.path, pinned) {
            terms.push(format!("{column} {dir}"));
        }
    }
    let dir = if sort.last().is_some_and(|s| s.descending) {
        "DESC"
    } else {
        "ASC"
    };
    terms.push(format!("id {dir}"));
    terms.join(", ")
}

/// A sort key's value in a cursor: the rank and, for booleans, numbers and strings, the value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyValue {
    pub rank: Rank,
    pub value: Option<Value>,
}

/// Appends the keyset condition: documents strictly after (`sort` keys = `keys`, id = `id`).
/// `pinned` as for [`order_by`]: the same columns, so the index that gives the order gives the
/// range too.
pub(crate) fn after(sql: &mut Sql, sort: &[Sort], keys: &[KeyValue], id: &str, pinned: &[&Path]) {
    let tie_desc = sort.last().is_some_and(|s| s.descending);
    let uniform = sort.iter().all(|s| s.descending == tie_desc);
    let dialect = sql.dialect;
    let parts: Vec<(Key, &KeyValue, bool)> = sort
        .iter()
        .zip(keys)
        .map(|(s, k)| (Key::new(dialect, &s.path), k, s.descending))
        .collect();
    if uniform {
        // One row-value comparison: an index on the sort keys gives a range scan.
        let mut columns: Vec<String> = sort
            .iter()
            .flat_map(|s| sort_columns_for(dialect, &s.path, pinned))
            .collect();
        columns.push("id".to_owned());
        sql.push("((").push(&columns.join(", ")).push(") ");
        sql.push(if tie_desc { "<" } else { ">" }).push(" (");
        for ((key, value, _), s) in parts.iter().zip(sort) {
            let rank_pinned = dialect == Dialect::Sqlite
                && matches!(key, Key::Data(_))
                && pinned.contains(&&s.path);
            key_values(sql, key, value, !rank_pinned);
            sql.push(", ");
        }
        sql.bind_text(id).push("))");
        return;
    }
    // Mixed directions: (k1 after) OR (k1 = AND k2 after) OR ... OR (all = AND id after).
    sql.push("(");
    for i in 0..=parts.len() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(");
        for (key, value, _) in &parts[..i] {
            row(sql, key, value, "=");
            sql.push(" AND ");
        }
        match parts.get(i) {
            Some((key, value, desc)) => row(sql, key, value, if *desc { "<" } else { ">" }),
            None => {
                sql.push("id ")
                    .push(if tie_desc { "<" } else { ">" })
                    .push(" ")
                    .bind_text(id);
            }
        }
        sql.push(")");
    }
    sql.push(")");
}

fn row(sql: &mut Sql, key: &Key, value: &KeyValue, op: &str) {
    sql.push("((")
        .push(&key.sort_columns().join(", "))
        .push(") ");
    sql.push(op).push(" (");
    key_values(sql, key, value, true);
    sql.push("))");
}

/// The values of a key's sort columns for a cursor position, comma-separated.
fn key_values(sql: &mut Sql, key: &Key, kv: &KeyValue, with_rank: bool) {
    match key {
        Key::Column { .. } => match &kv.value {
            Some(Value::String(s)) => {
                sql.bind_text(s);
            }
            Some(Value::Number(n)) => {
                sql.bind_column_number(n);
            }
            _ => unreachable!("cursor keys are checked against the sort"),
        },
        Key::Data(_) => {
            if with_rank {
                let _ = write!(sql.text, "{}, ", kv.rank as u8);
            }
            let num = |sql: &mut Sql| match &kv.value {
                Some(Value::Number(n)) => {
                    sql.bind_number(n);
                }
                Some(Value::Bool(b)) => {
                    sql.push(if *b { "1" } else { "0" });
                }
                Some(Value::String(s)) if sql.dialect == Dialect::Sqlite => {
                    sql.bind_text(s);
                }
                _ => {
                    sql.push("0");
                }
            };
            num(sql);
            if sql.dialect == Dialect::Postgres {
                sql.push(", ");
                match &kv.value {
                    Some(Value::String(s)) => sql.bind_text(s),
                    _ => sql.push("''"),
                };
            }
        }
    }
}

/// The rank and value of the sort key of `value` (`None`: missing).
pub(crate) fn key_value(value: Option<&Value>) -> KeyValue {
    let rank = Rank::of(value);
    KeyValue {
        rank,
        value: match value {
            Some(v @ (Value::Bool(_) | Value::Number(_) | Value::String(_))) => Some(v.clone()),
            _ => None,
        },
    }
}

/// SQLite: the strings inside the value at `path` of `column`, space-separated (for FTS5).
pub(crate) fn sqlite_search_text(path: &Path, column: &str) -> String {
    format!(
        "(SELECT group_concat(t.atom, ' ') FROM json_tree({column}, {}) AS t WHERE t.type = 'text')",
        sqlite_json_path(path)
    )
}

/// PostgreSQL: the weighted `tsvector` of the strings inside the value at each path.
pub(crate) fn pg_search_vector(fields: &[Path], language: &str) -> String {
    fields
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let weight = ["A", "B", "C", "D"][i.min(3)];
            format!(
                "setweight(COALESCE(jsonb_to_tsvector('{language}'::regconfig, {}, '[\"string\"]'), ''::tsvector), '{weight}')",
                pg_json_expr(path, "data")
            )
        })
        .collect::<Vec<_>>()
        .join(" || ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bounds() {
        assert_eq!(prefix_upper_bound("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_upper_bound("").as_deref(), None);
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    }

    #[test]
    fn values_are_bound_never_inlined() {
        let p = Path::parse("a.b-c.0").unwrap();
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let mut sql = Sql::new(dialect);
            let f = Filter::Or(vec![
                Filter::Eq(p.clone(), Value::from("x' OR 1=1 --")),
                Filter::Contains(p.clone(), Value::from("\"; DROP")),
                Filter::StartsWith(p.clone(), "'".into()),
                Filter::In(p.clone(), vec![Value::from(1.5), Value::from("q")]),
            ]);
            filter(&mut sql, &f);
            assert!(!sql.text.contains("OR 1=1"), "{}", sql.text);
            assert!(!sql.text.contains("DROP"), "{}", sql.text);
            assert!(!sql.text.contains("1.5"), "{}", sql.text);
            assert_eq!(sql.binds.len(), 7, "{}", sql.text);
        }
        assert_eq!(sqlite_json_path(&p), "'$.\"a\".\"b-c\"[0]'");
        assert_eq!(
            pg_json_expr(&p, "data"),
            r#"jsonb_path_query_first(data, 'strict $."a"."b-c"[0]', '{}'::jsonb, true)"#
        );
        assert_eq!(
            pg_json_expr(&Path::parse("a.b").unwrap(), "data"),
            "(data -> 'a' -> 'b')"
        );
    }
}
