//! `fuzzer`: an adversarial plugin that calls every host function it imports, many times, with
//! arguments drawn from a seed: empty, huge, NUL-laden, `..`-laden, wildcard-laden and non-UTF-8
//! (where the type is bytes) strings; extreme integers; filter arenas with forward, shared, cyclic
//! and out-of-range nodes, deep chains and giant lists; random JSON, topics, URLs, headers, hook
//! points and permission names. Built with plain `wit-bindgen` against `wit/v0.2.1`, not the SDK,
//! so nothing stands between the random arguments and the host.
//!
//! - `POST /run` (public), body `{"seed": u64, "count": u32, "echo": "http://127.0.0.1:PORT"}`:
//!   makes `count` calls and answers `{"calls", "ok", "errors": {"kv.invalid": n, ...},
//!   "violations": [...]}`. A violation is a host answer that contradicts an earlier one (a value
//!   read back differs from the value written, a listing by prefix returns a key without the
//!   prefix, a blob range with the wrong bytes...). Every error the guest sees is, by the types,
//!   one of the WIT variants; a host bug that traps instead ends the invocation with
//!   `plugin_failed`, which the test looks for.
//! - events of `fuzzer.*`: a few calls from the event's payload as seed; a payload starting with
//!   `fail` fails the delivery.
//! - hook `fuzzer.check`: changes, rejects or passes the value by its first byte, and sometimes
//!   runs the point again from inside (the host bounds the nesting).

#![allow(unsafe_code)]

wit_bindgen::generate!({
    world: "ucms:plugin/plugin@0.2.1",
    path: ["../../../wit/v0.2.1/host", "../../../wit/v0.2.1/plugin"],
    generate_all,
});

use std::collections::BTreeMap;
use std::fmt::Write as _;

use exports::ucms::plugin::{
    event_handler, hooks as hook_export, http_handler, lifecycle, scheduler,
};
use serde_json::{Value, json};
use ucms::host::{
    auth, blobs, cache, config, documents as docs, events, hooks, http_client, kv, log,
};

/// The API version this component was built for, as `ucms_sdk::export!` stamps it.
#[used]
#[unsafe(link_section = "ucms:api-version")]
static UCMS_API_VERSION: [u8; 5] = *b"0.2.1";

/// xorshift64*: small, fast, the same everywhere, so a seed replays exactly.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn u32(&mut self) -> u32 {
        let any = self.next() as u32;
        *self.pick(&[0, 1, 2, 7, 100, 1000, 65_536, u32::MAX - 1, u32::MAX, any])
    }

    fn u64(&mut self) -> u64 {
        let any = self.next();
        *self.pick(&[
            0,
            1,
            1000,
            u64::from(u32::MAX) + 1,
            i64::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
            any,
        ])
    }

    fn i64(&mut self) -> i64 {
        let any = self.next() as i64;
        *self.pick(&[
            0,
            1,
            -1,
            i64::MAX,
            i64::MIN,
            i64::MAX - 1,
            i64::MIN + 1,
            any,
        ])
    }
}

/// Strings that have broken parsers, paths and SQL before.
const NASTY: &[&str] = &[
    "",
    " ",
    "a",
    "\0",
    "a\0b",
    "../../etc/passwd",
    "..",
    ".",
    "/",
    "//",
    "/abs/path",
    "C:\\windows\\system32",
    "%",
    "_",
    "a%",
    "a_",
    "*",
    "?",
    "[",
    "'",
    "\"",
    "\\",
    "';DROP TABLE kv;--",
    "\" OR 1=1 --",
    "$.a",
    "a.b.c",
    "a..b",
    "_id",
    "_revision",
    "0",
    "-1",
    "1e309",
    "NaN",
    "null",
    "true",
    "{}",
    "[]",
    "日本語",
    "é",
    "e\u{301}",
    "😀",
    "\u{FEFF}",
    "\u{202E}",
    "\u{10FFFF}",
    "\r\n",
    "\t",
    "fuzzer",
    "fuzzer.check",
    "fuzzer.x",
    "fuzzer.*",
    "things",
    "uploads/x",
    "ucms.plugins.manage",
    "fuzzer.things.edit",
    "*.*",
];

/// A string for long lists: any of the nasty ones, never huge.
fn small(rng: &mut Rng) -> String {
    let s = string(rng);
    if s.len() > 256 {
        rng.pick(NASTY).to_string()
    } else {
        s
    }
}

