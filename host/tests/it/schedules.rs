//! Schedules: a one-second cron firing, two nodes on one PostgreSQL schema running each tick once
//! between them, a tick missed while the site was down running once at start, and a disabled
//! plugin's tick skipped.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use tokio_util::sync::CancellationToken;
use ucms::Site;
use ucms::config::DataDir;
use ucms::db::{Db, now_ms, on_db};
use ucms::plugins::{ApplyOptions, PluginSource};
use ucms::schedules::Scheduler;
use ucms_test_components::HOOKY;

use crate::support::{
    BACKENDS, TestDb, TestSite, drop_schema, eventually, postgres_db, postgres_url, test_config,
};

/// The hooky manifest with one schedule, `rare`, on `cron` (instead of every second).
fn rare(cron: &str) -> String {
    HOOKY.manifest().replace(
        "name = \"every-second\"\ncron = \"* * * * * *\"",
        &format!("name = \"rare\"\ncron = \"{cron}\""),
    )
}

async fn install(site: &Site, manifest: &str) {
    let source = PluginSource::new(manifest.to_string(), HOOKY.wasm_bytes(), HOOKY.dir).unwrap();
    site.plugins
        .apply(source, ApplyOptions::default())
        .await
        .unwrap();
}

fn scheduler(site: &Site) -> Scheduler {
    Scheduler::new(
        site.plugins.clone(),
        site.db.clone(),
        site.services.metrics.clone(),
    )
}

async fn ticks(site: &Site, name: &str) -> serde_json::Value {
    let request = http::Request::get(format!("/api/hooky/ticks/{name}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(site.router(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_one_second_schedule_fires() {
    for backend in BACKENDS {
        let Some(site) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        site.install(HOOKY).await;
        let body = eventually(10, || {
            let site = &site.site;
            async move {
                let body = ticks(site, "every-second").await;
                (body["count"].as_i64().unwrap_or(0) >= 3).then_some(body)
            }
        })
        .await;
        assert_eq!(body["max_per_time"], 1, "{backend:?}: {body}");
        let rows = scheduler(&site.site).rows().await.unwrap();
        let row = rows.iter().find(|r| r.plugin == "hooky").unwrap();
        assert_eq!(row.name, "every-second");
        assert_eq!(row.last_status.as_deref(), Some("ok"), "{row:?}");
        assert!(row.next_at > now_ms() - 2000);
        let metrics = site.site.services.metrics.render();
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("ucms_schedule_ticks_total")
                    && l.contains("plugin=\"hooky\"")
                    && l.contains("outcome=\"ok\"")),
            "{backend:?}: no tick metric"
        );
        site.close().await;
    }
}

/// A site without background tasks: the test drives its scheduler.
async fn quiet_site(db: &TestDb) -> Site {
    Site::open_with_db(
        test_config(),
        DataDir::new(db.dir.path().join("data")),
        db.db.clone(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_tick_missed_while_down_runs_once_at_start() {
    for backend in BACKENDS {
        let Some(db) = TestDb::open(backend).await else {
            continue;
        };
        let site = quiet_site(&db).await;
        // Hourly: due again only an hour from now.
        install(&site, &rare("0 * * * *")).await;
        let s = scheduler(&site);
        s.reconcile().await.unwrap();
        let row = s.rows().await.unwrap().pop().unwrap();
        assert!(row.next_at > now_ms(), "{row:?}");

        // The site was down for five hours: five ticks missed.
        let past = now_ms() - 5 * 3_600_000;
        on_db!(&site.db, write, |pool| {
            sqlx::query("UPDATE schedules SET next_at = $1")
                .bind(past)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .unwrap();

        let stop = CancellationToken::new();
        let run = tokio::spawn(scheduler(&site).run(stop.clone()));
        let body = eventually(10, || {
            let site = &site;
            async move {
                let body = ticks(site, "rare").await;
                (body["count"] == 1).then_some(body)
            }
        })
        .await;
        assert_eq!(body["times"], 1, "{backend:?}: {body}");
        // Polled for another second: no catch-up burst.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(ticks(&site, "rare").await["count"], 1, "{backend:?}");
        let row = s.rows().await.unwrap().pop().unwrap();
        assert!(row.next_at > now_ms(), "{row:?}");
        assert_eq!(row.last_status.as_deref(), Some("ok"));
        stop.cancel();
        run.await.unwrap();

        // A disabled plugin's due tick is claimed and skipped.
        site.plugins
            .set_enabled("hooky", false, None)
            .await
            .unwrap();
        on_db!(&site.db, write, |pool| {
            sqlx::query("UPDATE schedules SET next_at = $1")
                .bind(now_ms() - 1000)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .unwrap();
        let runs = s.run_due().await.unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, "skipped");
        assert!(s.run_due().await.unwrap().is_empty());

        // Removed with the plugin.
        site.plugins.remove("hooky", true, None).await.unwrap();
        s.reconcile().await.unwrap();
        assert!(s.rows().await.unwrap().is_empty(), "{backend:?}");
        db.close().await;
    }
}

#[tokio::test]
async fn two_nodes_run_each_tick_once() {
    let Some((db_a, schema)) = postgres_db().await else {
        return;
    };
    let options = PgConnectOptions::from_str(&postgres_url())
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let db_b = Db::connect_postgres(options, Some(8)).await.unwrap();
    // Both nodes share the database; each has its own pools, plugin manager and scheduler. They
    // share the data folder, so the second node finds the plugin's files.
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path().join("data"));
    let a = Site::open_with_db(test_config(), data.clone(), db_a.clone())
        .await
        .unwrap();
    install(&a, &HOOKY.manifest()).await;
    let b = Site::open_with_db(test_config(), data, db_b.clone())
        .await
        .unwrap();
    assert!(
        b.plugins
            .get("hooky")
            .and_then(|s| s.runnable().cloned())
            .is_some()
    );

    let stop = CancellationToken::new();
    let nodes: Vec<_> = [&a, &b]
        .into_iter()
        .map(|site| tokio::spawn(scheduler(site).run(stop.clone())))
        .collect();
    let body = eventually(15, || {
        let a = &a;
        async move {
            let body = ticks(a, "every-second").await;
            (body["times"].as_i64().unwrap_or(0) >= 4).then_some(body)
        }
    })
    .await;
    stop.cancel();
    for node in nodes {
        node.await.unwrap();
    }
    let body_after = ticks(&b, "every-second").await;
    assert_eq!(
        body_after["max_per_time"], 1,
        "a tick ran twice: {body_after}"
    );
    assert_eq!(body_after["count"], body_after["times"], "{body_after}");
    assert!(body["times"].as_i64().unwrap() >= 4);
    db_a.close().await;
    db_b.close().await;
    drop_schema(&schema).await;
}
