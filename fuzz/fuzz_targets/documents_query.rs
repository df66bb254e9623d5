//! Random documents and a random query (filter tree, sort keys, offset, limit, projection) → the
//! SQL the document store compiles, run on SQLite in memory, against the plain-Rust reference
//! (`ucms_documents::reference`), result for result and in order.
//!
//! Checks: no panic; the store either refuses the query as `invalid` (a clear error for the
//! plugin) or answers exactly what the reference answers; `count` agrees too. Any other error
//! (SQL the compiler got wrong) is a crash.
#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use ucms_documents::{
    DocError, Document, Documents, Filter, Limits, Path, Query, Quota, Scope, Sort, reference,
};

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../host/migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("../host/migrations/postgres");

struct Env {
    rt: tokio::runtime::Runtime,
    docs: Documents,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let docs = rt.block_on(async {
            let db = ucms_db::Db::connect("sqlite::memory:", Some(1))
                .await
                .unwrap();
            db.migrate(&SQLITE, &POSTGRES).await.unwrap();
            Documents::new(db, Limits::default())
        });
        Env { rt, docs }
    })
}

const KEYS: &[&str] = &["a", "b", "c", "x", "é", "日本", "d-e", "_f"];
const PATHS: &[&str] = &[
    "a",
    "b",
    "c",
    "a.x",
    "a.b",
    "b.0",
    "c.1",
    "a.x.y",
    "d-e",
    "é",
    "_id",
    "_revision",
    "a.0.x",
    "日本",
];
const STRINGS: &[&str] = &[
    "",
    "a",
    "A",
    "b",
    "ab",
    "é",
    "e",
    "日本",
    "😀",
    "1",
    "true",
    "null",
    "a b",
    "\u{10FFFF}",
    "ß",
    "%",
    "_",
    "\\",
    "'",
    "\"",
];

fn string(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    if u.ratio(1, 4)? {
        let s: String = u.arbitrary()?;
        Ok(s.chars().take(8).collect())
    } else {
        Ok(u.choose(STRINGS)?.to_string())
    }
}

fn number(u: &mut Unstructured<'_>) -> arbitrary::Result<Value> {
    Ok(match u.int_in_range(0..=4)? {
        0 => json!(u.int_in_range(-3i64..=3)?),
        1 => json!(*u.choose(&[
            i64::MAX,
            i64::MIN,
            9_007_199_254_740_993,
            -9_007_199_254_740_993,
            1_000_000
        ])?),
        2 => json!(*u.choose(&[
            0.5,
            -2.5,
            2.0,
            1e20,
            -1e-20,
            9_007_199_254_740_992.0,
            1.7976931348623157e308
        ])?),
        3 => json!(u64::MAX),
        _ => {
            let f: f64 = u.arbitrary()?;
            if f.is_finite() { json!(f) } else { json!(0) }
        }
    })
}

fn scalar(u: &mut Unstructured<'_>) -> arbitrary::Result<Value> {
    Ok(match u.int_in_range(0..=9)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2..=5 => number(u)?,
        _ => Value::String(string(u)?),
    })
}