fn string(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=3 => rng.pick(NASTY).to_string(),
        4 => {
            // Huge: up to 256 KiB, sometimes 2 MiB (over most caps).
            let n = if rng.chance(10) {
                2 << 20
            } else {
                rng.below(256 << 10)
            };
            let c = *rng.pick(&['a', '\0', 'é', '😀', '%', '/']);
            std::iter::repeat_n(c, n / c.len_utf8()).collect()
        }
        5 => format!("{}{}", rng.pick(NASTY), rng.pick(NASTY)),
        6 => {
            let n = rng.below(40);
            (0..n)
                .map(|_| char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('x'))
                .collect()
        }
        7 => format!("k{}", rng.below(20)),
        _ => {
            let n = rng.below(24);
            (0..n)
                .map(|_| (b'!' + rng.below(94) as u8) as char)
                .collect()
        }
    }
}

fn bytes(rng: &mut Rng) -> Vec<u8> {
    match rng.below(8) {
        0 => Vec::new(),
        1 => vec![0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xf0, 0x28, 0x8c, 0x28],
        2 => {
            let n = if rng.chance(10) {
                3 << 20
            } else {
                rng.below(300 << 10)
            };
            vec![rng.below(256) as u8; n]
        }
        3 => json(rng, 0).to_string().into_bytes(),
        4 => deep_json(rng).into_bytes(),
        5 => string(rng).into_bytes(),
        _ => {
            let n = rng.below(64);
            (0..n).map(|_| rng.next() as u8).collect()
        }
    }
}

fn json(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => json!(rng.i64()),
        3 => json!(*rng.pick(&[0.5, -0.0, 1e300, -1e-300, 2.5, f64::MAX, f64::MIN_POSITIVE])),
        4 => json!(u64::MAX),
        5 => Value::String(if rng.chance(80) {
            rng.pick(NASTY).to_string()
        } else {
            string(rng)
        }),
        6 | 7 => {
            let mut map = serde_json::Map::new();
            for _ in 0..rng.below(5) {
                let key = if rng.chance(70) {
                    rng.pick(&[
                        "slug", "rank", "tags", "title", "body", "a", "b", "_id", "é", "",
                    ])
                    .to_string()
                } else {
                    string(rng)
                };
                map.insert(key, json(rng, depth + 1));
            }
            Value::Object(map)
        }
        _ => Value::Array((0..rng.below(5)).map(|_| json(rng, depth + 1)).collect()),
    }
}

/// Nesting far past any sane limit, or text that is almost JSON.
fn deep_json(rng: &mut Rng) -> String {
    let n = *rng.pick(&[10, 100, 129, 1000, 100_000]);
    match rng.below(4) {
        0 => format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n)),
        1 => format!("{}{}", "{\"a\":".repeat(n), "}".repeat(n)),
        2 => "[".repeat(n),
        _ => format!("{{\"a\":1,\"a\":2,\"big\":1{}}}", "0".repeat(n)),
    }
}

/// A document body: mostly a small object the indexes and search can use.
fn document(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => string(rng),
        1 => deep_json(rng),
        2 => json(rng, 0).to_string(),
        _ => {
            let slug = if rng.chance(50) {
                format!("s{}", rng.below(30))
            } else {
                string(rng)
            };
            json!({
                "slug": slug,
                "rank": json(rng, 3),
                "tags": [rng.pick(NASTY), rng.below(10)],
                "title": rng.pick(NASTY),
                "body": if rng.chance(10) { string(rng) } else { "the quick brown fox".to_string() },
            })
            .to_string()
        }
    }
}

fn collection(rng: &mut Rng) -> String {
    if rng.chance(70) {
        "things".into()
    } else if rng.chance(50) {
        format!("c{}", rng.below(4))
    } else {
        string(rng)
    }
}

fn path(rng: &mut Rng) -> String {
    if rng.chance(60) {
        rng.pick(&[
            "slug",
            "rank",
            "tags",
            "tags.0",
            "title",
            "body",
            "_id",
            "_revision",
            "_created",
            "_updated",
            "a.b",
            "a.0.b",
        ])
        .to_string()
    } else {
        string(rng)
    }
}

