//! The outbox on SQLite and PostgreSQL, and event delivery between plugins end to end.

use http::{Method, StatusCode};
use serde_json::{Value, json};
use ucms::capabilities::events::outbox::{self, NewEvent};
use ucms::capabilities::events::{DeadLetterQuery, Selection};
use ucms::config::Config;
use ucms_test_components::{MAILER, MISBEHAVE, ORDERS, TALLY};

use crate::support::{BACKENDS, TestDb, TestSite, code, eventually, test_config};

fn event(id: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        topic: "orders.placed".into(),
        key: Some("1".into()),
        payload: br#"{"n":1}"#.to_vec(),
        source: "orders".into(),
        published_at: 1000,
    }
}

const NODE: &str = "test-node";

#[tokio::test]
async fn the_outbox_claims_leases_retries_and_parks() {
    for backend in BACKENDS {
        // No dispatcher: this test drives the outbox by hand.
        let Some(t) = TestDb::open(backend).await else {
            continue;
        };
        let outbox = outbox::for_db(&t.db);
        outbox
            .publish(&event("e1"), &["mailer".into(), "audit".into()], 1000)
            .await
            .unwrap();
        let mut e2 = event("e2");
        e2.key = Some("2".into());
        outbox.publish(&e2, &["mailer".into()], 1000).await.unwrap();

        let claimed = outbox.claim(1000, 5000, 10, NODE).await.unwrap();
        assert_eq!(claimed.len(), 3, "{backend:?}");
        assert_eq!(claimed[0].event.payload, br#"{"n":1}"#);
        assert!(
            claimed[0].claim.starts_with("test-node/"),
            "{}",
            claimed[0].claim
        );
        assert!(
            outbox.claim(1000, 5000, 10, NODE).await.unwrap().is_empty(),
            "leased deliveries aren't claimed twice"
        );

        let e1_mailer = claimed
            .iter()
            .find(|d| d.event.id == "e1" && d.subscriber == "mailer")
            .unwrap();
        assert!(outbox.complete(e1_mailer).await.unwrap());
        let e1_audit = claimed.iter().find(|d| d.subscriber == "audit").unwrap();
        assert!(
            outbox
                .fail(e1_audit, "boom", Some(2000), 1500)
                .await
                .unwrap()
        );
        let e2 = claimed.iter().find(|d| d.event.id == "e2").unwrap();
        assert!(outbox.fail(e2, "final failure", None, 1500).await.unwrap());

        // The retry is due at 2000; the lease of nothing else has expired.
        assert!(outbox.claim(1999, 9000, 10, NODE).await.unwrap().is_empty());
        let retried = outbox.claim(2000, 9000, 10, NODE).await.unwrap();
        assert_eq!(retried.len(), 1);
        assert_eq!(
            (retried[0].subscriber.as_str(), retried[0].attempts),
            ("audit", 1)
        );
        // A lease that runs out (the node died) makes the delivery claimable again, and the
        // attempt that died counts.
        let reclaimed = outbox.claim(9000, 12000, 10, "other-node").await.unwrap();
        assert_eq!(reclaimed.len(), 1, "{backend:?}: at least once");
        assert_eq!(reclaimed[0].attempts, 2);
        // The handler that outlived its lease can't settle the delivery the other node holds.
        assert!(!outbox.complete(&retried[0]).await.unwrap(), "{backend:?}");
        assert!(
            !outbox
                .fail(&retried[0], "late", Some(1), 9500)
                .await
                .unwrap()
        );
        assert!(!outbox.postpone(&retried[0], 1).await.unwrap());
        assert!(outbox.complete(&reclaimed[0]).await.unwrap());

        let dead = outbox.dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].event_id.as_str(), dead[0].attempts), ("e2", 1));
        assert_eq!(dead[0].last_error.as_deref(), Some("final failure"));
        assert_eq!(dead[0].payload, r#"{"n":1}"#);
        // e1 went with its last delivery; e2 stays for its dead letter.
        let events: Vec<String> = ucms::db::on_db!(&t.db, read, |pool| sqlx::query_scalar(
            "SELECT id FROM events"
        )
        .fetch_all(pool)
        .await
        .unwrap());
        assert_eq!(events, ["e2"], "{backend:?}");
        t.close().await;
    }
}

