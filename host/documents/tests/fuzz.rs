//! Random documents, random filter trees and sorts: SQLite and PostgreSQL must agree with the
//! in-memory reference evaluator, result for result and in the same order.
//!
//! Deterministic: `UCMS_FUZZ_SEED` and `UCMS_FUZZ_CASES` change the seed and the number of queries.

mod support;

use std::time::Instant;

use serde_json::{Map, Value, json};
use support::TestDb;
use ucms_documents::{Document, Filter, IndexSpec, Path, Query, Quota, Scope, Sort, reference};

/// xorshift64*: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

const STRINGS: &[&str] = &[
    "",
    "a",
    "A",
    "b",
    "ab",
    "abc",
    "aé",
    "é",
    "e",
    "Z",
    "z",
    "日本",
    "日",
    "😀",
    "a b",
    "-",
    "1",
    "10",
    "true",
    "null",
    "Ω",
    "ß",
    "\u{10FFFF}",
    "a\u{10FFFF}",
];

fn number(rng: &mut Rng) -> Value {
    match rng.below(4) {
        0 => json!(rng.below(7) as i64 - 3),
        1 => rng.pick(&[
            json!(10),
            json!(-10),
            json!(1_000_000),
            json!(9_007_199_254_740_993i64),
            json!(-9_007_199_254_740_993i64),
        ]),
        2 => rng.pick(&[
            json!(-2.5),
            json!(0.5),
            json!(2.0),
            json!(3.25),
            json!(0.1),
            json!(-3.0),
            json!(1e20),
            json!(9_007_199_254_740_992.0),
        ]),
        _ => json!(rng.below(3) as i64),
    }
}

fn scalar(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2..=5 => number(rng),
        _ => Value::String(rng.pick(STRINGS).to_owned()),
    }
}

fn value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 1 { 8 } else { 10 }) {
        0..=7 => scalar(rng),
        8 => {
            let n = rng.below(4);
            Value::Array((0..n).map(|_| value(rng, depth + 1)).collect())
        }
        _ => {
            let mut map = Map::new();
            for key in ["x", "y", "z"] {
                if rng.chance(60) {
                    map.insert(key.to_owned(), value(rng, depth + 1));
                }
            }
            Value::Object(map)
        }
    }
}

fn document(rng: &mut Rng) -> Value {
    let mut map = Map::new();
    for key in ["a", "b", "c", "d-e"] {
        if rng.chance(75) {
            map.insert(key.to_owned(), value(rng, 0));
        }
    }
    if rng.chance(75) {
        let n = if rng.chance(80) {
            let mut inner = Map::new();
            for key in ["x", "y", "z"] {
                if rng.chance(70) {
                    inner.insert(key.to_owned(), value(rng, 1));
                }
            }
            Value::Object(inner)
        } else {
            scalar(rng)
        };
        map.insert("n".to_owned(), n);
    }
    if rng.chance(75) {
        let t = if rng.chance(85) {
            let len = rng.below(5);
            Value::Array(
                (0..len)
                    .map(|_| {
                        if rng.chance(85) {
                            scalar(rng)
                        } else {
                            value(rng, 1)
                        }
                    })
                    .collect(),
            )
        } else {
            scalar(rng)
        };
        map.insert("t".to_owned(), t);
    }
    Value::Object(map)
}

const PATHS: &[&str] = &[
    "a",
    "b",
    "c",
    "d-e",
    "n",
    "n.x",
    "n.y",
    "n.z",
    "t",
    "t.0",
    "t.1",
    "a.x",
    "missing",
    "_id",
    "_revision",
    "_created",
];

fn path(rng: &mut Rng) -> Path {
    Path::parse(rng.pick(PATHS)).unwrap()
}