fn comparison(rng: &mut Rng, many: bool) -> docs::Comparison {
    if many {
        // One of thousands of nodes: nothing huge, or the guest runs out of memory first.
        return docs::Comparison {
            path: small(rng),
            value: json(rng, 3).to_string(),
        };
    }
    let value = match rng.below(6) {
        0 => string(rng),
        1 => deep_json(rng),
        2 => format!(
            "[{}]",
            (0..rng.below(5000))
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        _ => json(rng, 2).to_string(),
    };
    docs::Comparison {
        path: path(rng),
        value,
    }
}

/// A filter arena: usually a valid tree, often not (forward or out-of-range children, a node
/// used twice, a root that is also a child, a cycle, an empty arena, thousands of nodes, a chain
/// as deep as the arena allows).
fn filter(rng: &mut Rng) -> docs::Filter {
    let n = match rng.below(10) {
        0 => 0,
        1 => *rng.pick(&[199, 200, 201, 5000]),
        _ => 1 + rng.below(12),
    };
    let mut nodes = Vec::with_capacity(n);
    let chain = rng.chance(15);
    let many = n > 12;
    for i in 0..n {
        let child = |rng: &mut Rng| -> u32 {
            if i > 0 && rng.chance(85) {
                rng.below(i) as u32
            } else {
                rng.u32()
            }
        };
        let node = if chain && i > 0 {
            if rng.chance(50) {
                docs::FilterNode::Not(i as u32 - 1)
            } else {
                docs::FilterNode::And(vec![i as u32 - 1])
            }
        } else {
            match rng.below(16) {
                0 => docs::FilterNode::Eq(comparison(rng, many)),
                1 => docs::FilterNode::Ne(comparison(rng, many)),
                2 => docs::FilterNode::Lt(comparison(rng, many)),
                3 => docs::FilterNode::Lte(comparison(rng, many)),
                4 => docs::FilterNode::Gt(comparison(rng, many)),
                5 => docs::FilterNode::Gte(comparison(rng, many)),
                6 => docs::FilterNode::InList(comparison(rng, many)),
                7 => docs::FilterNode::NotIn(comparison(rng, many)),
                8 => docs::FilterNode::Contains(comparison(rng, many)),
                9 => docs::FilterNode::StartsWith(comparison(rng, many)),
                10 => docs::FilterNode::Exists(path(rng)),
                11 => docs::FilterNode::IsNull(path(rng)),
                12 => docs::FilterNode::And((0..rng.below(4)).map(|_| child(rng)).collect()),
                13 => docs::FilterNode::Or((0..rng.below(4)).map(|_| child(rng)).collect()),
                14 => docs::FilterNode::Or(vec![child(rng); 1 + rng.below(3)]),
                _ => docs::FilterNode::Not(child(rng)),
            }
        };
        nodes.push(node);
    }
    let root = if n > 0 && rng.chance(80) {
        n as u32 - 1
    } else {
        rng.u32()
    };
    docs::Filter { nodes, root }
}

fn paths(rng: &mut Rng) -> Vec<String> {
    let n = if rng.chance(5) { 100 } else { rng.below(4) };
    (0..n)
        .map(|_| if n > 4 { small(rng) } else { path(rng) })
        .collect()
}

/// A document for long batches: never huge.
fn small_document(rng: &mut Rng) -> String {
    json!({"slug": format!("s{}", rng.below(30)), "rank": rng.below(5), "title": small(rng)})
        .to_string()
}

fn headers(rng: &mut Rng) -> Vec<(String, String)> {
    let n = if rng.chance(5) { 500 } else { rng.below(4) };
    (0..n)
        .map(|_| {
            let name = if rng.chance(50) {
                rng.pick(&[
                    "content-type",
                    "host",
                    "x-a",
                    "transfer-encoding",
                    "content-length",
                    "authorization",
                    "cookie",
                    "connection",
                ])
                .to_string()
            } else {
                small(rng)
            };
            (name, small(rng))
        })
        .collect()
}

/// Keeps the first 64 bytes written to it, then refuses the rest (so formatting stops).
struct Head(String);

impl std::fmt::Write for Head {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.0.len() >= 64 {
            return Err(std::fmt::Error);
        }
        let mut end = s.len().min(64);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.0.push_str(&s[..end]);
        Ok(())
    }
}

/// What the calls saw.
#[derive(Default)]
struct Report {
    calls: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    violations: Vec<String>,
    /// What was written and should read back (kv key → value).
    kv: BTreeMap<String, Vec<u8>>,
}

impl Report {
    fn outcome<T, E: std::fmt::Debug>(&mut self, interface: &str, result: &Result<T, E>) {
        self.calls += 1;
        match result {
            Ok(_) => self.ok += 1,
            Err(e) => {
                // The variant's case name, as the Debug output begins with it (only the start
                // is formatted: a message may echo a huge argument).
                let mut head = Head(String::new());
                let _ = write!(head, "{e:?}");
                let head = head.0.split(['(', ' ', '{']).next().unwrap_or("");
                let case = head.rsplit("::").next().unwrap_or(head);
                *self
                    .errors
                    .entry(format!("{interface}.{case}"))
                    .or_default() += 1;
            }
        }
    }

    fn violation(&mut self, what: String) {
        if self.violations.len() < 50 {
            self.violations.push(what.chars().take(400).collect());
        }
    }
}

fn short(s: &str) -> String {
    let s: String = s.chars().take(40).collect();
    format!("{s:?}")
}

