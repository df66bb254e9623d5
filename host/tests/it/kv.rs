//! The kv capability on SQLite and PostgreSQL: the backend contract, and through a plugin.

use std::sync::Arc;

use http::Method;
use ucms::capabilities::kv::{self, KvBackend, Start};
use ucms_test_components::HELLO;

use crate::support::{BACKENDS, Backend, TestDb, TestSite, test_config};

async fn backend_contract(kv: Arc<dyn KvBackend>, backend: Backend) {
    assert_eq!(kv.get("a", "k").await.unwrap(), None);
    kv.set("a", "k", b"one").await.unwrap();
    kv.set("b", "k", b"other plugin").await.unwrap();
    assert_eq!(
        kv.get("a", "k").await.unwrap().as_deref(),
        Some(&b"one"[..]),
        "{backend:?}"
    );
    assert_eq!(
        kv.get("b", "k").await.unwrap().as_deref(),
        Some(&b"other plugin"[..]),
        "scoped by plugin"
    );
    kv.set("a", "k", b"two").await.unwrap();
    assert_eq!(
        kv.get("a", "k").await.unwrap().as_deref(),
        Some(&b"two"[..])
    );

    // compare-and-swap, each branch
    assert!(
        !kv.compare_and_swap("a", "k", Some(b"one"), Some(b"x"))
            .await
            .unwrap(),
        "stale expectation"
    );
    assert!(
        kv.compare_and_swap("a", "k", Some(b"two"), Some(b"three"))
            .await
            .unwrap()
    );
    assert!(
        !kv.compare_and_swap("a", "k", None, Some(b"x"))
            .await
            .unwrap(),
        "exists already"
    );
    assert!(
        kv.compare_and_swap("a", "new", None, Some(b"x"))
            .await
            .unwrap()
    );
    assert!(
        kv.compare_and_swap("a", "new", Some(b"x"), None)
            .await
            .unwrap(),
        "delete on match"
    );
    assert!(
        kv.compare_and_swap("a", "new", None, None).await.unwrap(),
        "absent as expected"
    );
    assert!(!kv.compare_and_swap("a", "k", None, None).await.unwrap());

    assert!(kv.delete("a", "k").await.unwrap());
    assert!(!kv.delete("a", "k").await.unwrap());
    assert_eq!(
        kv.get("b", "k").await.unwrap().as_deref(),
        Some(&b"other plugin"[..]),
        "other plugin untouched"
    );

    // keys are listed in byte order, from a start, across plugins never
    for key in ["p:2", "p:1", "p:10", "q:1", "p:\u{e9}"] {
        kv.set("a", key, b"v").await.unwrap();
    }
    let keys = kv.keys("a", Start::AtOrAfter("p:"), 10).await.unwrap();
    assert_eq!(
        keys,
        ["p:1", "p:10", "p:2", "p:\u{e9}", "q:1"],
        "{backend:?}"
    );
    let keys = kv.keys("a", Start::After("p:10"), 2).await.unwrap();
    assert_eq!(keys, ["p:2", "p:\u{e9}"]);
    assert!(
        kv.keys("b", Start::AtOrAfter("p:"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_backend_contract_holds_on_every_database() {
    for backend in BACKENDS {
        let Some(t) = TestDb::open(backend).await else {
            continue;
        };
        backend_contract(kv::for_db(&t.db), backend).await;
        t.close().await;
    }
}

#[tokio::test]
async fn racing_compare_and_swaps_let_exactly_one_win() {
    for backend in BACKENDS {
        let Some(t) = TestDb::open(backend).await else {
            continue;
        };
        let kv = kv::for_db(&t.db);
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let kv = kv.clone();
                tokio::spawn(async move {
                    kv.compare_and_swap("p", "lock", None, Some(format!("{i}").as_bytes()))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut wins = 0;
        for task in tasks {
            wins += usize::from(task.await.unwrap());
        }
        assert_eq!(wins, 1, "{backend:?}");
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_through_a_plugin_lose_nothing() {
    for backend in BACKENDS {
        let Some(t) = TestSite::open(backend, test_config()).await else {
            continue;
        };
        t.install(HELLO).await;
        let token = t.admin_token().await;
        let addr = t.serve().await;
        let client = reqwest::Client::new();
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let (client, token) = (client.clone(), token.clone());
                tokio::spawn(async move {
                    let r = client
                        .post(format!("http://{addr}/api/hello/counter"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.json::<serde_json::Value>().await.unwrap()["value"]
                        .as_i64()
                        .unwrap()
                })
            })
            .collect();
        let mut values = Vec::new();
        for task in tasks {
            values.push(task.await.unwrap());
        }
        values.sort_unstable();
        assert_eq!(
            values,
            (1..=40).collect::<Vec<i64>>(),
            "{backend:?}: each increment saw a distinct value"
        );
        let (_, body) = t
            .request(Method::POST, "/api/hello/counter", Some(&token), None)
            .await;
        assert_eq!(body["value"], 41);
        t.close().await;
    }
}
