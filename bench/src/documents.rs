//! The document store (`ucms-documents`) on SQLite and PostgreSQL, side by side.
//!
//! Each backend gets a fresh database: SQLite a file in a temporary folder, PostgreSQL a schema of
//! its own (dropped at the end), both migrated with the host's migrations. Into collection
//! `articles` of plugin `bench` go `--documents` realistic articles from a seeded generator (the
//! same ones on both backends), in batches of `--batch`, one transaction each, before any index
//! exists. Then the indexes are declared and timed: `category` + `published_at`, `slug` unique,
//! and full-text search over `title` and `body` in English. Then, `--iterations` times each after
//! a warm-up, on exactly `--documents` documents:
//! - a. an indexed query: `category = X`, newest `published_at` first, 25 per page;
//! - b. the same shape on fields no index covers: `author.id = X`, best `rating` first (a scan);
//! - c. pages 2 to 5 of query a through its keyset cursor (each page one sample);
//! - d. full-text search for one vocabulary word, and for two, 25 hits;
//! - e. count of query a's filter.
//!
//! Last, writes onto those documents (the collection then holds more than `--documents`): a few
//! batches and `--single-inserts` one-document transactions with the two indexes only (the search
//! dropped), then the same again with the search re-declared; against the load's rate without
//! indexes, and single inserts without indexes (into an empty collection of their own).

use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ucms_db::Db;
use ucms_documents::{
    Documents, Filter, IndexSpec, Limits, Path, Query, Quota, Scope, Search, SearchSpec, Sort,
    WriteOp,
};

const PLUGIN: &str = "bench";
const COLLECTION: &str = "articles";
/// Single inserts without indexes go to a collection of their own, so `articles` keeps exactly
/// `--documents` documents for the queries.
const PLAIN: &str = "articles_plain";
const PAGE: u32 = 25;
const SQLITE_P99_GOAL: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct Options {
    pub documents: usize,
    pub iterations: usize,
    pub batch: usize,
    pub single_inserts: usize,
    pub seed: u64,
    pub postgres_url: String,
    pub require_postgres: bool,
    pub explain: bool,
    pub keep: bool,
}

// ----- data -------------------------------------------------------------------------------------

/// splitmix64: a deterministic stream, so both backends (and every run) get the same documents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// In [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A vocabulary index, skewed towards the front (density ∝ 1/√k): a few common words and a
    /// long tail of rare ones, as in real text.
    fn word(&mut self) -> &'static str {
        let u = self.unit();
        VOCABULARY[((u * u) * VOCABULARY.len() as f64) as usize]
    }
}

/// 212 English words, none of them a stop word, so every one is searchable.
const VOCABULARY_TEXT: &str = "\
    system market river garden engine signal harbor forest window planet library teacher \
    village mountain network station journey kitchen bridge winter summer battery camera \
    doctor energy factory history island justice language machine material memory message \
    minute morning museum musician nature ocean office painter pattern picture pilot poetry \
    policy problem process product program project quality question reason record region \
    report result science season secret server service shadow silver software soldier \
    speaker spirit spring square stadium storage story strategy stream street student \
    subject success surface symbol theory thunder ticket tower traffic travel treasure \
    valley vector victory vision voyage weather wisdom writer yellow zebra anchor archive \
    artist autumn balance banner basket beacon blanket border bottle branch breeze bucket \
    budget cabinet candle canyon capital carbon castle census channel chapter circuit \
    citizen climate cluster coffee column comet compass concert copper cotton council \
    crystal culture current dancer database desert diamond digital dragon eagle economy \
    editor element empire estate falcon feather festival fiction finance fossil fountain \
    galaxy glacier granite gravity harvest highway horizon imprint insight jungle kernel \
    ladder lantern lattice legend lemon magnet marble meadow mirror monitor mosaic nebula \
    needle orbit orchard oxygen palace parcel pepper pigment pioneer pixel plasma portal \
    prairie prism pulse puzzle quartz rabbit radar reactor rhythm rocket saddle sandbox \
    satellite scholar sensor sketch socket sphere spiral";

const CATEGORIES_TEXT: &str = "\
    news sports business technology science health travel food culture music film books \
    politics education environment fashion gaming opinion local world";