fn filter(rng: &mut Rng, depth: usize) -> Filter {
    let leaf = depth >= 3 || rng.chance(55);
    if !leaf {
        return match rng.below(3) {
            0 => Filter::And((0..rng.below(4)).map(|_| filter(rng, depth + 1)).collect()),
            1 => Filter::Or((0..rng.below(4)).map(|_| filter(rng, depth + 1)).collect()),
            _ => Filter::Not(Box::new(filter(rng, depth + 1))),
        };
    }
    let p = path(rng);
    let range_value = |rng: &mut Rng| {
        if rng.chance(50) {
            number(rng)
        } else {
            Value::String(rng.pick(STRINGS).to_owned())
        }
    };
    match rng.below(13) {
        0 | 1 => Filter::Eq(p, scalar(rng)),
        2 => Filter::Ne(p, scalar(rng)),
        3 => Filter::Lt(p, range_value(rng)),
        4 => Filter::Lte(p, range_value(rng)),
        5 => Filter::Gt(p, range_value(rng)),
        6 => Filter::Gte(p, range_value(rng)),
        7 => Filter::In(p, (0..rng.below(5)).map(|_| scalar(rng)).collect()),
        8 => Filter::NotIn(p, (0..rng.below(4)).map(|_| scalar(rng)).collect()),
        9 => Filter::Contains(p, scalar(rng)),
        10 => Filter::StartsWith(
            p,
            rng.pick(&["", "a", "A", "é", "日", "ab", "\u{10FFFF}", "1", "d"])
                .to_owned(),
        ),
        11 => Filter::Exists(p),
        _ => Filter::IsNull(p),
    }
}