fn value(u: &mut Unstructured<'_>, depth: usize) -> arbitrary::Result<Value> {
    Ok(match u.int_in_range(0..=if depth > 2 { 7 } else { 9 })? {
        0..=7 => scalar(u)?,
        8 => Value::Array(
            (0..u.int_in_range(0..=3)?)
                .map(|_| value(u, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        _ => {
            let mut map = Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                map.insert(u.choose(KEYS)?.to_string(), value(u, depth + 1)?);
            }
            Value::Object(map)
        }
    })
}

fn path(u: &mut Unstructured<'_>) -> arbitrary::Result<Path> {
    if u.ratio(1, 8)? {
        let s: String = u.arbitrary()?;
        if let Ok(p) = Path::parse(&s) {
            return Ok(p);
        }
    }
    Ok(Path::parse(u.choose(PATHS)?).expect("listed paths are valid"))
}

fn filter(u: &mut Unstructured<'_>, depth: usize) -> arbitrary::Result<Filter> {
    let leaf = depth >= 3 || u.ratio(2, 3)?;
    if leaf {
        let p = path(u)?;
        // Mostly scalars; sometimes what the store must refuse (arrays, objects).
        let v = if u.ratio(1, 12)? {
            value(u, 0)?
        } else {
            scalar(u)?
        };
        return Ok(match u.int_in_range(0..=11)? {
            0 => Filter::Eq(p, v),
            1 => Filter::Ne(p, v),
            2 => Filter::Lt(p, v),
            3 => Filter::Lte(p, v),
            4 => Filter::Gt(p, v),
            5 => Filter::Gte(p, v),
            6 => Filter::In(
                p,
                (0..u.int_in_range(0..=3)?)
                    .map(|_| scalar(u))
                    .collect::<Result<_, _>>()?,
            ),
            7 => Filter::NotIn(
                p,
                (0..u.int_in_range(0..=3)?)
                    .map(|_| scalar(u))
                    .collect::<Result<_, _>>()?,
            ),
            8 => Filter::Contains(p, v),
            9 => Filter::StartsWith(p, string(u)?),
            10 => Filter::Exists(p),
            _ => Filter::IsNull(p),
        });
    }
    let children = |u: &mut Unstructured<'_>| -> arbitrary::Result<Vec<Filter>> {
        (0..u.int_in_range(0..=3)?)
            .map(|_| filter(u, depth + 1))
            .collect()
    };
    Ok(match u.int_in_range(0..=2)? {
        0 => Filter::And(children(u)?),
        1 => Filter::Or(children(u)?),
        _ => Filter::Not(Box::new(filter(u, depth + 1)?)),
    })
}

#[derive(Debug)]
struct Case {
    docs: Vec<Value>,
    query: Query,
}

fn case(u: &mut Unstructured<'_>) -> arbitrary::Result<Case> {
    let docs = (0..u.int_in_range(0..=8)?)
        .map(|_| {
            let mut map = Map::new();
            for _ in 0..u.int_in_range(0..=4)? {
                map.insert(u.choose(KEYS)?.to_string(), value(u, 1)?);
            }
            Ok(Value::Object(map))
        })
        .collect::<arbitrary::Result<_>>()?;
    let query = Query {
        filter: if u.ratio(9, 10)? {
            Some(filter(u, 0)?)
        } else {
            None
        },
        sort: (0..u.int_in_range(0..=3)?)
            .map(|_| {
                Ok(Sort {
                    path: path(u)?,
                    descending: u.arbitrary()?,
                })
            })
            .collect::<arbitrary::Result<_>>()?,
        limit: u.int_in_range(0..=10)?,
        offset: u.int_in_range(0..=3)?,
        fields: if u.ratio(1, 6)? {
            Some(
                (0..u.int_in_range(1..=2)?)
                    .map(|_| path(u))
                    .collect::<arbitrary::Result<_>>()?,
            )
        } else {
            None
        },
        ..Query::default()
    };
    Ok(Case { docs, query })
}

fuzz_target!(|data: &[u8]| {
    let Ok(case) = case(&mut Unstructured::new(data)) else {
        return;
    };
    let env = env();
    static N: AtomicU64 = AtomicU64::new(0);
    let collection = format!("c{}", N.fetch_add(1, Ordering::Relaxed));
    let scope = Scope::new("fuzz", &collection);
    env.rt.block_on(async {
        let d = &env.docs;
        let mut ids = Vec::new();
        for (i, doc) in case.docs.iter().enumerate() {
            let id = format!("d{i}");
            // A document the store refuses (a NUL in a string, say) is left out; any other
            // failure is a crash.
            match d
                .insert(scope, &Quota::UNLIMITED, Some(&id), doc.clone())
                .await
            {
                Ok(_) => ids.push(id),
                Err(DocError::Invalid(_)) => {}
                Err(other) => panic!("insert {doc}: {other}"),
            }
        }
        // What the database stores is what the reference sees.
        let stored: Vec<Document> = d
            .get_many(scope, &ids)
            .await
            .expect("get_many")
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let outcome = d.query(scope, &case.query).await;
        match outcome {
            Ok(page) => {
                let want: Vec<Document> = reference::run(&stored, &case.query);
                let got_ids: Vec<&str> = page.documents.iter().map(|d| d.id.as_str()).collect();
                let want_ids: Vec<&str> = want.iter().map(|d| d.id.as_str()).collect();
                assert_eq!(got_ids, want_ids, "{:?}\nover {:#?}", case.query, stored);
                if case.query.fields.is_some() {
                    for (g, w) in page.documents.iter().zip(&want) {
                        assert_eq!(g.data, w.data, "projection {:?}", case.query.fields);
                    }
                }
                let n = d
                    .count(scope, case.query.filter.as_ref())
                    .await
                    .expect("count of a filter query accepted");
                assert_eq!(
                    n,
                    reference::count(&stored, case.query.filter.as_ref()),
                    "{:?}",
                    case.query.filter
                );
            }
            Err(DocError::Invalid(_)) => {}
            Err(other) => panic!("{:?} failed: {other}", case.query),
        }
        if !ids.is_empty() {
            d.drop_collection(scope).await.expect("drop");
        }
    });
});