const FIRST_NAMES_TEXT: &str = "\
    Ada Alan Grace Linus Barbara Dennis Margaret Ken Frances Edsger Radia Donald Hedy Tim \
    Katherine John Sophie Niklaus Karen Bjarne";

const LAST_NAMES_TEXT: &str = "\
    Lovelace Turing Hopper Torvalds Liskov Ritchie Hamilton Thompson Allen Dijkstra Perlman \
    Knuth Lamarr Berners-Lee Johnson McCarthy Wilson Wirth Jones Stroustrup Goldberg Kay \
    Shaw Moore Hoare Backus Lamport Milner Floyd Cerf Kahn Engelbart Sutherland Rivest \
    Shamir Adleman Diffie Hellman Pike Kernighan Stallman Wozniak Bartik Clarke Easley \
    Goldwasser Micali Pearl Hinton Bengio";

fn words(text: &'static str) -> Vec<&'static str> {
    text.split_whitespace().collect()
}

static VOCABULARY: LazyLock<Vec<&str>> = LazyLock::new(|| words(VOCABULARY_TEXT));
static CATEGORIES: LazyLock<Vec<&str>> = LazyLock::new(|| words(CATEGORIES_TEXT));
static FIRST_NAMES: LazyLock<Vec<&str>> = LazyLock::new(|| words(FIRST_NAMES_TEXT));
static LAST_NAMES: LazyLock<Vec<&str>> = LazyLock::new(|| words(LAST_NAMES_TEXT));

const AUTHORS: usize = 1000;
const TAGS: usize = 50;
/// 2020-01-01T00:00:00Z, and the five years after it that articles are published in.
const EPOCH_MS: i64 = 1_577_836_800_000;
const SPAN_MS: u64 = 5 * 365 * 24 * 3600 * 1000;

fn author_name(id: usize) -> String {
    format!(
        "{} {}",
        FIRST_NAMES[id % FIRST_NAMES.len()],
        LAST_NAMES[(id / FIRST_NAMES.len()) % LAST_NAMES.len()]
    )
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Article `i` of the stream `rng` (slugs end in `i`, so they are unique).
fn article(rng: &mut Rng, i: usize) -> Value {
    let title_words: Vec<&str> = (0..3 + rng.below(6)).map(|_| rng.word()).collect();
    let title = title_words
        .iter()
        .enumerate()
        .map(|(k, w)| {
            if k == 0 {
                capitalize(w)
            } else {
                (*w).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    let slug = format!("{}-{i}", title_words.join("-"));
    let body_len = 200 + rng.below(401);
    let mut body = String::with_capacity(body_len + 16);
    let mut sentence_start = true;
    while body.len() < body_len {
        if !body.is_empty() {
            body.push(' ');
        }
        let w = rng.word();
        if sentence_start {
            body.push_str(&capitalize(w));
        } else {
            body.push_str(w);
        }
        sentence_start = rng.below(10) == 0;
        if sentence_start {
            body.push('.');
        }
    }
    let author = 1 + rng.below(AUTHORS);
    let mut tags: Vec<String> = Vec::new();
    for _ in 0..1 + rng.below(5) {
        let tag = format!("tag{:02}", rng.below(TAGS));
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    // Views: mostly a few hundred, some articles go viral.
    let views = (rng.unit().powi(4) * 1_000_000.0) as u64 + rng.below(500) as u64;
    let rating = (10.0 + rng.unit() * 40.0).round() / 10.0;
    let published_at = ucms_db::rfc3339(EPOCH_MS + (rng.next() % SPAN_MS) as i64);
    json!({
        "title": title,
        "slug": slug,
        "author": { "name": author_name(author), "id": author },
        "category": CATEGORIES[rng.below(CATEGORIES.len())],
        "tags": tags,
        "views": views,
        "rating": rating,
        "published": rng.below(5) != 0,
        "published_at": published_at,
        "body": body,
    })
}

fn path(p: &str) -> Path {
    Path::parse(p).expect("the benchmark's paths are valid")
}

// ----- measurements -----------------------------------------------------------------------------

/// One line of the write table, for one backend.
#[derive(Debug, Clone, Copy)]
enum Measure {
    /// Documents written in this much time (time in the store's calls only).
    Rate { documents: usize, time: Duration },
    /// A one-off operation.
    Time(Duration),
}

impl Measure {
    fn text(self) -> String {
        match self {
            Self::Rate { documents, time } => {
                format!("{} docs/s", thousands(rate(documents, time) as u64))
            }
            Self::Time(d) => format!("{:.2} s", d.as_secs_f64()),
        }
    }

    /// A figure where bigger means slower, for the PostgreSQL/SQLite ratio.
    fn cost(self) -> f64 {
        match self {
            Self::Rate { documents, time } => 1.0 / rate(documents, time),
            Self::Time(d) => d.as_secs_f64(),
        }
    }
}

fn rate(documents: usize, time: Duration) -> f64 {
    documents as f64 / time.as_secs_f64().max(1e-9)
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Latencies of one query kind on one backend.
#[derive(Debug, Default)]
struct Latencies {
    samples: Vec<Duration>,
    /// Documents returned (or counted), summed over the samples.
    rows: u64,
    /// `Page::indexed` as the store reported it (`None`: the call does not report it).
    indexed: Option<bool>,
}

impl Latencies {
    fn record(&mut self, took: Duration, rows: usize) {
        self.samples.push(took);
        self.rows += rows as u64;
    }

    fn finish(&mut self) {
        self.samples.sort();
    }

    fn quantile(&self, q: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.samples.len() as f64 * q).ceil() as usize).clamp(1, self.samples.len());
        self.samples[i - 1]
    }

    fn max(&self) -> Duration {
        self.samples.last().copied().unwrap_or_default()
    }

    fn mean_rows(&self) -> f64 {
        self.rows as f64 / self.samples.len().max(1) as f64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Indexed,
    Unindexed,
    Cursor,
    Search1,
    Search2,
    Count,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Indexed,
        Kind::Unindexed,
        Kind::Cursor,
        Kind::Search1,
        Kind::Search2,
        Kind::Count,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::Indexed => "a  category=X, published_at desc",
            Kind::Unindexed => "b  author.id=X, rating desc (no index)",
            Kind::Cursor => "c  a's pages 2-5 by cursor (per page)",
            Kind::Search1 => "d1 search: one word",
            Kind::Search2 => "d2 search: two words",
            Kind::Count => "e  count category=X",
        }
    }
}

/// What one backend measured.
#[derive(Debug)]
struct Results {
    backend: &'static str,
    version: String,
    writes: Vec<(&'static str, Measure)>,
    queries: Vec<(Kind, Latencies)>,
    /// EXPLAIN of queries a, b and c.
    plans: Vec<(Kind, String)>,
    notes: Vec<String>,
}

impl Results {
    fn write(&self, label: &str) -> Option<Measure> {
        self.writes
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, m)| *m)
    }

    fn query(&self, kind: Kind) -> Option<&Latencies> {
        self.queries
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, l)| l)
    }
}

const W_BATCH_PLAIN: &str = "batched load, no indexes";
const W_SINGLE_PLAIN: &str = "single inserts, no indexes";
const W_INDEX_COMPOUND: &str = "create index category+published_at";
const W_INDEX_UNIQUE: &str = "create unique index slug";
const W_SEARCH: &str = "create full-text search title+body";
const W_BATCH_INDEXES: &str = "batched inserts, 2 indexes";
const W_SINGLE_INDEXES: &str = "single inserts, 2 indexes";
const W_BATCH_SEARCH: &str = "batched inserts, 2 indexes + search";
const W_SINGLE_SEARCH: &str = "single inserts, 2 indexes + search";

// ----- the run ----------------------------------------------------------------------------------

pub async fn run(opts: Options) -> anyhow::Result<()> {
    anyhow::ensure!(opts.documents > 0, "--documents must be at least 1");
    anyhow::ensure!(
        (1..=Limits::default().max_batch_ops).contains(&opts.batch),
        "--batch must be 1 to {}",
        Limits::default().max_batch_ops
    );
    let command: Vec<String> = std::env::args().collect();
    println!("command: {}", command.join(" "));
    println!(
        "documents: N = {} in `{PLUGIN}/{COLLECTION}`, batches of {}, {} iterations per query after {} warm-up, seed {}",
        thousands(opts.documents as u64),
        opts.batch,
        opts.iterations,
        warmup(opts.iterations),
        opts.seed
    );

    let mut all = Vec::new();

    let tmp = tempfile::tempdir()?;
    let url = format!("sqlite://{}", tmp.path().join("bench.db").display());
    let db = ucms::db::open(&url, None).await?;
    let results = bench_backend(db.clone(), &opts).await;
    db.close().await;
    if opts.keep {
        println!(
            "kept the SQLite database: {}",
            tmp.keep().join("bench.db").display()
        );
    }
    all.push(results?);

    match open_postgres(&opts.postgres_url).await {
        Ok((db, schema)) => {
            let results = bench_backend(db.clone(), &opts).await;
            db.close().await;
            if opts.keep {
                println!("kept the PostgreSQL schema: {schema}");
            } else {
                drop_schema(&opts.postgres_url, &schema).await;
            }
            all.push(results?);
        }
        Err(e) if opts.require_postgres => {
            return Err(e.context("PostgreSQL is required (--require-postgres)"));
        }
        Err(e) => println!(
            "\nPostgreSQL SKIPPED: {e:#}\n  (pass --postgres-url, or --require-postgres to make this an error)"
        ),
    }

    print_report(&opts, &all);
    Ok(())
}

fn warmup(iterations: usize) -> usize {
    (iterations / 10).clamp(5, 50)
}

async fn open_postgres(url: &str) -> anyhow::Result<(Db, String)> {
    let admin = admin_pool(url).await?;
    let schema = format!("ucms_bench_{}_{}", std::process::id(), ucms_db::now_ms());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await?;
    admin.close().await;
    let connected = async {
        let options = sqlx::postgres::PgConnectOptions::from_str(url)?
            .options([("search_path", schema.as_str())]);
        let db = Db::connect_postgres(options, Some(8)).await?;
        ucms::db::migrate(&db).await?;
        anyhow::Ok(db)
    }
    .await;
    match connected {
        Ok(db) => Ok((db, schema)),
        Err(e) => {
            drop_schema(url, &schema).await;
            Err(e)
        }
    }
}

async fn admin_pool(url: &str) -> anyhow::Result<sqlx::PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("unreachable at {} ({e})", ucms_db::redact(url)))
}