fn sort(rng: &mut Rng) -> Vec<Sort> {
    let n = rng.pick(&[0, 1, 1, 1, 2, 2, 3]);
    (0..n)
        .map(|_| Sort {
            path: path(rng),
            descending: rng.chance(50),
        })
        .collect()
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn fuzz(t: &TestDb) {
    let seed = env("UCMS_FUZZ_SEED", 0x5eed_0001);
    let cases = env("UCMS_FUZZ_CASES", 2500) as usize;
    let mut rng = Rng(seed | 1);
    let d = &t.docs;
    let s = Scope::new("fuzz", "docs");
    let started = Instant::now();

    // Indexes on some paths: results must not depend on them.
    for (name, fields) in [
        ("a", vec!["a"]),
        ("b-nx", vec!["b", "n.x"]),
        ("t0", vec!["t.0"]),
    ] {
        d.ensure_index(
            s,
            &IndexSpec {
                name: name.into(),
                fields: fields
                    .into_iter()
                    .map(|f| Path::parse(f).unwrap())
                    .collect(),
                unique: false,
            },
        )
        .await
        .unwrap();
    }
    let seed_docs: Vec<(Option<String>, Value)> = (0..240)
        .map(|i| {
            let id = if i % 5 == 0 {
                // Ids that sort in interesting ways.
                format!("{}{i}", rng.pick(&["", "A", "é", "z", "日", "~"]))
            } else {
                format!("doc-{i:03}")
            };
            (Some(id), document(&mut rng))
        })
        .collect();
    let mut all: Vec<Document> = d
        .insert_many(s, &Quota::UNLIMITED, seed_docs)
        .await
        .unwrap();
    // Some writes, so revisions and times differ.
    for i in (0..all.len()).step_by(7) {
        let id = all[i].id.clone();
        let new = document(&mut rng);
        all[i] = d
            .replace(s, &Quota::UNLIMITED, &id, new, None)
            .await
            .unwrap();
        if i % 3 == 0 {
            let patch = json!({"c": scalar(&mut rng), "b": null});
            all[i] = d
                .patch(s, &Quota::UNLIMITED, &id, patch, None)
                .await
                .unwrap();
        }
    }
    // What the database returns is what the reference sees (PostgreSQL normalises numbers).
    let ids: Vec<String> = all.iter().map(|d| d.id.clone()).collect();
    let stored: Vec<Document> = d
        .get_many(s, &ids)
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    for (a, b) in all.iter().zip(&stored) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.revision, b.revision);
    }
    let all = stored;

    let mut matched = 0usize;
    for case in 0..cases {
        let f = if rng.chance(90) {
            Some(filter(&mut rng, 0))
        } else {
            None
        };
        let q = Query {
            filter: f,
            sort: sort(&mut rng),
            limit: 1 + rng.below(60) as u32,
            offset: if rng.chance(20) {
                rng.below(10) as u32
            } else {
                0
            },
            ..Query::default()
        };
        let expected_docs = reference::run(&all, &q);
        let expected_ids: Vec<&str> = expected_docs.iter().map(|d| d.id.as_str()).collect();
        let page = d
            .query(s, &q)
            .await
            .unwrap_or_else(|e| panic!("case {case}: {q:?}: {e}"));
        let got: Vec<&str> = page.documents.iter().map(|d| d.id.as_str()).collect();
        if got != expected_ids {
            report(t, seed, case, &q, &all, &expected_ids, &got);
        }
        matched += got.len();
        if case % 5 == 0 {
            let n = d.count(s, q.filter.as_ref()).await.unwrap();
            assert_eq!(
                n,
                reference::count(&all, q.filter.as_ref()),
                "{}: seed {seed:#x} case {case}: count of {:?}",
                t.backend,
                q.filter
            );
        }
        if case % 10 == 0 {
            // Walk every page by cursor.
            let mut paged = Query {
                limit: 1 + rng.below(25) as u32,
                offset: 0,
                ..q.clone()
            };
            let full: Vec<String> = reference::run(
                &all,
                &Query {
                    limit: 10_000,
                    offset: 0,
                    ..q.clone()
                },
            )
            .into_iter()
            .map(|d| d.id)
            .collect();
            let mut walked = Vec::new();
            loop {
                let page = d
                    .query(s, &paged)
                    .await
                    .unwrap_or_else(|e| panic!("case {case}: {paged:?}: {e}"));
                walked.extend(page.documents.into_iter().map(|d| d.id));
                match page.next_cursor {
                    Some(c) => paged.cursor = Some(c),
                    None => break,
                }
                assert!(
                    walked.len() <= all.len(),
                    "{}: case {case}: the cursor loops",
                    t.backend
                );
            }
            if walked != full {
                let w: Vec<&str> = walked.iter().map(String::as_str).collect();
                let f: Vec<&str> = full.iter().map(String::as_str).collect();
                report(t, seed, case, &paged, &all, &f, &w);
            }
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "fuzz on {}: {cases} queries, {matched} documents matched, seed {seed:#x}, {elapsed:.2?}",
        t.backend
    );
    assert!(
        matched > cases,
        "the generator should produce queries that match documents"
    );
}

fn report(
    t: &TestDb,
    seed: u64,
    case: usize,
    q: &Query,
    all: &[Document],
    expected: &[&str],
    got: &[&str],
) -> ! {
    let show = |ids: &[&str]| {
        ids.iter()
            .map(|id| {
                let doc = all.iter().find(|d| d.id == *id).unwrap();
                format!("  {id} rev {} {}", doc.revision, doc.data)
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let missing: Vec<&str> = expected
        .iter()
        .filter(|id| !got.contains(id))
        .copied()
        .collect();
    let extra: Vec<&str> = got
        .iter()
        .filter(|id| !expected.contains(id))
        .copied()
        .collect();
    panic!(
        "{} disagrees with the reference (seed {seed:#x}, case {case})\nquery: {q:#?}\nexpected {expected:?}\ngot      {got:?}\nmissing:\n{}\nextra:\n{}",
        t.backend,
        show(&missing),
        show(&extra)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_agrees_with_the_reference() {
    let t = TestDb::sqlite().await;
    fuzz(&t).await;
    t.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_agrees_with_the_reference() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    fuzz(&t).await;
    t.close().await;
}
