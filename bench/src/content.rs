//! `ucms-bench content`: the content plugin's delivery API on a large site.
//!
//! A SQLite site with the `content` plugin gets three types — `author` and `category` (a name
//! and a unique slug) and `article` with 10 fields (title, slug, summary, body, price, rank, day,
//! featured, kind, views) and two relations (author, category) — and `--entries` published
//! articles loaded through `POST /api/content/article/bulk` (400 a request, through the router).
//! Then, at `--connections` concurrent keep-alive clients from a separate process, for
//! `--seconds` each, through the full HTTP stack as an anonymous caller (the public role reads):
//!
//! - `page`: a filtered, sorted page of 25 with one level of population
//!   (`filters[kind][$eq]=…&filters[price][$lt]=…&sort=price:asc&populate=author`), with its total;
//! - `cursor`: the same page without the total (keyset pagination, `cursor=`);
//! - `slug`: a single entry by slug;
//! - `search`: a full-text query, 25 hits.
//!
//! Beside each, a native axum handler on the same database runs the same documents queries
//! (`ucms-documents` directly, same filters, indexes, population by one `get_many`) and writes
//! the same JSON shape: the baseline of what the plugin boundary and the instance per request cost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};
use tower::ServiceExt;
use ucms_documents::{Documents, Filter, Limits, Path, Query, Scope, Search, Sort};

const KINDS: [&str; 3] = ["news", "guide", "review"];
const WORDS: [&str; 16] = [
    "harbor", "river", "garden", "engine", "mountain", "library", "kitchen", "orbit", "signal",
    "canvas", "meadow", "lantern", "compass", "harvest", "glacier", "festival",
];
const AUTHORS: usize = 1000;
const CATEGORIES: usize = 50;
const BULK: usize = 400;

pub struct Options {
    pub entries: usize,
    /// Only for the header line: the load itself is `drive`'s.
    pub connections: usize,
    pub seconds: u64,
}

fn article_type() -> Value {
    json!({
        "name": "article",
        "search": ["title", "summary"],
        "indexes": [["kind", "price"]],
        "fields": [
            {"name": "title", "type": "short-text", "required": true},
            {"name": "slug", "type": "slug", "from": "title", "unique": true},
            {"name": "summary", "type": "long-text"},
            {"name": "body", "type": "long-text"},
            {"name": "price", "type": "decimal", "min": 0},
            {"name": "rank", "type": "integer"},
            {"name": "day", "type": "date"},
            {"name": "featured", "type": "boolean"},
            {"name": "kind", "type": "enumeration", "values": KINDS},
            {"name": "views", "type": "integer"},
            {"name": "author", "type": "relation", "target": "author", "cardinality": "one-to-one", "on-delete": "cascade"},
            {"name": "category", "type": "relation", "target": "category", "cardinality": "one-to-one", "on-delete": "set-null"}
        ]
    })
}

fn named_type(name: &str) -> Value {
    json!({"name": name, "fields": [
        {"name": "name", "type": "short-text", "required": true},
        {"name": "slug", "type": "slug", "from": "name", "unique": true}
    ]})
}

/// splitmix64, so every run loads the same articles.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn words(&mut self, vocabulary: &Vocabulary, n: usize) -> String {
        (0..n)
            .map(|_| vocabulary.pick(self))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Words drawn like a natural language's: the word of rank r with a weight of 1/(r+1) (Zipf),
/// so a few words are in most articles and most words in few. `WORDS` are the commonest, then
/// 1,728 made of three syllables.
struct Vocabulary {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Vocabulary {
    fn new() -> Self {
        const SYLLABLES: [&str; 12] = [
            "ka", "lo", "mi", "ren", "sta", "vor", "qui", "bel", "dun", "sho", "tra", "pel",
        ];
        let mut words: Vec<String> = WORDS.iter().map(|w| w.to_string()).collect();
        for i in 0..SYLLABLES.len().pow(3) {
            words.push(format!(
                "{}{}{}",
                SYLLABLES[i % 12],
                SYLLABLES[(i / 12) % 12],
                SYLLABLES[i / 144]
            ));
        }
        let mut total = 0.0;
        let cumulative = (0..words.len())
            .map(|r| {
                total += 1.0 / (r as f64 + 1.0);
                total
            })
            .collect();
        Self { words, cumulative }
    }

