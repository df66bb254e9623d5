//! Event throughput: events per second delivered to a subscriber plugin, on SQLite and on
//! PostgreSQL, side by side with the same bus delivering to a native subscriber.
//!
//! Each run gets a fresh database (SQLite in a temporary folder, PostgreSQL in a schema of its
//! own, dropped at the end) and a site with the `tally` test plugin installed. `--events` events
//! are published into the outbox beforehand (one transaction each, not timed); then one
//! dispatcher — the host's, with its claims, leases and bookkeeping — drains it, and the time from
//! its first claim to an empty outbox is measured. Three subscribers, each in its own run:
//! - **native**: a Rust `Subscribers` that returns at once: the bus's own cost (the baseline);
//! - **plugin, no-op**: `tally` instantiated per delivery, parsing the payload and returning;
//! - **plugin, kv**: `tally` recording each delivery (four kv writes), as a real subscriber does.
//!
//! The ratios against the native run show the plugin's share of the time.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ucms::capabilities::events::{
    DeliveryOutcome, Dispatcher, EventDelivery, NewEvent, Subscribers,
};
use ucms::config::{Config, DataDir};
use ucms_db::Db;
use ucms_test_components::TALLY;

#[derive(Debug, Clone)]
pub struct Options {
    pub events: usize,
    pub concurrency: usize,
    pub postgres_url: String,
    pub require_postgres: bool,
}

/// The subscriber of the baseline: delivered, at once.
struct Native;

#[async_trait]
impl Subscribers for Native {
    async fn deliver(&self, _subscriber: &str, _event: EventDelivery) -> DeliveryOutcome {
        DeliveryOutcome::Delivered
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Native,
    PluginNoop,
    PluginKv,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::Native => "native (baseline)",
            Self::PluginNoop => "plugin, no-op",
            Self::PluginKv => "plugin, 4 kv writes",
        }
    }
}

const MODES: [Mode; 3] = [Mode::Native, Mode::PluginNoop, Mode::PluginKv];

async fn open_postgres(url: &str) -> anyhow::Result<(Db, String)> {
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("unreachable at {} ({e})", ucms_db::redact(url)))?;
    let schema = format!("ucms_bench_ev_{}_{}", std::process::id(), ucms_db::now_ms());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await?;
    admin.close().await;
    let options = sqlx::postgres::PgConnectOptions::from_str(url)?
        .options([("search_path", schema.as_str())]);
    let db = Db::connect_postgres(options, Some(16)).await?;
    Ok((db, schema))
}

async fn drop_schema(url: &str, schema: &str) {
    if let Ok(admin) = sqlx::PgPool::connect(url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&admin)
        .await;
        admin.close().await;
    }
}

/// One drained outbox: events per second.
async fn run_one(db: Db, mode: Mode, opts: &Options) -> anyhow::Result<(f64, Duration)> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.runtime.max_instances = 256;
    config.events.concurrency = opts.concurrency;
    let site =
        ucms::Site::open_with_db(config.clone(), DataDir::new(dir.path().join("data")), db).await?;
    let subscriber = match mode {
        Mode::Native => "native",
        Mode::PluginNoop | Mode::PluginKv => {
            let source =
                ucms::plugins::PluginSource::new(TALLY.manifest(), TALLY.wasm_bytes(), TALLY.dir)?;
            site.plugins
                .apply(source, ucms::plugins::ApplyOptions::default())
                .await?;
            "tally"
        }
    };
    let payload = serde_json::json!({
        "n": 0, "slow_ms": 0, "fail": 0, "quiet": mode == Mode::PluginNoop
    })
    .to_string()
    .into_bytes();
    let outbox = site.services.events.outbox.clone();
    let subscribers = [subscriber.to_string()];
    let now = ucms_db::now_ms();
    for i in 0..opts.events {
        let event = NewEvent {
            id: format!("bench-{i}"),
            topic: "tally.counted".into(),
            key: None,
            payload: payload.clone(),
            source: "bench".into(),
            published_at: now,
        };
        outbox.publish(&event, &subscribers, now).await?;
    }
    let target: Arc<dyn Subscribers> = match mode {
        Mode::Native => Arc::new(Native),
        _ => site.plugins.clone(),
    };
    let dispatcher = Dispatcher::new(
        site.services.events.clone(),
        target,
        config.events.clone(),
        site.services.metrics.clone(),
        Duration::from_secs(30),
    )
    .with_node("bench");
    let started = Instant::now();
    let mut delivered = 0;
    loop {
        let n = dispatcher.run_once().await?;
        if n == 0 {
            break;
        }
        delivered += n;
    }
    let took = started.elapsed();
    let left = outbox.backlog().await?;
    anyhow::ensure!(
        left.iter().all(|b| b.pending == 0 && b.dead == 0),
        "the outbox was not drained: {left:?}"
    );
    anyhow::ensure!(
        delivered == opts.events,
        "{delivered} deliveries for {} events",
        opts.events
    );
    site.db.close().await;
    Ok((opts.events as f64 / took.as_secs_f64(), took))
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    println!(
        "events: {} events published beforehand, drained by one dispatcher (concurrency {}), subscriber `tally`",
        opts.events, opts.concurrency
    );
    let mut rows: Vec<(Mode, Option<f64>, Option<f64>)> = Vec::new();
    for mode in MODES {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("ucms.db").display());
        let db = ucms::db::open(&url, None).await?;
        let (sqlite, took) = run_one(db, mode, &opts).await?;
        eprintln!(
            "  sqlite   {:<22} {sqlite:>9.0} events/s ({took:.2?})",
            mode.label()
        );
        let postgres = match open_postgres(&opts.postgres_url).await {
            Ok((db, schema)) => {
                let result = run_one(db, mode, &opts).await;
                drop_schema(&opts.postgres_url, &schema).await;
                let (rate, took) = result?;
                eprintln!(
                    "  postgres {:<22} {rate:>9.0} events/s ({took:.2?})",
                    mode.label()
                );
                Some(rate)
            }
            Err(e) if opts.require_postgres => {
                return Err(e.context("PostgreSQL is required (--require-postgres)"));
            }
            Err(e) => {
                eprintln!("PostgreSQL SKIPPED: {e:#}");
                None
            }
        };
        rows.push((mode, Some(sqlite), postgres));
    }
    let base = rows[0];
    println!();
    println!(
        "{:<22} {:>12} {:>10} {:>12} {:>10}",
        "subscriber", "sqlite ev/s", "vs native", "postgres ev/s", "vs native"
    );
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let ratio = |v: Option<f64>, b: Option<f64>| match (v, b) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}x", v / b),
        _ => "-".to_string(),
    };
    for (mode, sqlite, postgres) in &rows {
        println!(
            "{:<22} {:>12} {:>10} {:>12} {:>10}",
            mode.label(),
            cell(*sqlite),
            ratio(*sqlite, base.1),
            cell(*postgres),
            ratio(*postgres, base.2)
        );
    }
    Ok(())
}