fn keyed(id: &str, key: Option<&str>) -> NewEvent {
    NewEvent {
        id: id.into(),
        topic: "tally.counted".into(),
        key: key.map(Into::into),
        payload: b"{}".to_vec(),
        source: "tally".into(),
        published_at: 1000,
    }
}

fn ids(deliveries: &[outbox::Delivery]) -> Vec<&str> {
    let mut ids: Vec<&str> = deliveries.iter().map(|d| d.event.id.as_str()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn deliveries_of_one_key_are_claimed_in_order() {
    for backend in BACKENDS {
        let Some(t) = TestDb::open(backend).await else {
            continue;
        };
        let outbox = outbox::for_db(&t.db);
        let subs = ["tally".to_string()];
        for (id, key) in [
            ("a1", Some("a")),
            ("a2", Some("a")),
            ("b1", Some("b")),
            ("n1", None),
            ("n2", None),
            ("a3", Some("a")),
        ] {
            outbox.publish(&keyed(id, key), &subs, 1000).await.unwrap();
        }
        // Other subscribers and topics are other groups.
        outbox
            .publish(&keyed("a1-other", Some("a")), &["other".into()], 1000)
            .await
            .unwrap();

        // One batch takes at most the earliest of each (subscriber, topic, key); unkeyed events
        // are unordered.
        let first = outbox.claim(1000, 5000, 100, NODE).await.unwrap();
        assert_eq!(
            ids(&first),
            ["a1", "a1-other", "b1", "n1", "n2"],
            "{backend:?}"
        );
        let a1 = first.iter().find(|d| d.event.id == "a1").unwrap();
        // a1 fails and waits for a retry at 3000: a2 stays behind it, even after a1's lease.
        outbox.fail(a1, "not yet", Some(3000), 1500).await.unwrap();
        for d in first.iter().filter(|d| d.event.id != "a1") {
            outbox.complete(d).await.unwrap();
        }
        assert!(
            outbox
                .claim(2000, 5000, 100, NODE)
                .await
                .unwrap()
                .is_empty(),
            "{backend:?}: a2 waits for a1"
        );
        let retry = outbox.claim(3000, 6000, 100, NODE).await.unwrap();
        assert_eq!(ids(&retry), ["a1"]);
        // a1 becomes a dead letter: it no longer holds a2 back.
        outbox.fail(&retry[0], "gave up", None, 3000).await.unwrap();
        let next = outbox.claim(3000, 6000, 100, NODE).await.unwrap();
        assert_eq!(ids(&next), ["a2"], "{backend:?}");
        outbox.complete(&next[0]).await.unwrap();

        // Replaying a1 makes it pending again with its old place: it is delivered next, after
        // a2 (out of order, as documented), and holds a3 back until it is handled.
        let one = Selection::One {
            event_id: "a1".into(),
            subscriber: "tally".into(),
        };
        assert_eq!(outbox.replay(&one, 3500).await.unwrap(), 1);
        let replayed = outbox.claim(3500, 7000, 100, NODE).await.unwrap();
        assert_eq!(ids(&replayed), ["a1"], "{backend:?}");
        assert_eq!(replayed[0].attempts, 0, "a replay starts counting afresh");
        outbox.complete(&replayed[0]).await.unwrap();
        let last = outbox.claim(3500, 7000, 100, NODE).await.unwrap();
        assert_eq!(ids(&last), ["a3"]);
        outbox.complete(&last[0]).await.unwrap();
        assert!(outbox.dead_letters(10).await.unwrap().is_empty());
        assert!(outbox.backlog().await.unwrap().is_empty());
        t.close().await;
    }
}

#[tokio::test]
async fn dead_letters_page_and_are_replayed_or_discarded_by_selection() {
    for backend in BACKENDS {
        let Some(t) = TestDb::open(backend).await else {
            continue;
        };
        let outbox = outbox::for_db(&t.db);
        for i in 0..5 {
            let mut e = keyed(&format!("e{i}"), None);
            if i >= 3 {
                e.topic = "tally.other".into();
            }
            outbox
                .publish(&e, &["tally".into(), "mailer".into()], 1000)
                .await
                .unwrap();
        }
        for d in outbox.claim(1000, 5000, 100, NODE).await.unwrap() {
            outbox.fail(&d, "no", None, 1000).await.unwrap();
        }
        let backlog = outbox.backlog().await.unwrap();
        assert_eq!(
            backlog
                .iter()
                .map(|b| (b.subscriber.as_str(), b.pending, b.dead))
                .collect::<Vec<_>>(),
            [("mailer", 0, 5), ("tally", 0, 5)],
            "{backend:?}"
        );

        // Pages of 3, newest event first, by subscriber.
        let mut query = DeadLetterQuery {
            limit: 3,
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = outbox.list_dead(&query).await.unwrap();
            seen.extend(
                page.iter()
                    .map(|l| (l.event_id.clone(), l.subscriber.clone())),
            );
            match page.last() {
                Some(last) if page.len() == 3 => {
                    query.before = Some(outbox::Cursor::parse(&last.cursor).unwrap())
                }
                _ => break,
            }
        }
        assert_eq!(seen.len(), 10, "{backend:?}: {seen:?}");
        assert_eq!(seen[0], ("e4".to_string(), "mailer".to_string()));
        assert_eq!(seen[1], ("e4".to_string(), "tally".to_string()));
        assert_eq!(seen[9], ("e0".to_string(), "tally".to_string()));
        let filtered = outbox
            .list_dead(&DeadLetterQuery {
                subscriber: Some("tally".into()),
                topic: Some("tally.other".into()),
                limit: 100,
                before: None,
            })
            .await
            .unwrap();
        assert_eq!(filtered.len(), 2);

        // Bulk replay by subscriber and topic.
        let bulk = Selection::Matching {
            subscriber: Some("tally".into()),
            topic: Some("tally.other".into()),
        };
        assert_eq!(outbox.replay(&bulk, 2000).await.unwrap(), 2);
        assert_eq!(
            outbox.replay(&bulk, 2000).await.unwrap(),
            0,
            "no longer dead"
        );
        let again = outbox.claim(2000, 5000, 100, NODE).await.unwrap();
        assert_eq!(ids(&again), ["e3", "e4"]);

        // Discarding every mailer letter keeps the events the replayed tally deliveries need,
        // and deletes the others once nothing refers to them.
        let mailer = Selection::Matching {
            subscriber: Some("mailer".into()),
            topic: None,
        };
        assert_eq!(outbox.discard(&mailer).await.unwrap(), 5);
        let gone = Selection::One {
            event_id: "e0".into(),
            subscriber: "tally".into(),
        };
        assert_eq!(outbox.discard(&gone).await.unwrap(), 1);
        assert_eq!(outbox.discard(&gone).await.unwrap(), 0);
        let events: i64 = ucms::db::on_db!(&t.db, read, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM events"
        )
        .fetch_one(pool)
        .await
        .unwrap());
        assert_eq!(
            events, 4,
            "{backend:?}: e1, e2 (tally letters), e3, e4 (pending)"
        );
        for d in &again {
            outbox.complete(d).await.unwrap();
        }
        t.close().await;
    }
}

/// The claim reads indexes, not the whole table: thousands of dead letters and delivered-and-gone
/// rows must not be scanned to find the few due deliveries.
#[tokio::test]
async fn the_claim_uses_indexes() {
    for backend in BACKENDS {
        let Some(t) = TestDb::open(backend).await else {
            continue;
        };
        let outbox = outbox::for_db(&t.db);
        let subs = ["tally".to_string()];
        for i in 0..2000 {
            let key = format!("k{}", i % 50);
            outbox
                .publish(&keyed(&format!("e{i}"), Some(&key)), &subs, 1000)
                .await
                .unwrap();
        }
        loop {
            let batch = outbox.claim(1000, 5000, 256, NODE).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for d in batch {
                outbox.fail(&d, "parked", None, 1000).await.unwrap();
            }
        }
        for i in 0..20 {
            outbox
                .publish(&keyed(&format!("p{i}"), Some("k1")), &subs, 1000)
                .await
                .unwrap();
        }
        let claimable = outbox::CLAIM_POSTGRES;
        let select =
            &claimable[claimable.find("SELECT").unwrap()..claimable.rfind(" FOR UPDATE").unwrap()];
        let select = select.replace("$3", "1000").replace("$4", "16");
        let plan: String = match &t.db {
            ucms::db::Db::Sqlite { write, .. } => {
                sqlx::query("ANALYZE").execute(write).await.unwrap();
                let rows: Vec<(i64, i64, i64, String)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {select}")))
                        .fetch_all(write)
                        .await
                        .unwrap();
                rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
            }
            ucms::db::Db::Postgres(pool) => {
                sqlx::query("ANALYZE deliveries")
                    .execute(pool)
                    .await
                    .unwrap();
                let rows: Vec<String> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {select}")))
                        .fetch_all(pool)
                        .await
                        .unwrap();
                rows.join("\n")
            }
        };
        eprintln!("{backend:?} claim plan:\n{plan}");
        assert!(
            plan.contains("deliveries_due"),
            "{backend:?}: the claim should find due deliveries through an index:\n{plan}"
        );
        assert!(
            plan.contains("deliveries_order"),
            "{backend:?}: the ordering check should probe deliveries_order:\n{plan}"
        );
        assert!(
            !plan.contains("Seq Scan on deliveries")
                && !plan.contains("SCAN d\n")
                && !plan.ends_with("SCAN d"),
            "{backend:?}: the claim scans the table:\n{plan}"
        );
        assert!(
            !plan.contains("TEMP B-TREE") && !plan.contains("Sort"),
            "{backend:?}: the claim sorts the backlog instead of reading the index in order:\n{plan}"
        );
        let claimed = outbox.claim(1000, 5000, 16, NODE).await.unwrap();
        assert_eq!(ids(&claimed), ["p0"], "{backend:?}");
        t.close().await;
    }
}

async fn order(t: &TestSite, token: &str, email: &str) -> Value {
    let (status, body) = t
        .request(
            Method::POST,
            "/api/orders/orders",
            Some(token),
            Some(json!({ "item": "book", "quantity": 2, "email": email })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_event_reaches_its_subscriber() {
    for backend in BACKENDS {
        let Some(t) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        t.install(ORDERS).await;
        t.install(MAILER).await;
        let admin = t.admin_token().await;
        let placed = order(&t, &admin, "ada@example.com").await;
        assert_eq!(placed["placed_by"], "admin@example.com");
        let sent = eventually(10, || async {
            let (_, sent) = t
                .request(Method::GET, "/api/mailer/sent", Some(&admin), None)
                .await;
            (sent.as_array().is_some_and(|a| !a.is_empty())).then_some(sent)
        })
        .await;
        assert_eq!(sent[0]["to"], "ada@example.com", "{backend:?}");
        assert_eq!(sent[0]["subject"], "Your order #1");
        assert_eq!(sent[0]["from"], "shop@example.com", "the setting's default");
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_delivery_is_retried_then_kept_as_a_dead_letter() {
    for backend in BACKENDS {
        let mut config: Config = test_config();
        config.events.max_attempts = 3;
        let Some(t) = TestSite::open(backend, config).await else {
            continue;
        };
        t.install(ORDERS).await;
        t.install(MAILER).await;
        let admin = t.admin_token().await;
        order(&t, &admin, "not-an-address").await;
        let letters = eventually(15, || async {
            let (_, body) = t
                .request(Method::GET, "/api/ucms/dead-letters", Some(&admin), None)
                .await;
            (body["dead_letters"]
                .as_array()
                .is_some_and(|a| !a.is_empty()))
            .then_some(body)
        })
        .await;
        let letter = &letters["dead_letters"][0];
        assert_eq!(letter["subscriber"], "mailer", "{backend:?}");
        assert_eq!(letter["topic"], "orders.placed");
        assert_eq!(letter["attempts"], 3);
        assert!(
            letter["last_error"]
                .as_str()
                .unwrap()
                .contains("is not an email address"),
            "{letter}"
        );
        // The dispatcher counts the attempt just after recording it.
        eventually(5, || async {
            let metrics = t.site.services.metrics.render();
            (metrics.contains(r#"ucms_event_dead_letters_total{plugin="mailer"} 1"#)
                && metrics
                    .contains(r#"ucms_event_deliveries_total{plugin="mailer",outcome="failed"} 3"#))
            .then_some(())
        })
        .await;
        t.close().await;
    }
}

#[tokio::test]
async fn publishing_outside_the_granted_topics_is_refused() {
    let t = TestSite::sqlite().await;
    t.install(MISBEHAVE).await;
    let (status, body) = t
        .request(
            Method::POST,
            "/api/misbehave/publish?topic=misbehave.poked",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = t
        .request(
            Method::POST,
            "/api/misbehave/publish?topic=orders.placed",
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::INTERNAL_SERVER_ERROR, "event_not_permitted")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("orders.placed")
    );
    let (_, body) = t
        .request(
            Method::POST,
            "/api/misbehave/publish?topic=Not%20A%20Topic",
            None,
            None,
        )
        .await;
    assert_eq!(code(&body), "event_invalid");
    t.close().await;
}

#[tokio::test]
async fn the_dead_letter_list_needs_a_permission() {
    let t = TestSite::sqlite().await;
    let (status, _) = t.get("/api/ucms/dead-letters").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let narrow = t.token("ed@example.com", &["admin"], &["hello.*"]).await;
    let (status, _) = t
        .request(Method::GET, "/api/ucms/dead-letters", Some(&narrow), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    t.close().await;
}

async fn tally_seen(t: &TestSite) -> Value {
    let (status, body) = t.get("/api/tally/seen").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn tally_publish(t: &TestSite, query: &str) -> Vec<String> {
    let (status, body) = t
        .request(
            Method::POST,
            &format!("/api/tally/publish?{query}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_are_retried_with_backoff_then_succeed() {
    for backend in BACKENDS {
        let mut config = test_config();
        config.events.max_attempts = 5;
        let Some(t) = TestSite::open(backend, config).await else {
            continue;
        };
        t.install(TALLY).await;
        let started = std::time::Instant::now();
        let id = tally_publish(&t, "fail=2").await.remove(0);
        let seen = eventually(15, || async {
            let seen = tally_seen(&t).await;
            (seen["deliveries"][&id] == 1).then_some(seen)
        })
        .await;
        // Two failures, each followed by a backoff (20 ms, then 40 ms, ±20%).
        assert!(started.elapsed() >= std::time::Duration::from_millis(48));
        assert_eq!(seen["attempts"][&id], json!([1, 2, 3]), "{backend:?}");
        eventually(5, || async {
            let metrics = t.site.services.metrics.render();
            (metrics.contains(r#"ucms_event_retries_total{plugin="tally"} 2"#)
                && metrics.contains(
                    r#"ucms_event_deliveries_total{plugin="tally",outcome="delivered"} 1"#,
                )
                && metrics
                    .contains(r#"ucms_event_delivery_latency_seconds_count{plugin="tally"} 1"#))
            .then_some(())
        })
        .await;
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_first_event_holds_back_its_key_but_not_others() {
    for backend in BACKENDS {
        let mut config = test_config();
        // Long enough to look at the bus while the first event waits for its retry.
        config.events.base_backoff_ms = 1500;
        config.events.max_backoff_ms = 1500;
        let Some(t) = TestSite::open(backend, config).await else {
            continue;
        };
        t.install(TALLY).await;
        let first = tally_publish(&t, "key=k&fail=1").await.remove(0);
        let second = tally_publish(&t, "key=k").await.remove(0);
        let other = tally_publish(&t, "key=j").await.remove(0);
        let seen = eventually(10, || async {
            let seen = tally_seen(&t).await;
            (seen["deliveries"][&other] == 1 && seen["attempts"][&first] == json!([1]))
                .then_some(seen)
        })
        .await;
        assert!(
            seen["deliveries"][&second].is_null(),
            "{backend:?}: the second event of key k must wait for the first: {seen}"
        );
        let seen = eventually(10, || async {
            let seen = tally_seen(&t).await;
            (seen["deliveries"][&second] == 1).then_some(seen)
        })
        .await;
        let order: Vec<&str> = seen["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let at = |id: &str| order.iter().position(|o| *o == id).unwrap();
        assert!(at(&first) < at(&second), "{backend:?}: {order:?}");
        assert!(at(&other) < at(&first), "{backend:?}: {order:?}");
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_replayed_and_discarded_through_the_api() {
    for backend in BACKENDS {
        let mut config = test_config();
        config.events.max_attempts = 2;
        let Some(t) = TestSite::open(backend, config).await else {
            continue;
        };
        t.install(TALLY).await;
        let admin = t.admin_token().await;
        let doomed = tally_publish(&t, "fail=100&n=3").await;
        eventually(15, || async {
            let (_, all) = t
                .request(
                    Method::GET,
                    "/api/ucms/events/dead-letters?subscriber=tally",
                    Some(&admin),
                    None,
                )
                .await;
            (all["dead_letters"].as_array().map(Vec::len) == Some(3)).then_some(())
        })
        .await;
        let (_, letters) = t
            .request(
                Method::GET,
                "/api/ucms/events/dead-letters?subscriber=tally&limit=2",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(letters["dead_letters"].as_array().unwrap().len(), 2);
        eventually(10, || async {
            let metrics = t.site.services.metrics.render();
            (metrics.contains(r#"ucms_event_dead_letters_held{plugin="tally"} 3"#)
                && metrics.contains(r#"ucms_event_backlog{plugin="tally"} 0"#))
            .then_some(())
        })
        .await;
        assert_eq!(letters["dead_letters"][0]["event_id"], doomed[2].as_str());
        assert_eq!(letters["dead_letters"][0]["attempts"], 2, "{backend:?}");
        let next = letters["next_before"].as_str().unwrap();
        let (_, rest) = t
            .request(
                Method::GET,
                &format!("/api/ucms/events/dead-letters?subscriber=tally&limit=2&before={next}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(rest["dead_letters"][0]["event_id"], doomed[0].as_str());
        assert!(rest["next_before"].is_null());

        // Reading is not managing.
        let reader = t
            .token("reader@example.com", &["admin"], &["ucms.events.read"])
            .await;
        let (status, _) = t
            .request(
                Method::GET,
                "/api/ucms/events/dead-letters",
                Some(&reader),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = t
            .request(
                Method::POST,
                "/api/ucms/events/dead-letters/replay",
                Some(&reader),
                Some(json!({ "subscriber": "tally" })),
            )
            .await;
        assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("ucms.events.manage")
        );

        // Bad selections and unknown letters are explained.
        for bad in [
            json!({}),
            json!({ "event_id": "x" }),
            json!({ "event_id": "x", "subscriber": "tally", "topic": "t" }),
        ] {
            let (status, body) = t
                .request(
                    Method::POST,
                    "/api/ucms/events/dead-letters/replay",
                    Some(&admin),
                    Some(bad.clone()),
                )
                .await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::BAD_REQUEST, "invalid_selection"),
                "{bad}"
            );
        }
        let (status, body) = t
            .request(
                Method::POST,
                "/api/ucms/events/dead-letters/discard",
                Some(&admin),
                Some(json!({ "event_id": "no-such-event", "subscriber": "tally" })),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "dead_letter_not_found")
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no-such-event")
        );
        let (status, body) = t
            .request(
                Method::GET,
                "/api/ucms/events/dead-letters?limit=0",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_query")
        );

        // Discard one; heal the plugin and replay the others: they are delivered.
        let (status, body) = t
            .request(
                Method::POST,
                "/api/ucms/events/dead-letters/discard",
                Some(&admin),
                Some(json!({ "event_id": doomed[0], "subscriber": "tally" })),
            )
            .await;
        assert_eq!(
            (status, &body),
            (StatusCode::OK, &json!({ "discarded": 1 }))
        );
        t.request(Method::POST, "/api/tally/heal", None, None).await;
        let (status, body) = t
            .request(
                Method::POST,
                "/api/ucms/events/dead-letters/replay",
                Some(&admin),
                Some(json!({ "subscriber": "tally", "topic": "tally.counted" })),
            )
            .await;
        assert_eq!((status, &body), (StatusCode::OK, &json!({ "replayed": 2 })));
        let seen = eventually(10, || async {
            let seen = tally_seen(&t).await;
            (seen["deliveries"][&doomed[1]] == 1 && seen["deliveries"][&doomed[2]] == 1)
                .then_some(seen)
        })
        .await;
        assert!(
            seen["deliveries"][&doomed[0]].is_null(),
            "{backend:?}: discarded"
        );
        let (_, body) = t
            .request(
                Method::GET,
                "/api/ucms/events/dead-letters",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(body["dead_letters"], json!([]));

        // Both actions are audited.
        let entries = t.site.services.identity.audit_log(100, None).await.unwrap();
        let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
        assert!(actions.contains(&"events.replay"), "{actions:?}");
        assert!(actions.contains(&"events.discard"), "{actions:?}");
        // The gauges follow the outbox.
        eventually(10, || async {
            let metrics = t.site.services.metrics.render();
            (metrics.contains(r#"ucms_event_dead_letters_held{plugin="tally"} 0"#)
                && metrics.contains(r#"ucms_event_backlog{plugin="tally"} 0"#))
            .then_some(())
        })
        .await;
        t.close().await;
    }
}