    fn pick(&self, rng: &mut Rng) -> &str {
        let total = *self.cumulative.last().expect("words");
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let i = self.cumulative.partition_point(|c| *c < u);
        &self.words[i.min(self.words.len() - 1)]
    }
}

struct Site {
    site: ucms::Site,
    admin: String,
}

impl Site {
    async fn call(
        &self,
        method: http::Method,
        uri: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(http::StatusCode, Value)> {
        let mut builder = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.admin));
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        let request = builder.body(axum::body::Body::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        ))?;
        let response = self.site.router().oneshot(request).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    async fn ok(&self, method: http::Method, uri: &str, body: Value) -> anyhow::Result<Value> {
        let (status, body) = self.call(method, uri, Some(body)).await?;
        anyhow::ensure!(status.is_success(), "{uri}: {status} {body}");
        Ok(body)
    }

    /// Creates `items` published entries of `ty`, `BULK` a request; their ids.
    async fn bulk(&self, ty: &str, items: Vec<Value>) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::new();
        for chunk in items.chunks(BULK) {
            let entries: Vec<Value> = chunk.iter().map(|f| json!({"fields": f})).collect();
            let body = self
                .ok(
                    http::Method::POST,
                    &format!("/api/content/{ty}/bulk"),
                    json!({"entries": entries, "publish": true}),
                )
                .await?;
            ids.extend(
                body["ids"]
                    .as_array()
                    .context("ids")?
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from)),
            );
        }
        Ok(ids)
    }
}

async fn open(dir: &std::path::Path) -> anyhow::Result<Site> {
    let mut config = ucms::config::Config::default();
    config.log.level = "warn".into();
    let site = ucms::Site::open(config, ucms::config::DataDir::new(dir.join("data"))).await?;
    let content = ucms_test_components::CONTENT;
    let source =
        ucms::plugins::PluginSource::new(content.manifest(), content.wasm_bytes(), content.dir)?;
    site.plugins
        .apply(source, ucms::plugins::ApplyOptions::default())
        .await?;
    let identity = &site.services.identity;
    let user = identity
        .create_user(
            "bench@example.com",
            "a long enough password",
            &["admin".to_string()],
        )
        .await?;
    let admin = identity
        .issue_token(
            &user,
            ucms::identity::TokenKind::Api,
            "bench",
            &["*".to_string()],
            None,
        )
        .await?
        .token;
    Ok(Site { site, admin })
}