fn call_kv(rng: &mut Rng, r: &mut Report) {
    match rng.below(7) {
        0 | 1 => {
            let (key, value) = (string(rng), bytes(rng));
            let res = kv::set(&key, &value);
            r.outcome("kv", &res);
            if res.is_ok() {
                match kv::get(&key) {
                    Ok(Some(v)) if v == value => {}
                    other => r.violation(format!(
                        "kv: set {} then get gave {:?}",
                        short(&key),
                        other.map(|o| o.map(|v| v.len()))
                    )),
                }
                r.kv.insert(key, value);
            }
        }
        2 => {
            let key = string(rng);
            let res = kv::get(&key);
            r.outcome("kv", &res);
            if let (Ok(got), Some(want)) = (&res, r.kv.get(&key))
                && got.as_ref() != Some(want)
            {
                r.violation(format!(
                    "kv: get {} differs from the value set",
                    short(&key)
                ));
            }
        }
        3 => {
            let key = string(rng);
            let res = kv::delete(&key);
            r.outcome("kv", &res);
            if res.is_ok() {
                r.kv.remove(&key);
            }
        }
        4 => {
            let prefix = if rng.chance(50) {
                rng.pick(&["%", "_", "k1", "a%", "", "\\", "k"]).to_string()
            } else {
                string(rng)
            };
            let cursor = if rng.chance(30) {
                Some(string(rng))
            } else {
                None
            };
            let res = kv::list_keys(&prefix, cursor.as_deref(), rng.u32());
            r.outcome("kv", &res);
            if let Ok(page) = &res {
                for key in &page.keys {
                    if !key.starts_with(&prefix) {
                        r.violation(format!(
                            "kv: list-keys {} returned {}",
                            short(&prefix),
                            short(key)
                        ));
                    }
                }
            }
        }
        5 => {
            let key = if rng.chance(50) {
                format!("n{}", rng.below(3))
            } else {
                string(rng)
            };
            let res = kv::increment(&key, rng.i64());
            r.outcome("kv", &res);
            r.kv.remove(&key);
        }
        _ => {
            let key = string(rng);
            let expected = if rng.chance(50) {
                r.kv.get(&key).cloned()
            } else if rng.chance(50) {
                Some(bytes(rng))
            } else {
                None
            };
            let new = if rng.chance(80) {
                Some(bytes(rng))
            } else {
                None
            };
            let res = kv::compare_and_swap(&key, expected.as_deref(), new.as_deref());
            r.outcome("kv", &res);
            r.kv.remove(&key);
        }
    }
}

