//! Query latency over 100,000 documents: a filtered page of 25 sorted by an indexed field.
//!
//! Run with `cargo run --release -p ucms-documents --example query_latency [-- postgres://...]`
//! (SQLite in a temporary directory without an argument).

use std::time::{Duration, Instant};

use serde_json::json;
use ucms_db::Db;
use ucms_documents::{Documents, Filter, IndexSpec, Limits, Path, Query, Quota, Scope, Sort};

const DOCUMENTS: usize = 100_000;
const QUERIES: usize = 2_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("docs.db").display()));
    let db = Db::connect(&url, None).await?;
    db.migrate(
        &sqlx::migrate!("../migrations/sqlite"),
        &sqlx::migrate!("../migrations/postgres"),
    )
    .await?;
    let docs = Documents::new(db.clone(), Limits::default());
    let plugin = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let s = Scope::new(&plugin, "posts");
    let p = |s: &str| Path::parse(s).expect("valid path");
    docs.ensure_index(
        s,
        &IndexSpec {
            name: "status-date".into(),
            fields: vec![p("status"), p("date")],
            unique: false,
        },
    )
    .await?;

    let started = Instant::now();
    for chunk in 0..DOCUMENTS / 10_000 {
        let rows = (chunk * 10_000..(chunk + 1) * 10_000).map(|i| {
            let status = ["draft", "published", "archived", "review"][i % 4];
            (
                None,
                json!({
                    "title": format!("Post number {i}"),
                    "status": status,
                    "date": 1_700_000_000_i64 + ((i * 7919) % 1_000_000) as i64,
                    "author": {"name": format!("author-{}", i % 97)},
                    "tags": ["a", "b", format!("t{}", i % 13)],
                }),
            )
        });
        docs.insert_many(s, &Quota::UNLIMITED, rows).await?;
    }
    println!(
        "{}: inserted {DOCUMENTS} documents in {:.2?}",
        db.backend_name(),
        started.elapsed()
    );

    let mut first = Vec::with_capacity(QUERIES);
    let mut next = Vec::with_capacity(QUERIES);
    let mut indexed = true;
    for i in 0..QUERIES {
        let status = ["draft", "published", "archived", "review"][i % 4];
        let q = Query {
            filter: Some(Filter::Eq(p("status"), json!(status))),
            sort: vec![Sort::desc(p("date"))],
            limit: 25,
            ..Query::default()
        };
        let t = Instant::now();
        let page = docs.query(s, &q).await?;
        first.push(t.elapsed());
        indexed &= page.indexed;
        let q = Query {
            cursor: page.next_cursor,
            ..q
        };
        let t = Instant::now();
        let page = docs.query(s, &q).await?;
        next.push(t.elapsed());
        assert_eq!(page.documents.len(), 25);
    }
    report("first page", &mut first);
    report("next page (cursor)", &mut next);
    println!("labelled indexed: {indexed}");
    if let Db::Postgres(_) = db {
        docs.drop_plugin(&plugin).await?;
    }
    db.close().await;
    Ok(())
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{what}: p50 {:.2?}  p99 {:.2?}  max {:.2?}",
        at(0.5),
        at(0.99),
        samples[samples.len() - 1]
    );
}