pub async fn run(
    dir: &std::path::Path,
    options: &Options,
    drive: impl Fn(SocketAddr, &str) -> anyhow::Result<crate::Report>,
) -> anyhow::Result<()> {
    let s = open(dir).await?;
    for ty in [named_type("author"), named_type("category"), article_type()] {
        s.ok(http::Method::POST, "/api/content/types", ty).await?;
    }
    s.ok(
        http::Method::PUT,
        "/api/ucms/roles/public",
        json!({"description": "anonymous delivery", "permissions": ["content.read"]}),
    )
    .await?;

    let started = Instant::now();
    let authors = s
        .bulk(
            "author",
            (0..AUTHORS)
                .map(|i| json!({"name": format!("Author {i}")}))
                .collect(),
        )
        .await?;
    let categories = s
        .bulk(
            "category",
            (0..CATEGORIES)
                .map(|i| json!({"name": format!("Category {i}")}))
                .collect(),
        )
        .await?;
    let mut rng = Rng(7);
    let vocabulary = Vocabulary::new();
    let mut loaded = 0;
    let load_started = Instant::now();
    while loaded < options.entries {
        let n = BULK.min(options.entries - loaded);
        let items: Vec<Value> = (loaded..loaded + n)
            .map(|i| {
                json!({
                    "title": format!("Article {i} {}", rng.words(&vocabulary, 3)),
                    "slug": format!("article-{i}"),
                    "summary": rng.words(&vocabulary, 12),
                    "body": rng.words(&vocabulary, 60),
                    "price": (rng.below(100_000) as f64) / 100.0,
                    "rank": rng.below(100),
                    "day": format!("2026-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28)),
                    "featured": rng.below(10) == 0,
                    "kind": KINDS[rng.below(KINDS.len())],
                    "views": rng.below(1_000_000),
                    "author": authors[rng.below(authors.len())],
                    "category": categories[rng.below(categories.len())],
                })
            })
            .collect();
        s.bulk("article", items).await?;
        loaded += n;
        if loaded % 20_000 == 0 || loaded == options.entries {
            eprintln!(
                "  loaded {loaded} articles ({:.0}/s)",
                loaded as f64 / load_started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "content: {} articles (10 fields, 2 relations), {AUTHORS} authors, {CATEGORIES} categories loaded through POST …/bulk in {:.1} s ({:.0} articles/s)",
        options.entries,
        started.elapsed().as_secs_f64(),
        options.entries as f64 / load_started.elapsed().as_secs_f64()
    );

    // The plan of the page's query, as the native handler runs it (and the plugin, through the
    // same documents layer): one line per step.
    {
        let docs = Documents::new(s.site.db.clone(), Limits::default());
        let query = Query {
            filter: Some(Filter::And(vec![
                Filter::Eq(path("locale"), json!("en")),
                Filter::Eq(path("live"), json!(true)),
                Filter::Eq(path("published.kind"), json!("guide")),
                Filter::Lt(path("published.price"), json!(500.0)),
            ])),
            sort: vec![Sort::asc(path("published.price"))],
            limit: 25,
            ..Query::default()
        };
        let plan = docs
            .explain(Scope::new("content", "entries.article"), &query)
            .await?;
        println!("  the page's plan: {}", plan.replace('\n', " | "));
    }
    let plugin_addr = serve(&s.site).await?;
    let native_addr = serve_native(s.site.db.clone()).await?;
    let queries = [
        ("page", "/api/content/article?filters[kind][$eq]=guide&filters[price][$lt]=500&sort=price:asc&page-size=25&populate=author".to_string()),
        ("cursor", "/api/content/article?filters[kind][$eq]=guide&filters[price][$lt]=500&sort=price:asc&page-size=25&populate=author&cursor=".to_string()),
        ("slug", format!("/api/content/article/article-{}", options.entries / 2)),
        // A word of rank 120: in about 1.5 % of the articles (one in 1,000 words).
        ("search", format!("/api/content/article?q={}&page-size=25", vocabulary.words[120])),
        // The commonest word: in most articles, so every one of them is ranked and counted.
        ("search-all", "/api/content/article?q=harbor&page-size=25".to_string()),
    ];
    // Sanity: both answer the same entries.
    for (name, path) in &queries {
        let a = crate::fetch_path(plugin_addr, path).await?;
        let b = crate::fetch_path(native_addr, path).await?;
        let (a, b): (Value, Value) = (serde_json::from_str(&a)?, serde_json::from_str(&b)?);
        let ids = |v: &Value| -> Vec<String> {
            match &v["data"] {
                Value::Array(a) => a
                    .iter()
                    .map(|e| e["id"].as_str().unwrap_or_default().to_string())
                    .collect(),
                e => vec![e["id"].as_str().unwrap_or_default().to_string()],
            }
        };
        // The broad search may run out of time: that is what it measures.
        anyhow::ensure!(
            *name == "search-all" || (!ids(&a).is_empty() && !ids(&a)[0].is_empty()),
            "{name}: the plugin answered {a}"
        );
        if !name.starts_with("search") {
            anyhow::ensure!(
                ids(&a) == ids(&b),
                "{name}: plugin {:?} vs native {:?}",
                ids(&a),
                ids(&b)
            );
        }
        if name.starts_with("search") {
            println!(
                "  {name}: {} matches{}",
                a["meta"]["total"],
                a.get("error")
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
        if *name == "page" {
            anyhow::ensure!(
                a["data"][0]["fields"]["author"]["fields"]["name"].is_string(),
                "populated: {a}"
            );
            println!(
                "  page: {} matches, first {}",
                a["meta"]["total"], a["data"][0]["fields"]["title"]
            );
        }
    }
    println!(
        "{:<10} {:>10} {:>9} {:>9} {:>9} | {:>10} {:>9} {:>9}   ({} connections, {} s each, anonymous, SQLite)",
        "query",
        "plugin r/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "native r/s",
        "p50 ms",
        "p99 ms",
        options.connections,
        options.seconds
    );
    for (name, path) in &queries {
        let p = drive(plugin_addr, path)?;
        let n = drive(native_addr, path)?;
        println!(
            "{:<10} {:>10.0} {:>9.2} {:>9.2} {:>9} | {:>10.0} {:>9.2} {:>9.2}",
            name,
            p.rps,
            p.p50_us as f64 / 1000.0,
            p.p99_us as f64 / 1000.0,
            p.errors,
            n.rps,
            n.p50_us as f64 / 1000.0,
            n.p99_us as f64 / 1000.0,
        );
    }
    Ok(())
}

async fn serve(site: &ucms::Site) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = site.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(addr)
}

fn path(p: &str) -> Path {
    p.parse().expect("a valid path")
}

/// What the plugin keeps, read back as the API shows it (published version, shadows dropped).
fn entry(doc: &ucms_documents::Document) -> Value {
    let data = &doc.data;
    let mut fields = data["published"].clone();
    if let Some(o) = fields.as_object_mut() {
        o.retain(|k, _| !k.starts_with("__"));
    }
    json!({"id": data["entry"], "type": "article", "status": data["status"], "locale": data["locale"], "fields": fields,
           "created-at": data["created-at"], "updated-at": data["updated-at"], "published-at": data["published-at"], "created-by": data["created-by"]})
}

/// The same three reads as the plugin, as native axum handlers over `ucms-documents`.
async fn serve_native(db: ucms_db::Db) -> anyhow::Result<SocketAddr> {
    let docs = Arc::new(Documents::new(db, Limits::default()));
    let list_docs = docs.clone();
    let get_docs = docs.clone();
    let list = move |axum::extract::Query(q): axum::extract::Query<
        std::collections::HashMap<String, String>,
    >| {
        let docs = list_docs.clone();
        async move {
            let scope = Scope::new("content", "entries.article");
            let base = vec![
                Filter::Eq(path("locale"), json!("en")),
                Filter::Eq(path("live"), json!(true)),
            ];
            if let Some(text) = q.get("q") {
                let f = base;
                let found = docs
                    .search(
                        scope,
                        &Search {
                            text: text.clone(),
                            filter: Some(Filter::And(f)),
                            limit: 25,
                            offset: 0,
                            fields: None,
                            with_total: true,
                        },
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                let data: Vec<Value> = found.hits.iter().map(|(d, _)| entry(d)).collect();
                return Ok::<_, String>(axum::Json(
                    json!({"data": data, "meta": {"total": found.total, "page": 1, "page-size": 25}}),
                ));
            }
            let mut f = base;
            f.push(Filter::Eq(
                path("published.kind"),
                json!(q.get("filters[kind][$eq]").cloned().unwrap_or_default()),
            ));
            let price: f64 = q
                .get("filters[price][$lt]")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0.0);
            f.push(Filter::Lt(path("published.price"), json!(price)));
            let cursor = q.contains_key("cursor");
            let query = Query {
                filter: Some(Filter::And(f)),
                sort: vec![Sort::asc(path("published.price"))],
                limit: 25,
                with_total: !cursor,
                ..Query::default()
            };
            let page = docs.query(scope, &query).await.map_err(|e| e.to_string())?;
            let mut data: Vec<Value> = page.documents.iter().map(entry).collect();
            // One level of population, batched like the plugin does it.
            let ids: Vec<String> = data
                .iter()
                .filter_map(|e| e["fields"]["author"].as_str().map(|a| format!("{a}.en")))
                .collect();
            let authors = docs
                .get_many(Scope::new("content", "entries.author"), &ids)
                .await
                .map_err(|e| e.to_string())?;
            let by_id: std::collections::HashMap<String, Value> = authors
                .iter()
                .flatten()
                .map(|d| {
                    (
                        d.data["entry"].as_str().unwrap_or_default().to_string(),
                        entry(d),
                    )
                })
                .collect();
            for e in &mut data {
                let a = e["fields"]["author"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                e["fields"]["author"] = by_id.get(&a).cloned().unwrap_or(Value::Null);
            }
            Ok(axum::Json(
                json!({"data": data, "meta": {"total": page.total, "page": 1, "page-size": 25, "next-cursor": page.next_cursor}}),
            ))
        }
    };
    let get = move |axum::extract::Path(slug): axum::extract::Path<String>| {
        let docs = get_docs.clone();
        async move {
            let scope = Scope::new("content", "entries.article");
            let query = Query {
                filter: Some(Filter::And(vec![
                    Filter::Eq(path("locale"), json!("en")),
                    Filter::Eq(path("published.slug"), json!(slug)),
                ])),
                limit: 1,
                ..Query::default()
            };
            let page = docs.query(scope, &query).await.map_err(|e| e.to_string())?;
            let d = page.documents.first().ok_or("not found")?;
            Ok::<_, String>(axum::Json(json!({"data": entry(d)})))
        }
    };
    let app = axum::Router::new()
        .route("/api/content/article", axum::routing::get(list))
        .route("/api/content/article/{slug}", axum::routing::get(get));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}