fn call_documents(rng: &mut Rng, r: &mut Report) {
    let c = collection(rng);
    let id = if rng.chance(60) {
        format!("d{}", rng.below(20))
    } else {
        string(rng)
    };
    let rev = if rng.chance(50) {
        Some(rng.u64())
    } else {
        None
    };
    match rng.below(14) {
        0 | 1 => {
            let id = if rng.chance(80) {
                Some(id.as_str())
            } else {
                None
            };
            let data = document(rng);
            let res = docs::insert(&c, id, &data);
            r.outcome("documents", &res);
            if let Ok(d) = &res {
                match docs::get(&c, &d.id) {
                    Ok(Some(got)) if got.revision == d.revision => {
                        let (a, b) = (
                            serde_json::from_str::<Value>(&got.data),
                            serde_json::from_str::<Value>(&d.data),
                        );
                        if a.is_err() || b.is_err() {
                            r.violation(format!(
                                "documents: {} holds data that is not JSON",
                                short(&d.id)
                            ));
                        }
                    }
                    other => r.violation(format!(
                        "documents: inserted {} into {} then get gave {:?}; the data: {}",
                        short(&d.id),
                        short(&c),
                        other.map(|o| o.map(|d| d.revision)),
                        data.chars().take(300).collect::<String>()
                    )),
                }
            }
        }
        2 => r.outcome("documents", &docs::get(&c, &id)),
        3 => {
            let ids: Vec<String> = (0..if rng.chance(5) { 5000 } else { rng.below(5) })
                .map(|_| small(rng))
                .collect();
            let res = docs::get_many(&c, &ids);
            r.outcome("documents", &res);
            if let Ok(found) = &res
                && found.len() != ids.len()
            {
                r.violation(format!(
                    "documents: get-many of {} ids gave {}",
                    ids.len(),
                    found.len()
                ));
            }
        }
        4 => r.outcome("documents", &docs::replace(&c, &id, &document(rng), rev)),
        5 => r.outcome("documents", &docs::patch(&c, &id, &document(rng), rev)),
        6 => r.outcome("documents", &docs::delete(&c, &id, rev)),
        7 => {
            let f = if rng.chance(90) {
                Some(filter(rng))
            } else {
                None
            };
            r.outcome("documents", &docs::count(&c, f.as_ref()));
        }
        8 => {
            let q = docs::QuerySpec {
                filter: if rng.chance(80) {
                    Some(filter(rng))
                } else {
                    None
                },
                sort: (0..if rng.chance(5) { 100 } else { rng.below(4) })
                    .map(|_| docs::SortKey {
                        path: path(rng),
                        descending: rng.chance(50),
                    })
                    .collect(),
                limit: rng.u32(),
                offset: rng.u32(),
                cursor: if rng.chance(30) {
                    Some(string(rng))
                } else {
                    None
                },
                fields: if rng.chance(30) {
                    Some(paths(rng))
                } else {
                    None
                },
                with_total: rng.chance(50),
            };
            r.outcome("documents", &docs::query(&c, &q));
        }
        9 => {
            let q = docs::SearchQuery {
                text: if rng.chance(50) {
                    rng.pick(&[
                        "fox",
                        "quick OR",
                        "\"",
                        "*",
                        "NEAR(a b)",
                        "a AND",
                        "-",
                        "^",
                        ":",
                    ])
                    .to_string()
                } else {
                    string(rng)
                },
                filter: if rng.chance(30) {
                    Some(filter(rng))
                } else {
                    None
                },
                limit: rng.u32(),
                offset: rng.u32(),
                fields: if rng.chance(30) {
                    Some(paths(rng))
                } else {
                    None
                },
                with_total: rng.chance(50),
            };
            r.outcome("documents", &docs::search(&c, &q));
        }
        10 => {
            let n = if rng.chance(5) { 2000 } else { rng.below(6) };
            let writes: Vec<docs::Write> = (0..n)
                .map(|_| {
                    let c = collection(rng);
                    let id = format!("d{}", rng.below(20));
                    match rng.below(4) {
                        0 => docs::Write::Insert(docs::InsertOp {
                            collection: c,
                            id: if rng.chance(50) { Some(id) } else { None },
                            data: if n > 6 {
                                small_document(rng)
                            } else {
                                document(rng)
                            },
                        }),
                        1 => docs::Write::Replace(docs::ReplaceOp {
                            collection: c,
                            id,
                            data: if n > 6 {
                                small_document(rng)
                            } else {
                                document(rng)
                            },
                            expected_revision: if rng.chance(50) {
                                Some(rng.u64())
                            } else {
                                None
                            },
                        }),
                        2 => docs::Write::Patch(docs::ReplaceOp {
                            collection: c,
                            id,
                            data: if n > 6 {
                                small_document(rng)
                            } else {
                                document(rng)
                            },
                            expected_revision: None,
                        }),
                        _ => docs::Write::Delete(docs::DeleteOp {
                            collection: c,
                            id,
                            expected_revision: None,
                        }),
                    }
                })
                .collect();
            let events: Vec<docs::EventOut> = (0..rng.below(3))
                .map(|_| docs::EventOut {
                    topic: topic(rng),
                    key: if rng.chance(50) {
                        Some(string(rng))
                    } else {
                        None
                    },
                    payload: bytes(rng),
                })
                .collect();
            let res = docs::batch(&writes, &events);
            r.outcome("documents", &res);
            if let Ok(results) = &res
                && results.len() != writes.len()
            {
                r.violation(format!(
                    "documents: a batch of {} writes gave {} results",
                    writes.len(),
                    results.len()
                ));
            }
        }
        11 => {
            let index = docs::Index {
                name: if rng.chance(50) {
                    format!("i{}", rng.below(3))
                } else {
                    string(rng)
                },
                fields: paths(rng),
                unique: rng.chance(30),
            };
            r.outcome("documents", &docs::ensure_index(&c, &index));
        }
        12 => {
            if rng.chance(50) {
                r.outcome("documents", &docs::drop_index(&c, &string(rng)));
            } else {
                r.outcome("documents", &docs::list_indexes(&c));
            }
        }
        _ => {
            let language = rng
                .pick(&["english", "simple", "", "klingon", "'; --", "german"])
                .to_string();
            r.outcome(
                "documents",
                &docs::ensure_search(&c, &paths(rng), &language),
            );
        }
    }
}

