//! The outbox on SQLite and PostgreSQL, and event delivery between plugins end to end.

use http::{Method, StatusCode};
use serde_json::{Value, json};
use ucms::capabilities::events::outbox::{self, NewEvent};
use ucms::config::Config;
use ucms_test_components::{MAILER, MISBEHAVE, ORDERS};

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
        outbox
            .publish(&event("e2"), &["mailer".into()], 1000)
            .await
            .unwrap();

        let claimed = outbox.claim(1000, 5000, 10).await.unwrap();
        assert_eq!(claimed.len(), 3, "{backend:?}");
        assert_eq!(claimed[0].event.payload, br#"{"n":1}"#);
        assert!(
            outbox.claim(1000, 5000, 10).await.unwrap().is_empty(),
            "leased deliveries aren't claimed twice"
        );

        let e1_mailer = claimed
            .iter()
            .find(|d| d.event.id == "e1" && d.subscriber == "mailer")
            .unwrap();
        outbox
            .complete(e1_mailer.event_seq, "mailer")
            .await
            .unwrap();
        let e1_audit = claimed.iter().find(|d| d.subscriber == "audit").unwrap();
        outbox
            .fail(e1_audit.event_seq, "audit", "boom", Some(2000), 1500)
            .await
            .unwrap();
        let e2 = claimed.iter().find(|d| d.event.id == "e2").unwrap();
        outbox
            .fail(e2.event_seq, "mailer", "final failure", None, 1500)
            .await
            .unwrap();

        // The retry is due at 2000; the lease of nothing else has expired.
        assert!(outbox.claim(1999, 9000, 10).await.unwrap().is_empty());
        let retried = outbox.claim(2000, 9000, 10).await.unwrap();
        assert_eq!(retried.len(), 1);
        assert_eq!(
            (retried[0].subscriber.as_str(), retried[0].attempts),
            ("audit", 1)
        );
        // A lease that runs out (the node died) makes the delivery claimable again.
        let reclaimed = outbox.claim(9000, 12000, 10).await.unwrap();
        assert_eq!(reclaimed.len(), 1, "{backend:?}: at least once");

        let dead = outbox.dead_letters(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].event_id.as_str(), dead[0].attempts), ("e2", 1));
        assert_eq!(dead[0].last_error.as_deref(), Some("final failure"));
        assert_eq!(dead[0].payload, r#"{"n":1}"#);
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