async fn drop_schema(url: &str, schema: &str) {
    let dropped = async {
        let admin = admin_pool(url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&admin)
        .await?;
        admin.close().await;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = dropped {
        eprintln!("warning: could not drop PostgreSQL schema {schema}: {e:#}");
    }
}

async fn server_version(db: &Db) -> String {
    let version = match db {
        Db::Sqlite { read, .. } => sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
            .fetch_one(read)
            .await
            .map(|v| format!("SQLite {v} (file, WAL)")),
        Db::Postgres(pool) => sqlx::query_scalar::<_, String>("SHOW server_version")
            .fetch_one(pool)
            .await
            .map(|v| format!("PostgreSQL {v}")),
    };
    version.unwrap_or_else(|e| format!("{} (version unknown: {e})", db.backend_name()))
}

async fn bench_backend(db: Db, opts: &Options) -> anyhow::Result<Results> {
    let backend = db.backend_name();
    let version = server_version(&db).await;
    eprintln!("{backend}: {version}");
    let docs = Documents::new(db, Limits::default());
    let scope = Scope::new(PLUGIN, COLLECTION);
    let quota = Quota::UNLIMITED;
    let mut rng = Rng(opts.seed);
    let mut next = 0usize;
    let mut writes = Vec::new();
    let mut notes = Vec::new();

    // 1. The load: batches, one transaction each, no index yet.
    let mut spent = Duration::ZERO;
    let started = Instant::now();
    while next < opts.documents {
        let n = opts.batch.min(opts.documents - next);
        let ops = batch_ops(&mut rng, &mut next, n);
        let t = Instant::now();
        docs.batch(PLUGIN, &quota, &ops, None).await?;
        spent += t.elapsed();
        if started.elapsed() > Duration::from_secs(5) && next % (opts.batch * 20) < opts.batch {
            eprintln!("{backend}: loaded {next} of {}", opts.documents);
        }
    }
    writes.push((
        W_BATCH_PLAIN,
        Measure::Rate {
            documents: opts.documents,
            time: spent,
        },
    ));
    let count = docs.count(scope, None).await?;
    anyhow::ensure!(
        count == opts.documents as u64,
        "{backend}: {count} documents after loading {}",
        opts.documents
    );

    // The same documents, one transaction each, into an empty collection (no indexes either).
    let plain = Scope::new(PLUGIN, PLAIN);
    let mut plain_rng = Rng(opts.seed ^ 0x5eed);
    let mut spent = Duration::ZERO;
    for i in 0..opts.single_inserts {
        let data = article(&mut plain_rng, i);
        let t = Instant::now();
        docs.insert(plain, &quota, None, data).await?;
        spent += t.elapsed();
    }
    writes.push((
        W_SINGLE_PLAIN,
        Measure::Rate {
            documents: opts.single_inserts,
            time: spent,
        },
    ));
    docs.drop_collection(plain).await?;

    // 2. Indexes and search, over the loaded collection.
    eprintln!("{backend}: declaring indexes");
    let t = Instant::now();
    docs.ensure_index(
        scope,
        &IndexSpec {
            name: "category_published".into(),
            fields: vec![path("category"), path("published_at")],
            unique: false,
        },
    )
    .await?;
    writes.push((W_INDEX_COMPOUND, Measure::Time(t.elapsed())));
    let t = Instant::now();
    docs.ensure_index(
        scope,
        &IndexSpec {
            name: "slug".into(),
            fields: vec![path("slug")],
            unique: true,
        },
    )
    .await?;
    writes.push((W_INDEX_UNIQUE, Measure::Time(t.elapsed())));
    let t = Instant::now();
    docs.ensure_search(scope, &search_spec()).await?;
    writes.push((W_SEARCH, Measure::Time(t.elapsed())));

    // 3. Queries, on exactly N documents.
    eprintln!("{backend}: queries");
    let mut queries = Vec::new();
    for kind in Kind::ALL {
        let mut qrng = Rng(opts.seed ^ 0x9e37 ^ kind as u64);
        for _ in 0..warmup(opts.iterations) {
            run_query(&docs, kind, &mut qrng, &mut Latencies::default(), true).await?;
        }
        let mut lat = Latencies::default();
        for i in 0..opts.iterations {
            run_query(&docs, kind, &mut qrng, &mut lat, i == 0).await?;
        }
        lat.finish();
        queries.push((kind, lat));
    }
    let mut plans = Vec::new();
    for kind in [Kind::Indexed, Kind::Unindexed, Kind::Cursor] {
        let q = match kind {
            Kind::Cursor => {
                let mut q = indexed_query(CATEGORIES[0]);
                q.cursor = docs.query(scope, &q).await?.next_cursor;
                q
            }
            Kind::Unindexed => unindexed_query(1),
            _ => indexed_query(CATEGORIES[0]),
        };
        let plan = docs.explain(scope, &q).await?;
        if let Some(why) = plan_problem(&docs, kind, &plan) {
            notes.push(format!("{backend}: {}: {why}", kind.label().trim()));
        }
        plans.push((kind, plan));
    }

    // 4. Writes onto the N documents: with the two indexes only, then with the search as well.
    eprintln!("{backend}: writes with indexes");
    docs.drop_search(scope).await?;
    let (batched, single) = timed_writes(&docs, opts, &mut rng, &mut next).await?;
    writes.push((W_BATCH_INDEXES, batched));
    writes.push((W_SINGLE_INDEXES, single));
    docs.ensure_search(scope, &search_spec()).await?;
    let (batched, single) = timed_writes(&docs, opts, &mut rng, &mut next).await?;
    writes.push((W_BATCH_SEARCH, batched));
    writes.push((W_SINGLE_SEARCH, single));
    let count = docs.count(scope, None).await?;
    anyhow::ensure!(
        count == next as u64,
        "{backend}: {count} documents, expected {next}"
    );

    Ok(Results {
        backend,
        version,
        writes,
        queries,
        plans,
        notes,
    })
}

/// Documents written in batches by each write phase after the queries.
fn batched_after(opts: &Options) -> usize {
    (opts.documents / 10).clamp(opts.batch, 10 * opts.batch)
}

/// Times [`batched_after`] documents in batches, then `--single-inserts` one by one, into the
/// collection as it is.
async fn timed_writes(
    docs: &Documents,
    opts: &Options,
    rng: &mut Rng,
    next: &mut usize,
) -> anyhow::Result<(Measure, Measure)> {
    let quota = Quota::UNLIMITED;
    let documents = batched_after(opts);
    let mut spent = Duration::ZERO;
    let mut written = 0;
    while written < documents {
        let n = opts.batch.min(documents - written);
        let ops = batch_ops(rng, next, n);
        let t = Instant::now();
        docs.batch(PLUGIN, &quota, &ops, None).await?;
        spent += t.elapsed();
        written += n;
    }
    let batched = Measure::Rate {
        documents,
        time: spent,
    };
    let mut spent = Duration::ZERO;
    for _ in 0..opts.single_inserts {
        let data = article(rng, *next);
        *next += 1;
        let t = Instant::now();
        docs.insert(Scope::new(PLUGIN, COLLECTION), &quota, None, data)
            .await?;
        spent += t.elapsed();
    }
    let single = Measure::Rate {
        documents: opts.single_inserts,
        time: spent,
    };
    Ok((batched, single))
}

fn search_spec() -> SearchSpec {
    SearchSpec {
        fields: vec![path("title"), path("body")],
        language: "english".into(),
    }
}

fn batch_ops(rng: &mut Rng, next: &mut usize, n: usize) -> Vec<WriteOp> {
    (0..n)
        .map(|_| {
            let data = article(rng, *next);
            *next += 1;
            WriteOp::Insert {
                collection: COLLECTION.into(),
                id: None,
                data,
            }
        })
        .collect()
}

fn indexed_query(category: &str) -> Query {
    Query {
        filter: Some(Filter::Eq(path("category"), json!(category))),
        sort: vec![Sort::desc(path("published_at"))],
        limit: PAGE,
        ..Query::default()
    }
}

fn unindexed_query(author: usize) -> Query {
    Query {
        filter: Some(Filter::Eq(path("author.id"), json!(author))),
        sort: vec![Sort::desc(path("rating"))],
        limit: PAGE,
        ..Query::default()
    }
}

/// Runs one query of `kind` with fresh random arguments, recording its latency (each page for
/// the cursor). With `check`, also checks the answer is right.
async fn run_query(
    docs: &Documents,
    kind: Kind,
    rng: &mut Rng,
    lat: &mut Latencies,
    check: bool,
) -> anyhow::Result<()> {
    let scope = Scope::new(PLUGIN, COLLECTION);
    match kind {
        Kind::Indexed | Kind::Unindexed => {
            let (q, field, value, key) = if kind == Kind::Indexed {
                let c = CATEGORIES[rng.below(CATEGORIES.len())];
                (indexed_query(c), "/category", json!(c), "/published_at")
            } else {
                let a = 1 + rng.below(AUTHORS);
                (unindexed_query(a), "/author/id", json!(a), "/rating")
            };
            let t = Instant::now();
            let page = docs.query(scope, &q).await?;
            lat.record(t.elapsed(), page.documents.len());
            lat.indexed = Some(page.indexed);
            if check {
                check_page(&page.documents, field, &value, key)?;
            }
        }
        Kind::Cursor => {
            let category = CATEGORIES[rng.below(CATEGORIES.len())];
            let mut q = indexed_query(category);
            let first = docs.query(scope, &q).await?;
            let mut cursor = first.next_cursor;
            let mut last = first.documents.last().cloned();
            for _ in 2..=5 {
                let Some(next) = cursor.take() else { break };
                q.cursor = Some(next);
                let t = Instant::now();
                let page = docs.query(scope, &q).await?;
                lat.record(t.elapsed(), page.documents.len());
                lat.indexed = Some(page.indexed);
                if check {
                    check_page(
                        &page.documents,
                        "/category",
                        &json!(category),
                        "/published_at",
                    )?;
                    if let (Some(prev), Some(first)) = (&last, page.documents.first()) {
                        anyhow::ensure!(
                            prev.data["published_at"].as_str()
                                >= first.data["published_at"].as_str()
                                && prev.id != first.id,
                            "the cursor's next page does not continue the previous one"
                        );
                    }
                }
                last = page.documents.last().cloned();
                cursor = page.next_cursor;
            }
        }
        Kind::Search1 | Kind::Search2 => {
            let words = if kind == Kind::Search1 { 1 } else { 2 };
            let text = (0..words)
                .map(|_| VOCABULARY[rng.below(VOCABULARY.len())])
                .collect::<Vec<_>>()
                .join(" ");
            let s = Search {
                text: text.clone(),
                limit: PAGE,
                ..Search::default()
            };
            let t = Instant::now();
            let page = docs.search(scope, &s).await?;
            lat.record(t.elapsed(), page.hits.len());
            if check {
                for (doc, _) in &page.hits {
                    let all = format!("{} {}", doc.data["title"], doc.data["body"]).to_lowercase();
                    for w in text.split(' ') {
                        anyhow::ensure!(
                            all.contains(w),
                            "search `{text}` found document {} without `{w}`",
                            doc.id
                        );
                    }
                }
            }
        }
        Kind::Count => {
            let c = CATEGORIES[rng.below(CATEGORIES.len())];
            let filter = Filter::Eq(path("category"), json!(c));
            let t = Instant::now();
            let n = docs.count(scope, Some(&filter)).await?;
            lat.record(t.elapsed(), n as usize);
        }
    }
    Ok(())
}

/// Every document has `field` = `value`, and they come in descending order of `key`.
fn check_page(
    documents: &[ucms_documents::Document],
    field: &str,
    value: &Value,
    key: &str,
) -> anyhow::Result<()> {
    for d in documents {
        anyhow::ensure!(
            d.data.pointer(field) == Some(value),
            "document {} does not match the filter {field} = {value}",
            d.id
        );
    }
    for pair in documents.windows(2) {
        let (a, b) = (&pair[0].data, &pair[1].data);
        let ordered = match (a.pointer(key), b.pointer(key)) {
            (Some(Value::String(x)), Some(Value::String(y))) => x >= y,
            (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() >= y.as_f64(),
            _ => false,
        };
        anyhow::ensure!(ordered, "documents are not in descending order of {key}");
    }
    Ok(())
}

/// Why a plan looks wrong for its query, if it does.
fn plan_problem(docs: &Documents, kind: Kind, plan: &str) -> Option<String> {
    let sqlite = matches!(docs.db(), Db::Sqlite { .. });
    let expect_index = kind != Kind::Unindexed;
    let (uses_index, sorts) = if sqlite {
        (
            plan.contains("USING INDEX") || plan.contains("USING COVERING INDEX"),
            plan.contains("TEMP B-TREE"),
        )
    } else {
        (plan.contains("Index"), plan.contains("Sort"))
    };
    match (expect_index, uses_index, sorts) {
        (true, false, _) => Some(format!(
            "the plan uses no index: {}",
            plan.replace('\n', " | ")
        )),
        (true, true, true) => Some(format!(
            "the plan sorts instead of reading the index in order: {}",
            plan.replace('\n', " | ")
        )),
        (false, true, false) => Some(format!(
            "expected a scan, the plan uses an index: {}",
            plan.replace('\n', " | ")
        )),
        _ => None,
    }
}

// ----- the report -------------------------------------------------------------------------------

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

fn print_report(opts: &Options, all: &[Results]) {
    println!();
    for r in all {
        println!("{:<9} {}", r.backend, r.version);
    }
    let sqlite = all.iter().find(|r| r.backend == "sqlite");
    let postgres = all.iter().find(|r| r.backend == "postgres");

    // Writes: one column per backend.
    println!(
        "\nwrites: rates count time in the store's calls only; batches of {} documents, one transaction each; \
         {} single inserts per row; after the queries, each batched row adds {} documents to the N",
        opts.batch,
        thousands(opts.single_inserts as u64),
        thousands(batched_after(opts) as u64)
    );
    println!(
        "{:<38} {:>16} {:>16} {:>10}",
        "", "sqlite", "postgres", "pg/sqlite"
    );
    for label in [
        W_BATCH_PLAIN,
        W_SINGLE_PLAIN,
        W_INDEX_COMPOUND,
        W_INDEX_UNIQUE,
        W_SEARCH,
        W_BATCH_INDEXES,
        W_SINGLE_INDEXES,
        W_BATCH_SEARCH,
        W_SINGLE_SEARCH,
    ] {
        let s = sqlite.and_then(|r| r.write(label));
        let p = postgres.and_then(|r| r.write(label));
        let cell = |m: Option<Measure>| m.map(Measure::text).unwrap_or_else(|| "-".into());
        let pg_ratio = match (p, s) {
            (Some(p), Some(s)) => {
                // For rates, the ratio of times per document (above 1: PostgreSQL is slower).
                ratio(p.cost(), s.cost())
            }
            _ => "-".into(),
        };
        println!(
            "{label:<38} {:>16} {:>16} {:>10}",
            cell(s),
            cell(p),
            pg_ratio
        );
    }
    if let (Some(s), Some(b)) = (
        sqlite.and_then(|r| r.write(W_SINGLE_PLAIN)),
        sqlite.and_then(|r| r.write(W_BATCH_PLAIN)),
    ) {
        println!(
            "batched/single insert rate: sqlite {}{}",
            ratio(s.cost(), b.cost()),
            match (
                postgres.and_then(|r| r.write(W_SINGLE_PLAIN)),
                postgres.and_then(|r| r.write(W_BATCH_PLAIN)),
            ) {
                (Some(s), Some(b)) => format!(", postgres {}", ratio(s.cost(), b.cost())),
                _ => String::new(),
            }
        );
    }

    // Queries: one row per query and backend.
    println!(
        "\nqueries on N = {} documents, {} iterations each (after {} warm-up), limit {PAGE}; ratios of p50/p99",
        thousands(opts.documents as u64),
        opts.iterations,
        warmup(opts.iterations)
    );
    println!(
        "{:<40} {:<9} {:>10} {:>10} {:>10} {:>10} {:>8} {:>6} {:>13} {:>13}",
        "query",
        "backend",
        "p50",
        "p95",
        "p99",
        "max",
        "rows",
        "index",
        "scan/indexed",
        "pg/sqlite"
    );
    for kind in Kind::ALL {
        for r in all {
            let Some(l) = r.query(kind) else { continue };
            let pair = |a: &Latencies, b: &Latencies| {
                format!(
                    "{}/{}",
                    ratio(a.quantile(0.5).as_secs_f64(), b.quantile(0.5).as_secs_f64()),
                    ratio(
                        a.quantile(0.99).as_secs_f64(),
                        b.quantile(0.99).as_secs_f64()
                    )
                )
            };
            let scan = match (kind, r.query(Kind::Indexed)) {
                (Kind::Unindexed, Some(a)) => pair(l, a),
                _ => "-".into(),
            };
            let vs_sqlite = match (r.backend, sqlite.and_then(|s| s.query(kind))) {
                ("postgres", Some(s)) => pair(l, s),
                _ => "-".into(),
            };
            let index = match l.indexed {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            println!(
                "{:<40} {:<9} {:>10} {:>10} {:>10} {:>10} {:>8.1} {:>6} {:>13} {:>13}",
                kind.label(),
                r.backend,
                ms(l.quantile(0.5)),
                ms(l.quantile(0.95)),
                ms(l.quantile(0.99)),
                ms(l.max()),
                l.mean_rows(),
                index,
                scan,
                vs_sqlite
            );
        }
    }
    println!("(rows: mean documents per page or hits per search; for e, the mean count)");

    if let Some(a) = sqlite.and_then(|r| r.query(Kind::Indexed)) {
        let p99 = a.quantile(0.99);
        println!(
            "\nsqlite query a p99: {} (goal: < {}) {}",
            ms(p99),
            ms(SQLITE_P99_GOAL),
            if p99 < SQLITE_P99_GOAL {
                "OK"
            } else {
                "MISSED"
            }
        );
    }
    let notes: Vec<&String> = all.iter().flat_map(|r| &r.notes).collect();
    if !notes.is_empty() {
        println!("\nplans to look at:");
        for n in notes {
            println!("  {n}");
        }
    }
    if opts.explain {
        let mut out = String::new();
        for r in all {
            for (kind, plan) in &r.plans {
                let _ = writeln!(out, "\n{} {}:", r.backend, kind.label().trim());
                for line in plan.lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
        print!("\nplans (EXPLAIN){out}");
    }
}