fn call_blobs(rng: &mut Rng, r: &mut Report) {
    let key = if rng.chance(50) {
        format!("b{}", rng.below(10))
    } else {
        string(rng)
    };
    match rng.below(6) {
        0 | 1 => {
            let content_type = if rng.chance(50) {
                "application/octet-stream".to_string()
            } else {
                string(rng)
            };
            let res = blobs::put(&key, &content_type);
            r.outcome("blobs", &res);
            let Ok(writer) = res else { return };
            let mut written = Vec::new();
            let mut failed = false;
            for _ in 0..rng.below(4) {
                let chunk = if rng.chance(5) {
                    vec![7u8; 5 << 20]
                } else {
                    bytes(rng)
                };
                let res = writer.write(&chunk);
                r.outcome("blobs", &res);
                if res.is_err() {
                    failed = true;
                    break;
                }
                written.extend_from_slice(&chunk);
            }
            if rng.chance(15) {
                // Dropped unfinished: the host must clean up.
                return;
            }
            let res = writer.finish();
            r.outcome("blobs", &res);
            if failed || res.is_err() {
                // A second finish after a failure must be an error, not a crash.
                r.outcome("blobs", &writer.finish());
                return;
            }
            match blobs::get(&key, None) {
                Ok(Some(reader)) => {
                    let mut got = Vec::new();
                    loop {
                        match reader.read(1 << 20) {
                            Ok(Some(chunk)) if !chunk.is_empty() => got.extend_from_slice(&chunk),
                            Ok(_) => break,
                            Err(e) => {
                                r.violation(format!(
                                    "blobs: reading {} back failed: {e:?}",
                                    short(&key)
                                ));
                                break;
                            }
                        }
                    }
                    if got != written {
                        r.violation(format!(
                            "blobs: {} read back {} bytes, wrote {}",
                            short(&key),
                            got.len(),
                            written.len()
                        ));
                    }
                }
                other => r.violation(format!(
                    "blobs: put {} then get gave {:?}",
                    short(&key),
                    other.map(|o| o.is_some())
                )),
            }
        }
        2 => {
            let range = if rng.chance(70) {
                Some(blobs::ByteRange {
                    start: rng.u64(),
                    end: if rng.chance(50) {
                        Some(rng.u64())
                    } else {
                        None
                    },
                })
            } else {
                None
            };
            let res = blobs::get(&key, range);
            r.outcome("blobs", &res);
            if let Ok(Some(reader)) = res {
                let _ = reader.info();
                for _ in 0..3 {
                    let res = reader.read(rng.u32());
                    r.outcome("blobs", &res);
                    if let Ok(Some(chunk)) = &res
                        && chunk.len() > (4 << 20)
                    {
                        r.violation(format!(
                            "blobs: a read returned {} bytes, over the 4 MiB chunk cap",
                            chunk.len()
                        ));
                    }
                }
            }
        }
        3 => r.outcome("blobs", &blobs::head(&key)),
        4 => r.outcome("blobs", &blobs::delete(&key)),
        _ => {
            let prefix = if rng.chance(50) {
                rng.pick(&["%", "_", "b", "", "uploads/", "\\"]).to_string()
            } else {
                string(rng)
            };
            let cursor = if rng.chance(30) {
                Some(string(rng))
            } else {
                None
            };
            let res = blobs::list(&prefix, cursor.as_deref(), rng.u32());
            r.outcome("blobs", &res);
            if let Ok(page) = &res {
                for b in &page.blobs {
                    if !b.key.starts_with(&prefix) {
                        r.violation(format!(
                            "blobs: list {} returned {}",
                            short(&prefix),
                            short(&b.key)
                        ));
                    }
                }
            }
        }
    }
}

fn call_cache(rng: &mut Rng, r: &mut Report) {
    let key = if rng.chance(50) {
        format!("c{}", rng.below(10))
    } else {
        string(rng)
    };
    match rng.below(5) {
        0 | 1 => {
            let value = bytes(rng);
            let ttl = match rng.below(4) {
                0 => None,
                1 => Some(0),
                2 => Some(u64::MAX),
                _ => Some(rng.u64()),
            };
            let tags: Vec<String> = (0..if rng.chance(5) { 1000 } else { rng.below(3) })
                .map(|_| small(rng))
                .collect();
            let res = cache::set(&key, &value, ttl, &tags);
            r.outcome("cache", &res);
            if res.is_ok()
                && ttl.is_none()
                && let Ok(Some(got)) = cache::get(&key)
                && got != value
            {
                r.violation(format!("cache: {} read back different bytes", short(&key)));
            }
        }
        2 => r.outcome("cache", &cache::get(&key)),
        3 => r.outcome("cache", &cache::delete(&key)),
        _ => r.outcome("cache", &cache::invalidate_tag(&string(rng))),
    }
}

fn topic(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => format!("fuzzer.t{}", rng.below(3)),
        1 => rng
            .pick(&[
                "fuzzer",
                "fuzzer.",
                "fuzzer..x",
                "other.x",
                "FUZZER.X",
                "fuzzer.*",
                "*",
                "ucms.plugin.installed",
            ])
            .to_string(),
        2 => format!("fuzzer.{}", string(rng)),
        _ => string(rng),
    }
}

fn call_events(rng: &mut Rng, r: &mut Report) {
    let key = if rng.chance(50) {
        Some(string(rng))
    } else {
        None
    };
    // Payloads a handler can act on now and then, so deliveries run.
    let payload = if rng.chance(30) {
        format!("{}", rng.next()).into_bytes()
    } else {
        bytes(rng)
    };
    r.outcome(
        "events",
        &events::publish(&topic(rng), key.as_deref(), &payload),
    );
}

fn call_http(rng: &mut Rng, r: &mut Report, echo: &str) {
    let url = match rng.below(6) {
        0 | 1 => format!(
            "{echo}/{}",
            if rng.chance(50) {
                "echo".to_string()
            } else {
                string(rng)
            }
        ),
        2 => rng
            .pick(&[
                "http://example.invalid/",
                "http://169.254.169.254/latest/meta-data/",
                "http://[::1]/",
                "http://localhost/",
                "file:///etc/passwd",
                "gopher://127.0.0.1:70/",
                "http://user:pass@127.0.0.1/",
                "http://0x7f000001/",
                "http://127.0.0.1:99999/",
                "http://127.1/",
                "",
                "http://",
                "http://%/",
            ])
            .to_string(),
        3 => format!("{echo}/{}?{}#{}", string(rng), string(rng), string(rng)),
        4 => format!("{echo}/big"),
        _ => string(rng),
    };
    let method = if rng.chance(70) {
        rng.pick(&["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
            .to_string()
    } else {
        string(rng)
    };
    let request = http_client::Request {
        method,
        url,
        headers: headers(rng),
        body: bytes(rng),
        timeout_ms: if rng.chance(50) {
            Some(rng.u32())
        } else {
            None
        },
    };
    r.outcome("http-client", &http_client::send(&request));
}

fn call_hooks(rng: &mut Rng, r: &mut Report) {
    let point = match rng.below(3) {
        0 => "fuzzer.check".to_string(),
        1 => rng
            .pick(&[
                "content.before-save",
                "fuzzer",
                "fuzzer.",
                "fuzzer.nobody",
                "ucms.x",
                "",
            ])
            .to_string(),
        _ => string(rng),
    };
    let value = if rng.chance(50) {
        json(rng, 0).to_string().into_bytes()
    } else {
        bytes(rng)
    };
    r.outcome("hooks", &hooks::run(&point, &value));
}

fn call_misc(rng: &mut Rng, r: &mut Report) {
    r.calls += 1;
    r.ok += 1;
    match rng.below(7) {
        0 => {
            let level = *rng.pick(&[
                log::Level::Trace,
                log::Level::Debug,
                log::Level::Info,
                log::Level::Warn,
                log::Level::Error,
            ]);
            let fields: Vec<(String, String)> =
                (0..if rng.chance(5) { 1000 } else { rng.below(3) })
                    .map(|_| (small(rng), small(rng)))
                    .collect();
            log::write(level, &string(rng), &fields);
        }
        1 => {
            let _ = config::get(&string(rng));
        }
        2 => {
            let all = config::get_all();
            if !serde_json::from_str::<Value>(&all).is_ok_and(|v| v.is_object()) {
                r.violation(format!(
                    "config: get-all is not a JSON object: {}",
                    short(&all)
                ));
            }
        }
        3 => {
            let _ = config::get_secret(&string(rng));
        }
        4 => {
            let _ = auth::current();
        }
        5 => {
            let permission = if rng.chance(50) {
                rng.pick(NASTY).to_string()
            } else {
                string(rng)
            };
            let granted = auth::check(&permission);
            // The run is anonymous: never an administrator's grants.
            if granted
                && ["*", "*.*", "ucms.plugins.manage", "ucms.users.manage"]
                    .contains(&permission.as_str())
            {
                r.violation(format!(
                    "auth: an anonymous call holds {}",
                    short(&permission)
                ));
            }
        }
        _ => {
            let _ = auth::access(&string(rng));
        }
    }
}

/// Makes `count` calls drawn from `seed`.
fn run(seed: u64, count: u32, echo: &str) -> Report {
    let mut rng = Rng::new(seed);
    let mut r = Report::default();
    for i in 0..count {
        let which = rng.below(16);
        // On stderr, which the host logs with a failed invocation: where a run stopped.
        eprint!("{i}:{which} ");
        match which {
            0..=2 => call_kv(&mut rng, &mut r),
            3..=6 => call_documents(&mut rng, &mut r),
            7..=8 => call_blobs(&mut rng, &mut r),
            9 => call_cache(&mut rng, &mut r),
            10 => call_events(&mut rng, &mut r),
            11 => call_http(&mut rng, &mut r, echo),
            12 => call_hooks(&mut rng, &mut r),
            _ => call_misc(&mut rng, &mut r),
        }
    }
    r
}

fn response(status: u16, body: &Value) -> http_handler::Response {
    http_handler::Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

/// The outcome of a call as the tests read it: `"ok"` with the value, or the error variant.
fn outcome<T: std::fmt::Debug, E: std::fmt::Debug>(result: Result<T, E>) -> Value {
    match result {
        Ok(v) => json!({"ok": format!("{v:?}")}),
        Err(e) => json!({"error": format!("{e:?}")}),
    }
}

/// Fixed calls that once broke the host, replayed by name (`POST /case/{name}`): the regression
/// tests of what the random runs found.
fn case(name: &str) -> Option<Value> {
    Some(match name {
        // PostgreSQL refused a NUL in the prefix or cursor: `unavailable`.
        "kv-list-nul" => json!({
            "prefix": outcome(kv::list_keys("a\0", None, 10)),
            "cursor": outcome(kv::list_keys("", Some("a\0"), 10)),
        }),
        // PostgreSQL refused a NUL in the ordering key: `unavailable`.
        "event-key-nul" => json!({
            "publish": outcome(events::publish("fuzzer.t0", Some("k\0"), b"{}")),
            "batch": outcome(docs::batch(&[], &[docs::EventOut {
                topic: "fuzzer.t0".into(),
                key: Some("\0".into()),
                payload: b"{}".to_vec(),
            }])),
        }),
        _ => return None,
    })
}

struct Fuzzer;

impl http_handler::Guest for Fuzzer {
    fn handle(request: http_handler::Request) -> http_handler::Response {
        if request.route == "/case/{name}" {
            let name = request
                .params
                .first()
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            return match case(name) {
                Some(outcome) => response(200, &outcome),
                None => response(404, &json!({"error": {"code": "no_case", "message": name}})),
            };
        }
        let Ok(input) = serde_json::from_slice::<Value>(&request.body) else {
            return response(
                400,
                &json!({"error": {"code": "bad_request", "message": "send {\"seed\", \"count\", \"echo\"}"}}),
            );
        };
        let seed = input["seed"].as_u64().unwrap_or(0);
        let count = input["count"].as_u64().unwrap_or(100).min(100_000) as u32;
        let echo = input["echo"]
            .as_str()
            .unwrap_or("http://127.0.0.1:9")
            .trim_end_matches('/')
            .to_string();
        let r = run(seed, count, &echo);
        response(
            200,
            &json!({
                "seed": seed,
                "calls": r.calls,
                "ok": r.ok,
                "errors": r.errors,
                "violations": r.violations,
            }),
        )
    }
}

impl event_handler::Guest for Fuzzer {
    fn handle(event: event_handler::Event) -> Result<(), String> {
        if event.payload.starts_with(b"fail") {
            return Err("asked to fail".into());
        }
        let seed = std::str::from_utf8(&event.payload)
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(seed) = seed {
            // A few calls from inside a delivery, as the system principal.
            let r = run(seed, 5, "http://127.0.0.1:9");
            if let Some(v) = r.violations.first() {
                return Err(format!("violation during delivery: {v}"));
            }
        }
        Ok(())
    }
}

impl hook_export::Guest for Fuzzer {
    fn handle(
        _point: String,
        value: Vec<u8>,
        _principal: ucms::host::types::Principal,
    ) -> hook_export::HookOutcome {
        match value.first() {
            Some(b'r') => hook_export::HookOutcome::Rejected("rejected by the fuzzer".into()),
            Some(b'"') => hook_export::HookOutcome::Changed(b"\"changed\"".to_vec()),
            Some(b'[') => hook_export::HookOutcome::Changed(vec![0xff, 0xfe]),
            Some(b'{') => {
                // Run the point again from inside the hook: the host bounds the depth.
                match hooks::run("fuzzer.check", &value) {
                    Ok(v) => hook_export::HookOutcome::Changed(v),
                    Err(e) => hook_export::HookOutcome::Rejected(format!("{e:?}")),
                }
            }
            _ => hook_export::HookOutcome::Unchanged,
        }
    }
}

impl lifecycle::Guest for Fuzzer {
    fn install() -> Result<(), String> {
        Ok(())
    }

    fn upgrade(_previous_version: String) -> Result<(), String> {
        Ok(())
    }

    fn uninstall() -> Result<(), String> {
        Ok(())
    }
}

impl scheduler::Guest for Fuzzer {
    fn tick(_name: String, _scheduled_at_ms: u64) -> Result<(), String> {
        Ok(())
    }
}

export!(Fuzzer);
