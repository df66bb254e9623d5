//! The document store on SQLite and PostgreSQL: every case runs on both.

mod support;

use serde_json::{Value, json};
use support::TestDb;
use ucms_documents::{
    AlsoInTx, DocError, Document, Documents, Filter, IndexSpec, Limits, Path, Query, Quota, Scope,
    Search, SearchSpec, Sort, WriteOp, WriteResult, reference,
};

on_both!(
    crud_and_revisions,
    invalid_requests,
    unique_indexes,
    index_declarations,
    batch_is_all_or_nothing,
    batch_also_commits_with_the_writes,
    quotas_refuse_and_count,
    cursor_pages_match_the_reference,
    cursor_mixed_directions_and_pseudo_paths,
    projection_and_total,
    full_text_search,
    search_declaration_changes,
    indexed_queries_use_the_index,
    dropped_collections_are_reloaded,
    concurrent_writers_conflict_cleanly,
    limits_of_a_plugin,
    bulk_inserts_name_the_failing_document,
    extreme_floats_read_back_found_by_the_host_fuzzer,
);

const Q: Quota = Quota::UNLIMITED;

fn p(s: &str) -> Path {
    Path::parse(s).unwrap()
}

fn scope(c: &str) -> Scope<'_> {
    Scope::new("plug", c)
}

async fn crud_and_revisions(t: &TestDb) {
    let d = &t.docs;
    let s = scope("posts");
    assert_eq!(d.get(s, "nope").await.unwrap(), None);
    let a = d
        .insert(s, &Q, Some("a"), json!({"title": "A", "n": 1}))
        .await
        .unwrap();
    assert_eq!((a.id.as_str(), a.revision), ("a", 1));
    assert_eq!(a.created_at_ms, a.updated_at_ms);
    let gen_id = d.insert(s, &Q, None, json!({"title": "B"})).await.unwrap();
    let uuid = uuid::Uuid::parse_str(&gen_id.id).expect("a generated id is a UUID");
    assert_eq!(uuid.get_version_num(), 7);

    let got = d.get(s, "a").await.unwrap().unwrap();
    assert_eq!(got, a);
    let many = d
        .get_many(s, &[gen_id.id.clone(), "zz".into(), "a".into(), "a".into()])
        .await
        .unwrap();
    assert_eq!(
        many.iter()
            .map(|d| d.as_ref().map(|d| d.id.as_str()))
            .collect::<Vec<_>>(),
        [Some(gen_id.id.as_str()), None, Some("a"), Some("a")]
    );

    let err = d.insert(s, &Q, Some("a"), json!({})).await.unwrap_err();
    assert!(
        matches!(&err, DocError::AlreadyExists { id, .. } if id == "a"),
        "{err}"
    );

    let r2 = d
        .replace(s, &Q, "a", json!({"title": "A2"}), Some(1))
        .await
        .unwrap();
    assert_eq!(r2.revision, 2);
    assert_eq!(r2.created_at_ms, a.created_at_ms);
    let err = d
        .replace(s, &Q, "a", json!({"title": "stale"}), Some(1))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DocError::Conflict {
                expected: 1,
                actual: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("revision 2, not 1"), "{err}");

    let r3 = d
        .patch(
            s,
            &Q,
            "a",
            json!({"title": null, "tags": ["x"], "meta": {"k": 1}}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r3.revision, 3);
    assert_eq!(r3.data, json!({"tags": ["x"], "meta": {"k": 1}}));
    let r4 = d
        .patch(s, &Q, "a", json!({"meta": {"k": null, "j": true}}), Some(3))
        .await
        .unwrap();
    assert_eq!(r4.data, json!({"tags": ["x"], "meta": {"j": true}}));
    assert_eq!(d.get(s, "a").await.unwrap().unwrap(), r4);

    let err = d
        .replace(s, &Q, "missing", json!({}), None)
        .await
        .unwrap_err();
    assert!(matches!(err, DocError::NotFound { .. }), "{err}");
    let err = d
        .patch(scope("no-such-collection"), &Q, "x", json!({}), None)
        .await
        .unwrap_err();
    assert!(matches!(err, DocError::NotFound { .. }), "{err}");

    let err = d.delete(s, "a", Some(2)).await.unwrap_err();
    assert!(
        matches!(
            err,
            DocError::Conflict {
                expected: 2,
                actual: 4,
                ..
            }
        ),
        "{err}"
    );
    assert!(d.delete(s, "a", Some(4)).await.unwrap());
    assert!(!d.delete(s, "a", None).await.unwrap());
    assert!(!d.delete(scope("never"), "a", None).await.unwrap());
    assert_eq!(d.get(s, "a").await.unwrap(), None);
    assert_eq!(d.count(s, None).await.unwrap(), 1);
    assert_eq!(d.list_collections("plug").await.unwrap(), ["posts"]);
}

async fn invalid_requests(t: &TestDb) {
    let limits = Limits {
        max_document_bytes: 100,
        ..Limits::default()
    };
    let d = Documents::new(t.db.clone(), limits);
    let s = scope("c");
    let invalid = |r: Result<Document, DocError>| match r {
        Err(DocError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    };
    let m = invalid(d.insert(s, &Q, None, json!([1])).await);
    assert!(m.contains("JSON object, not an array"), "{m}");
    let m = invalid(d.insert(s, &Q, None, json!({"_id": 1})).await);
    assert!(m.contains("`_id` is reserved"), "{m}");
    let m = invalid(d.insert(s, &Q, None, json!({"s": "x".repeat(200)})).await);
    assert!(m.contains("above the limit of 100 bytes"), "{m}");
    let m = invalid(d.insert(s, &Q, None, json!({"s": "a\u{0}b"})).await);
    assert!(m.contains("NUL"), "{m}");
    let m = invalid(d.insert(s, &Q, Some(""), json!({})).await);
    assert!(m.contains("invalid document id"), "{m}");
    let m = invalid(
        d.insert(Scope::new("plug", "bad name"), &Q, None, json!({}))
            .await,
    );
    assert!(m.contains("invalid collection name"), "{m}");
    let m = invalid(d.patch(s, &Q, "x", json!([1]), None).await);
    assert!(m.contains("merge patch is a JSON object"), "{m}");
    let m = invalid(d.replace(s, &Q, "x", json!({}), Some(0)).await);
    assert!(m.contains("at least 1"), "{m}");

    let query_err = |q: Query| {
        let d = d.clone();
        async move {
            match d.query(s, &q).await {
                Err(DocError::Invalid(m)) => m,
                other => panic!("expected Invalid, got {other:?}"),
            }
        }
    };
    let m = query_err(Query {
        filter: Some(Filter::Eq(p("a"), json!([1]))),
        limit: 1,
        ..Query::default()
    })
    .await;
    assert!(m.contains("not an array"), "{m}");
    let m = query_err(Query {
        filter: Some(Filter::Lt(p("a"), json!(true))),
        limit: 1,
        ..Query::default()
    })
    .await;
    assert!(m.contains("number or a string"), "{m}");
    let m = query_err(Query {
        limit: 5000,
        ..Query::default()
    })
    .await;
    assert!(m.contains("largest page"), "{m}");
    let m = query_err(Query {
        filter: Some(Filter::In(p("a"), vec![json!(1); 500])),
        limit: 1,
        ..Query::default()
    })
    .await;
    assert!(m.contains("more than 200 nodes"), "{m}");
    let m = query_err(Query {
        limit: 1,
        cursor: Some("garbage".into()),
        ..Query::default()
    })
    .await;
    assert!(m.contains("cursor is malformed"), "{m}");
    let m = query_err(Query {
        limit: 1,
        fields: Some(vec![p("a.0")]),
        ..Query::default()
    })
    .await;
    assert!(m.contains("array index"), "{m}");
    let m = Path::parse("a..b").unwrap_err().to_string();
    assert!(
        m.contains("empty segment") && m.contains("author.name"),
        "{m}"
    );
}

async fn unique_indexes(t: &TestDb) {
    let d = &t.docs;
    let s = scope("users");
    let email = IndexSpec {
        name: "by-email".into(),
        fields: vec![p("email")],
        unique: true,
    };
    d.ensure_index(s, &email).await.unwrap();
    d.ensure_index(s, &email).await.unwrap();
    d.insert(s, &Q, Some("u1"), json!({"email": "a@x"}))
        .await
        .unwrap();
    let err = d
        .insert(s, &Q, Some("u2"), json!({"email": "a@x"}))
        .await
        .unwrap_err();
    match &err {
        DocError::Unique { index, fields, .. } => {
            assert_eq!(index, "by-email");
            assert_eq!(fields, "email");
        }
        other => panic!("expected Unique, got {other:?}"),
    }
    assert!(err.to_string().contains("unique index `by-email`"), "{err}");
    // Only scalars are constrained: missing, null, arrays and objects may repeat.
    for (id, data) in [
        ("m1", json!({})),
        ("m2", json!({})),
        ("n1", json!({"email": null})),
        ("n2", json!({"email": null})),
        ("a1", json!({"email": ["a@x"]})),
        ("a2", json!({"email": ["a@x"]})),
    ] {
        d.insert(s, &Q, Some(id), data).await.unwrap();
    }
    // Typed: the number 1 and the string "1" differ; 1 and 1.0 do not.
    d.insert(s, &Q, Some("t1"), json!({"email": 1}))
        .await
        .unwrap();
    d.insert(s, &Q, Some("t2"), json!({"email": "1"}))
        .await
        .unwrap();
    let err = d
        .insert(s, &Q, Some("t3"), json!({"email": 1.0}))
        .await
        .unwrap_err();
    assert!(matches!(err, DocError::Unique { .. }), "{err}");
    // An update into a taken value fails too, and changes nothing.
    let err = d
        .replace(s, &Q, "m1", json!({"email": "a@x"}), None)
        .await
        .unwrap_err();
    assert!(matches!(err, DocError::Unique { .. }), "{err}");
    assert_eq!(d.get(s, "m1").await.unwrap().unwrap().revision, 1);

    // A unique index over existing duplicates cannot be created.
    let dup = IndexSpec {
        name: "by-missing".into(),
        fields: vec![p("x")],
        unique: true,
    };
    d.insert(s, &Q, Some("x1"), json!({"x": "same"}))
        .await
        .unwrap();
    d.insert(s, &Q, Some("x2"), json!({"x": "same"}))
        .await
        .unwrap();
    let err = d.ensure_index(s, &dup).await.unwrap_err();
    assert!(
        matches!(&err, DocError::Invalid(m) if m.contains("already share values")),
        "{err}"
    );
    assert_eq!(d.list_indexes(s).await.unwrap(), vec![email.clone()]);

    // Compound unique index.
    let pair = IndexSpec {
        name: "pair".into(),
        fields: vec![p("a"), p("b")],
        unique: true,
    };
    d.ensure_index(s, &pair).await.unwrap();
    d.insert(s, &Q, Some("p1"), json!({"a": 1, "b": "x"}))
        .await
        .unwrap();
    d.insert(s, &Q, Some("p2"), json!({"a": 1, "b": "y"}))
        .await
        .unwrap();
    let err = d
        .insert(s, &Q, Some("p3"), json!({"a": 1, "b": "x"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DocError::Unique { index, .. } if index == "pair"),
        "{err}"
    );

    assert!(d.drop_index(s, "by-email").await.unwrap());
    assert!(!d.drop_index(s, "by-email").await.unwrap());
    d.insert(s, &Q, Some("u9"), json!({"email": "a@x"}))
        .await
        .unwrap();
}

async fn index_declarations(t: &TestDb) {
    let d = &t.docs;
    let s = scope("things");
    let spec = IndexSpec {
        name: "by-a".into(),
        fields: vec![p("a"), p("_created")],
        unique: false,
    };
    d.ensure_index(s, &spec).await.unwrap();
    let other = IndexSpec {
        fields: vec![p("b")],
        ..spec.clone()
    };
    let err = d.ensure_index(s, &other).await.unwrap_err();
    assert!(
        matches!(&err, DocError::Invalid(m) if m.contains("already exists") && m.contains("(a, _created)")),
        "{err}"
    );
    // Another instance (another node) sees the declaration and agrees it is the same.
    let fresh = Documents::new(t.db.clone(), Limits::default());
    fresh.ensure_index(s, &spec).await.unwrap();
    assert!(fresh.ensure_index(s, &other).await.is_err());
    let twice = IndexSpec {
        name: "twice".into(),
        fields: vec![p("a"), p("a")],
        unique: false,
    };
    assert!(d.ensure_index(s, &twice).await.is_err());
    let bad = IndexSpec {
        name: "bad name!".into(),
        fields: vec![p("a")],
        unique: false,
    };
    assert!(d.ensure_index(s, &bad).await.is_err());
    assert_eq!(d.list_indexes(s).await.unwrap(), vec![spec]);
}

async fn batch_is_all_or_nothing(t: &TestDb) {
    let d = &t.docs;
    d.insert(scope("a"), &Q, Some("x"), json!({"v": 1}))
        .await
        .unwrap();
    let before = d.usage("plug").await.unwrap();
    let ops = vec![
        WriteOp::Insert {
            collection: "a".into(),
            id: Some("y".into()),
            data: json!({"v": 2}),
        },
        WriteOp::Insert {
            collection: "b".into(),
            id: Some("z".into()),
            data: json!({"v": 3}),
        },
        WriteOp::Patch {
            collection: "a".into(),
            id: "x".into(),
            patch: json!({"v": 10}),
            expected_revision: Some(7),
        },
        WriteOp::Delete {
            collection: "a".into(),
            id: "x".into(),
            expected_revision: None,
        },
    ];
    let err = d.batch("plug", &Q, &ops, None).await.unwrap_err();
    assert_eq!(err.batch_op(), Some(2), "{err}");
    assert!(
        matches!(
            err.root(),
            DocError::Conflict {
                expected: 7,
                actual: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("operation 2 of the batch failed"),
        "{err}"
    );
    assert_eq!(d.get(scope("a"), "y").await.unwrap(), None);
    assert_eq!(d.count(scope("b"), None).await.unwrap(), 0);
    assert_eq!(d.get(scope("a"), "x").await.unwrap().unwrap().revision, 1);
    assert_eq!(d.usage("plug").await.unwrap().documents, before.documents);

    // A duplicate id in the middle of a batch.
    let mut dup = ops[..2].to_vec();
    dup.push(WriteOp::Insert {
        collection: "a".into(),
        id: Some("y".into()),
        data: json!({}),
    });
    let err = d.batch("plug", &Q, &dup, None).await.unwrap_err();
    assert_eq!(err.batch_op(), Some(2));
    assert!(
        matches!(err.root(), DocError::AlreadyExists { .. }),
        "{err}"
    );
    assert_eq!(d.get(scope("a"), "y").await.unwrap(), None);

    // An invalid op is refused before anything runs.
    let mut bad = ops[..2].to_vec();
    bad.push(WriteOp::Insert {
        collection: "a".into(),
        id: None,
        data: json!("nope"),
    });
    let err = d.batch("plug", &Q, &bad, None).await.unwrap_err();
    assert_eq!(err.batch_op(), Some(2));

    // And the whole batch, when it is right.
    let ok = vec![
        ops[0].clone(),
        ops[1].clone(),
        WriteOp::Patch {
            collection: "a".into(),
            id: "x".into(),
            patch: json!({"w": true}),
            expected_revision: Some(1),
        },
        WriteOp::Replace {
            collection: "a".into(),
            id: "y".into(),
            data: json!({"v": 22}),
            expected_revision: Some(1),
        },
        WriteOp::Delete {
            collection: "b".into(),
            id: "z".into(),
            expected_revision: Some(1),
        },
        WriteOp::Delete {
            collection: "b".into(),
            id: "z".into(),
            expected_revision: None,
        },
    ];
    let results = d.batch("plug", &Q, &ok, None).await.unwrap();
    assert_eq!(results.len(), 6);
    assert!(
        matches!(&results[2], WriteResult::Written(doc) if doc.revision == 2 && doc.data == json!({"v": 1, "w": true}))
    );
    assert!(matches!(&results[3], WriteResult::Written(doc) if doc.revision == 2));
    assert_eq!(results[4], WriteResult::Deleted(true));
    assert_eq!(results[5], WriteResult::Deleted(false));
    assert_eq!(d.usage("plug").await.unwrap().documents, 2);

    let too_many = vec![ops[3].clone(); 1001];
    assert!(matches!(
        d.batch("plug", &Q, &too_many, None).await,
        Err(DocError::Invalid(_))
    ));
}

fn kv_insert(key: &'static str) -> AlsoInTx {
    Box::new(move |tx| {
        Box::pin(async move {
            ucms_db::on_tx!(tx, |conn| sqlx::query(
                "INSERT INTO kv (plugin, key, value, updated_at) VALUES ('plug', $1, $2, 0)"
            )
            .bind(key)
            .bind(b"v".to_vec())
            .execute(conn)
            .await
            .map(|_| ()))?;
            Ok(())
        })
    })
}

async fn kv_count(t: &TestDb) -> i64 {
    ucms_db::on_db!(&t.db, read, |pool| sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM kv"
    )
    .fetch_one(pool)
    .await
    .unwrap())
}

async fn batch_also_commits_with_the_writes(t: &TestDb) {
    let d = &t.docs;
    let insert = |id: &str| {
        vec![WriteOp::Insert {
            collection: "c".into(),
            id: Some(id.into()),
            data: json!({}),
        }]
    };
    d.batch("plug", &Q, &insert("one"), Some(kv_insert("k1")))
        .await
        .unwrap();
    assert_eq!(kv_count(t).await, 1);
    assert!(d.get(scope("c"), "one").await.unwrap().is_some());

    // The host's statement fails (duplicate key): the document is not written either.
    let err = d
        .batch("plug", &Q, &insert("two"), Some(kv_insert("k1")))
        .await
        .unwrap_err();
    assert!(matches!(err, DocError::Aborted(_)), "{err}");
    assert_eq!(d.get(scope("c"), "two").await.unwrap(), None);

    // A failing document write: the host's statement is not committed either.
    let err = d
        .batch("plug", &Q, &insert("one"), Some(kv_insert("k2")))
        .await
        .unwrap_err();
    assert_eq!(err.batch_op(), Some(0));
    assert_eq!(kv_count(t).await, 1);

    let failing: AlsoInTx = Box::new(|_| Box::pin(async { anyhow::bail!("outbox is full") }));
    let err = d
        .batch("plug", &Q, &insert("three"), Some(failing))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("outbox is full"), "{err}");
    assert_eq!(d.get(scope("c"), "three").await.unwrap(), None);
}

async fn quotas_refuse_and_count(t: &TestDb) {
    let d = &t.docs;
    let s = scope("q");
    let quota = Quota {
        max_documents: Some(3),
        max_bytes: Some(100),
    };
    let size = |v: &Value| serde_json::to_string(v).unwrap().len() as u64;
    let small = json!({"s": "x"});
    for id in ["1", "2", "3"] {
        d.insert(s, &quota, Some(id), small.clone()).await.unwrap();
    }
    let err = d
        .insert(s, &quota, Some("4"), small.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DocError::QuotaExceeded(m) if m.contains("may store 3 documents")),
        "{err}"
    );
    assert_eq!(d.get(s, "4").await.unwrap(), None);
    let usage = d.usage("plug").await.unwrap();
    assert_eq!(usage.documents, 3);
    assert_eq!(usage.bytes, 3 * size(&small));
    assert_eq!(usage.collections, 1);

    let big = json!({"s": "y".repeat(80)});
    let err = d
        .replace(s, &quota, "1", big.clone(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DocError::QuotaExceeded(m) if m.contains("bytes")),
        "{err}"
    );
    assert_eq!(d.get(s, "1").await.unwrap().unwrap().data, small);
    // Without the quota it fits; then, over a lowered quota, shrinking is still allowed.
    d.replace(s, &Q, "1", big.clone(), None).await.unwrap();
    d.patch(s, &quota, "2", json!({"t": "more"}), None)
        .await
        .unwrap_err();
    d.patch(s, &quota, "1", json!({"s": "z"}), None)
        .await
        .unwrap();
    let usage = d.usage("plug").await.unwrap();
    assert_eq!(usage.bytes, 3 * size(&small));
    assert!(d.delete(s, "3", None).await.unwrap());
    assert_eq!(d.usage("plug").await.unwrap().documents, 2);

    // A batch is checked as a whole: two inserts and a delete end at the quota.
    let ops = vec![
        WriteOp::Insert {
            collection: "q".into(),
            id: Some("5".into()),
            data: small.clone(),
        },
        WriteOp::Insert {
            collection: "q".into(),
            id: Some("6".into()),
            data: small.clone(),
        },
        WriteOp::Delete {
            collection: "q".into(),
            id: "2".into(),
            expected_revision: None,
        },
    ];
    d.batch("plug", &quota, &ops, None).await.unwrap();
    assert_eq!(d.usage("plug").await.unwrap().documents, 3);

    d.insert(scope("other"), &Q, None, small.clone())
        .await
        .unwrap();
    assert!(d.drop_collection(s).await.unwrap());
    assert!(!d.drop_collection(s).await.unwrap());
    let usage = d.usage("plug").await.unwrap();
    assert_eq!(
        (usage.documents, usage.bytes, usage.collections),
        (1, size(&small), 1)
    );
    d.drop_plugin("plug").await.unwrap();
    assert_eq!(d.usage("plug").await.unwrap(), Default::default());
    assert_eq!(d.count(scope("other"), None).await.unwrap(), 0);
    assert!(d.list_collections("plug").await.unwrap().is_empty());
    // The plugin starts afresh.
    d.insert(scope("other"), &quota, None, small).await.unwrap();
    assert_eq!(d.usage("plug").await.unwrap().documents, 1);
}

/// Documents with every kind of value at `v`, for order tests.
fn mixed_values() -> Vec<Value> {
    vec![
        json!(null),
        json!(true),
        json!(false),
        json!(-3),
        json!(2.5),
        json!(2),
        json!(10),
        json!("b"),
        json!("B"),
        json!("é"),
        json!(""),
        json!("a"),
        json!([1]),
        json!({"k": 1}),
        json!(-0.5),
    ]
}

async fn seed_mixed(d: &Documents, s: Scope<'_>) -> Vec<Document> {
    let mut data = Vec::new();
    for (i, v) in mixed_values().into_iter().enumerate() {
        for copy in 0..3 {
            let mut doc = json!({"v": v.clone(), "w": (i * 7 + copy) % 5, "copy": copy});
            if i % 4 == 0 {
                doc.as_object_mut().unwrap().remove("v");
            }
            data.push((Some(format!("d{i:02}-{copy}")), doc));
        }
    }
    d.insert_many(s, &Q, data).await.unwrap()
}

async fn walk(d: &Documents, s: Scope<'_>, q: &Query) -> Vec<String> {
    let mut q = q.clone();
    let mut ids = Vec::new();
    loop {
        let page = d.query(s, &q).await.unwrap();
        assert!(page.documents.len() <= q.limit as usize);
        ids.extend(page.documents.iter().map(|d| d.id.clone()));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return ids,
        }
    }
}

async fn cursor_pages_match_the_reference(t: &TestDb) {
    let d = &t.docs;
    let s = scope("mixed");
    let all = seed_mixed(d, s).await;
    for sort in [
        vec![Sort::asc(p("v"))],
        vec![Sort::desc(p("v"))],
        vec![Sort::asc(p("v")), Sort::asc(p("w"))],
        vec![Sort::desc(p("w")), Sort::desc(p("v"))],
        vec![],
    ] {
        let q = Query {
            sort: sort.clone(),
            limit: 4,
            ..Query::default()
        };
        let expected: Vec<String> = reference::run(
            &all,
            &Query {
                limit: 1000,
                ..q.clone()
            },
        )
        .into_iter()
        .map(|d| d.id)
        .collect();
        assert_eq!(
            walk(d, s, &q).await,
            expected,
            "{} sort {sort:?}",
            t.backend
        );
    }
    // With an index on the sort keys the pages are the same.
    d.ensure_index(
        s,
        &IndexSpec {
            name: "vw".into(),
            fields: vec![p("v"), p("w")],
            unique: false,
        },
    )
    .await
    .unwrap();
    let q = Query {
        sort: vec![Sort::asc(p("v")), Sort::asc(p("w"))],
        filter: Some(Filter::Ne(p("copy"), json!(1))),
        limit: 7,
        ..Query::default()
    };
    let expected: Vec<String> = reference::run(
        &all,
        &Query {
            limit: 1000,
            ..q.clone()
        },
    )
    .into_iter()
    .map(|d| d.id)
    .collect();
    assert_eq!(walk(d, s, &q).await, expected, "{}", t.backend);

    // A cursor only fits its own sort.
    let page = d.query(s, &q).await.unwrap();
    let other = Query {
        sort: vec![Sort::desc(p("v"))],
        cursor: page.next_cursor,
        limit: 3,
        ..Query::default()
    };
    let err = d.query(s, &other).await.unwrap_err();
    assert!(err.to_string().contains("different sort order"), "{err}");
}

async fn cursor_mixed_directions_and_pseudo_paths(t: &TestDb) {
    let d = &t.docs;
    let s = scope("mixed2");
    let all = seed_mixed(d, s).await;
    // Touch a few so _updated and _revision differ.
    for id in ["d03-1", "d07-2", "d11-0"] {
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        d.patch(s, &Q, id, json!({"touched": true}), None)
            .await
            .unwrap();
    }
    let all = {
        let ids: Vec<String> = all.iter().map(|d| d.id.clone()).collect();
        d.get_many(s, &ids)
            .await
            .unwrap()
            .into_iter()
            .map(Option::unwrap)
            .collect::<Vec<_>>()
    };
    for (sort, filter) in [
        (vec![Sort::asc(p("w")), Sort::desc(p("v"))], None),
        (vec![Sort::desc(p("_updated")), Sort::asc(p("_id"))], None),
        (
            vec![Sort::desc(p("_revision")), Sort::asc(p("v"))],
            Some(Filter::StartsWith(p("_id"), "d0".into())),
        ),
        (
            vec![Sort::asc(p("copy")), Sort::desc(p("_id"))],
            Some(Filter::Gte(p("_created"), json!(0))),
        ),
    ] {
        let q = Query {
            sort,
            filter,
            limit: 5,
            ..Query::default()
        };
        let expected: Vec<String> = reference::run(
            &all,
            &Query {
                limit: 1000,
                ..q.clone()
            },
        )
        .into_iter()
        .map(|d| d.id)
        .collect();
        assert!(!expected.is_empty());
        assert_eq!(walk(d, s, &q).await, expected, "{} {q:?}", t.backend);
    }
}

async fn projection_and_total(t: &TestDb) {
    let d = &t.docs;
    let s = scope("proj");
    for i in 0..30 {
        d.insert(
            s,
            &Q,
            Some(&format!("p{i:02}")),
            json!({"author": {"name": format!("n{i}"), "age": i}, "title": "t", "i": i}),
        )
        .await
        .unwrap();
    }
    let page = d
        .query(
            s,
            &Query {
                filter: Some(Filter::Gte(p("i"), json!(10))),
                sort: vec![Sort::asc(p("i"))],
                limit: 5,
                offset: 2,
                fields: Some(vec![p("author.name"), p("i")]),
                with_total: true,
                ..Query::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, Some(20));
    assert_eq!(page.documents.len(), 5);
    assert_eq!(page.documents[0].id, "p12");
    assert_eq!(
        page.documents[0].data,
        json!({"author": {"name": "n12"}, "i": 12})
    );
    assert!(page.next_cursor.is_some());
    let only_total = d
        .query(
            s,
            &Query {
                with_total: true,
                ..Query::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (only_total.documents.len(), only_total.total),
        (0, Some(30))
    );
    assert_eq!(only_total.next_cursor, None);
    assert_eq!(
        d.count(s, Some(&Filter::Lt(p("author.age"), json!(5))))
            .await
            .unwrap(),
        5
    );
    let empty = d
        .query(
            scope("nothing-here"),
            &Query {
                limit: 10,
                with_total: true,
                ..Query::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((empty.documents.len(), empty.total), (0, Some(0)));
}

async fn full_text_search(t: &TestDb) {
    let d = &t.docs;
    let s = scope("articles");
    d.ensure_search(
        s,
        &SearchSpec {
            fields: vec![p("title"), p("body")],
            language: "english".into(),
        },
    )
    .await
    .unwrap();
    let docs = [
        (
            "a1",
            json!({"title": "Running with dogs", "body": "A story about a park.", "lang": "en"}),
        ),
        (
            "a2",
            json!({"title": "Cats", "body": "The dog runs after the cat.", "lang": "en"}),
        ),
        (
            "a3",
            json!({"title": "Databases", "body": {"intro": "Indexes make queries fast", "tags": ["sqlite", "postgres"]}, "lang": "en"}),
        ),
        (
            "a4",
            json!({"title": "Gardening", "body": "Roses and tulips.", "lang": "nl"}),
        ),
        ("a5", json!({"title": 42, "body": null})),
    ];
    for (id, data) in &docs {
        d.insert(s, &Q, Some(id), data.clone()).await.unwrap();
    }
    let search = |text: &str| Search {
        text: text.into(),
        limit: 10,
        with_total: true,
        ..Search::default()
    };
    let ids = |page: &ucms_documents::SearchPage| {
        page.hits
            .iter()
            .map(|(d, _)| d.id.clone())
            .collect::<Vec<_>>()
    };
    // Stemming: "run" finds "Running" and "runs"; the title outranks the body.
    let page = d.search(s, &search("run")).await.unwrap();
    assert_eq!(ids(&page), ["a1", "a2"], "{}", t.backend);
    assert_eq!(page.total, Some(2));
    assert!(page.hits[0].1 > page.hits[1].1);
    // Nested strings and arrays are searchable.
    assert_eq!(
        ids(&d.search(s, &search("postgres")).await.unwrap()),
        ["a3"]
    );
    // Phrases, exclusion, or.
    assert_eq!(
        ids(&d.search(s, &search("\"make queries\"")).await.unwrap()),
        ["a3"]
    );
    assert_eq!(
        ids(&d.search(s, &search("\"queries make\"")).await.unwrap()),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&d.search(s, &search("dog -cat")).await.unwrap()),
        ["a1"]
    );
    let mut either = ids(&d.search(s, &search("roses or sqlite")).await.unwrap());
    either.sort();
    assert_eq!(either, ["a3", "a4"]);
    // A filter narrows the hits.
    let filtered = Search {
        filter: Some(Filter::Eq(p("title"), json!("Cats"))),
        fields: Some(vec![p("title")]),
        ..search("dog")
    };
    let page = d.search(s, &filtered).await.unwrap();
    assert_eq!(ids(&page), ["a2"]);
    assert_eq!(page.hits[0].0.data, json!({"title": "Cats"}));
    // Search syntax of the engines is inert: this is just words.
    for text in [
        "title:dog",
        "dog*",
        "NEAR(dog cat)",
        "\"unbalanced",
        "a OR",
        "-",
        "'; DROP TABLE x; --",
        "dog & !cat | (x",
        "^dog",
    ] {
        d.search(s, &search(text))
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    assert!(d.search(s, &search("   ")).await.unwrap().hits.is_empty());
    assert!(d.search(s, &search("-dog")).await.unwrap().hits.is_empty());
    // Writes keep the index in step.
    d.replace(
        s,
        &Q,
        "a1",
        json!({"title": "Walking", "body": "no canines"}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(ids(&d.search(s, &search("run")).await.unwrap()), ["a2"]);
    assert_eq!(ids(&d.search(s, &search("walk")).await.unwrap()), ["a1"]);
    d.patch(s, &Q, "a4", json!({"body": "Running roses"}), None)
        .await
        .unwrap();
    let mut run = ids(&d.search(s, &search("run")).await.unwrap());
    run.sort();
    assert_eq!(run, ["a2", "a4"]);
    d.delete(s, "a2", None).await.unwrap();
    assert_eq!(ids(&d.search(s, &search("run")).await.unwrap()), ["a4"]);
    // Paging.
    let page = d
        .search(
            s,
            &Search {
                offset: 1,
                limit: 1,
                ..search("roses or walking or postgres")
            },
        )
        .await
        .unwrap();
    assert_eq!((page.hits.len(), page.total), (1, Some(3)));

    // Multi-row inserts keep it in step too.
    let bulk = vec![
        (Some("b1".to_owned()), json!({"title": "Bulk zebra"})),
        (Some("b2".to_owned()), json!({"body": ["zebras", "lions"]})),
    ];
    d.insert_many(s, &Q, bulk).await.unwrap();
    let mut zebra = ids(&d.search(s, &search("zebra")).await.unwrap());
    zebra.sort();
    assert_eq!(zebra, ["b1", "b2"]);

    let err = d.search(scope("plain"), &search("x")).await.unwrap();
    assert!(err.hits.is_empty());
    d.insert(scope("plain"), &Q, None, json!({})).await.unwrap();
    let err = d.search(scope("plain"), &search("x")).await.unwrap_err();
    assert!(err.to_string().contains("has no full-text search"), "{err}");
}

async fn search_declaration_changes(t: &TestDb) {
    let d = &t.docs;
    let s = scope("multi");
    d.insert(
        s,
        &Q,
        Some("1"),
        json!({"title": "Les chevaux", "body": "le château"}),
    )
    .await
    .unwrap();
    d.insert(
        s,
        &Q,
        Some("2"),
        json!({"title": "Autre", "body": "chevaux"}),
    )
    .await
    .unwrap();
    let spec = SearchSpec {
        fields: vec![p("title")],
        language: "french".into(),
    };
    d.ensure_search(s, &spec).await.unwrap();
    d.ensure_search(s, &spec).await.unwrap();
    let search = |text: &str| Search {
        text: text.into(),
        limit: 10,
        ..Search::default()
    };
    let ids = |page: ucms_documents::SearchPage| {
        let mut ids: Vec<String> = page.hits.into_iter().map(|(d, _)| d.id).collect();
        ids.sort();
        ids
    };
    // Existing documents are indexed when search is declared.
    assert_eq!(ids(d.search(s, &search("chevaux")).await.unwrap()), ["1"]);
    // Changing the fields re-indexes.
    d.ensure_search(
        s,
        &SearchSpec {
            fields: vec![p("title"), p("body")],
            language: "french".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        ids(d.search(s, &search("chevaux")).await.unwrap()),
        ["1", "2"]
    );
    assert_eq!(ids(d.search(s, &search("château")).await.unwrap()), ["1"]);
    let err = d
        .ensure_search(
            s,
            &SearchSpec {
                fields: vec![p("title")],
                language: "klingon".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown search language"), "{err}");
    assert!(d.drop_search(s).await.unwrap());
    assert!(!d.drop_search(s).await.unwrap());
    assert!(d.search(s, &search("chevaux")).await.is_err());
    // Writes still work without search.
    d.insert(s, &Q, Some("3"), json!({"title": "x"}))
        .await
        .unwrap();
}

async fn indexed_queries_use_the_index(t: &TestDb) {
    let d = &t.docs;
    let s = scope("big");
    d.ensure_index(
        s,
        &IndexSpec {
            name: "status-date".into(),
            fields: vec![p("status"), p("date")],
            unique: false,
        },
    )
    .await
    .unwrap();
    d.ensure_index(
        s,
        &IndexSpec {
            name: "slug".into(),
            fields: vec![p("slug")],
            unique: true,
        },
    )
    .await
    .unwrap();
    let rows = (0..3000).map(|i| {
        let status = ["draft", "published", "archived"][i % 3];
        (
            None,
            json!({
                "status": status,
                "date": 1_700_000_000 + (i * 7919) % 100_000,
                "slug": format!("post-{i}"),
                "n": i,
            }),
        )
    });
    d.insert_many(s, &Q, rows).await.unwrap();
    if let ucms_db::Db::Postgres(pool) = &t.db {
        // Fresh statistics, as autovacuum would gather on a live site.
        for table in d_tables(pool).await {
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let q = Query {
        filter: Some(Filter::Eq(p("status"), json!("published"))),
        sort: vec![Sort::desc(p("date"))],
        limit: 25,
        ..Query::default()
    };
    let plan = d.explain(s, &q).await.unwrap();
    let index = "_i1";
    match t.backend {
        "sqlite" => {
            assert!(
                plan.contains("USING INDEX") && plan.contains(index),
                "{plan}"
            );
            assert!(
                !plan.contains("TEMP B-TREE"),
                "the index should give the order:\n{plan}"
            );
        }
        _ => {
            assert!(
                plan.contains("Index Scan") && plan.contains(index),
                "{plan}"
            );
            assert!(
                !plan.contains("Sort"),
                "the index should give the order:\n{plan}"
            );
        }
    }
    let page = d.query(s, &q).await.unwrap();
    assert!(page.indexed);
    assert_eq!(page.documents.len(), 25);
    // The next page starts from the cursor with a range on the same index.
    let next = Query {
        cursor: page.next_cursor.clone(),
        ..q.clone()
    };
    let plan = d.explain(s, &next).await.unwrap();
    match t.backend {
        "sqlite" => assert!(
            plan.contains(index) && !plan.contains("TEMP B-TREE"),
            "{plan}"
        ),
        _ => assert!(plan.contains(index) && !plan.contains("Sort"), "{plan}"),
    }
    let page2 = d.query(s, &next).await.unwrap();
    assert!(
        page2
            .documents
            .iter()
            .all(|doc| doc.data["status"] == "published")
    );
    let last = &page.documents[24].data["date"];
    assert!(page2.documents[0].data["date"].as_i64() <= last.as_i64());

    // A range on the sorted path: the index still gives the order and the cursor's range. On
    // SQLite the rank the range pins is left out of ORDER BY; with it, a temporary B-tree sorted
    // every match.
    let ranged = Query {
        filter: Some(Filter::And(vec![
            Filter::Eq(p("status"), json!("published")),
            Filter::Lt(p("date"), json!(1_700_050_000)),
        ])),
        sort: vec![Sort::asc(p("date"))],
        limit: 25,
        ..Query::default()
    };
    let first = d.query(s, &ranged).await.unwrap();
    let next = Query {
        cursor: first.next_cursor.clone(),
        ..ranged.clone()
    };
    if t.backend == "sqlite" {
        for q in [&ranged, &next] {
            let plan = d.explain(s, q).await.unwrap();
            assert!(
                plan.contains(index) && !plan.contains("TEMP B-TREE"),
                "the index should give the order:\n{plan}"
            );
        }
    }
    let second = d.query(s, &next).await.unwrap();
    let dates: Vec<i64> = first
        .documents
        .iter()
        .chain(&second.documents)
        .map(|doc| doc.data["date"].as_i64().unwrap())
        .collect();
    assert_eq!(dates.len(), 50);
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");
    assert!(dates.iter().all(|d| *d < 1_700_050_000), "{dates:?}");

    // Equality on a unique index; a prefix range on it too, in its order.
    for (filter, sort) in [
        (Filter::Eq(p("slug"), json!("post-77")), vec![]),
        (
            Filter::StartsWith(p("slug"), "post-7".into()),
            vec![Sort::asc(p("slug"))],
        ),
    ] {
        let q = Query {
            filter: Some(filter),
            sort,
            limit: 10,
            ..Query::default()
        };
        let plan = d.explain(s, &q).await.unwrap();
        assert!(plan.contains("_i2") || plan.contains("_u2"), "{plan}");
        let page = d.query(s, &q).await.unwrap();
        assert!(page.indexed);
        assert!(!page.documents.is_empty());
    }
    // An unindexed query works, labelled as a scan.
    let scan = Query {
        filter: Some(Filter::Eq(p("n"), json!(5))),
        limit: 10,
        ..Query::default()
    };
    let page = d.query(s, &scan).await.unwrap();
    assert!(!page.indexed);
    assert_eq!(page.documents.len(), 1);
}

async fn d_tables(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar::<_, i64>("SELECT id FROM doc_collections")
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|id| format!("ucms_doc_{id}"))
        .collect()
}

async fn dropped_collections_are_reloaded(t: &TestDb) {
    // Two instances, as on two nodes: one drops what the other has cached.
    let a = &t.docs;
    let b = Documents::new(t.db.clone(), Limits::default());
    let s = scope("shared");
    a.insert(s, &Q, Some("1"), json!({"v": 1})).await.unwrap();
    assert!(a.get(s, "1").await.unwrap().is_some());
    b.drop_plugin("plug").await.unwrap();
    assert_eq!(a.get(s, "1").await.unwrap(), None);
    a.insert(s, &Q, Some("2"), json!({"v": 2})).await.unwrap();
    assert_eq!(b.count(s, None).await.unwrap(), 1);
    assert_eq!(a.count(s, None).await.unwrap(), 1);
    // And through a batch.
    b.drop_plugin("plug").await.unwrap();
    let op = WriteOp::Insert {
        collection: "shared".into(),
        id: Some("3".into()),
        data: json!({}),
    };
    a.batch("plug", &Q, &[op], None).await.unwrap();
    assert_eq!(b.count(s, None).await.unwrap(), 1);
}

async fn concurrent_writers_conflict_cleanly(t: &TestDb) {
    let d = &t.docs;
    let s = scope("counter");
    d.insert(s, &Q, Some("c"), json!({"n": 0})).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let s = Scope::new("plug", "counter");
            let mut conflicts = 0;
            for _ in 0..5 {
                loop {
                    let doc = d.get(s, "c").await.unwrap().unwrap();
                    let n = doc.data["n"].as_i64().unwrap();
                    match d
                        .replace(s, &Q, "c", json!({"n": n + 1}), Some(doc.revision))
                        .await
                    {
                        Ok(_) => break,
                        Err(DocError::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let doc = d.get(s, "c").await.unwrap().unwrap();
    assert_eq!(doc.data["n"], 40);
    assert_eq!(doc.revision, 41);
}

async fn limits_of_a_plugin(t: &TestDb) {
    let limits = Limits {
        max_collections_per_plugin: 2,
        max_indexes_per_collection: 1,
        ..Limits::default()
    };
    let d = Documents::new(t.db.clone(), limits);
    d.insert(scope("one"), &Q, None, json!({})).await.unwrap();
    d.insert(scope("two"), &Q, None, json!({})).await.unwrap();
    let err = d
        .insert(scope("three"), &Q, None, json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DocError::QuotaExceeded(m) if m.contains("2 collections")),
        "{err}"
    );
    let index = |name: &str| IndexSpec {
        name: name.into(),
        fields: vec![p("a")],
        unique: false,
    };
    d.ensure_index(scope("one"), &index("x")).await.unwrap();
    let err = d.ensure_index(scope("one"), &index("y")).await.unwrap_err();
    assert!(matches!(err, DocError::QuotaExceeded(_)), "{err}");
    // Another plugin is not affected.
    d.insert(Scope::new("other", "three"), &Q, None, json!({}))
        .await
        .unwrap();
}

async fn bulk_inserts_name_the_failing_document(t: &TestDb) {
    let d = &t.docs;
    let s = scope("bulk");
    d.ensure_index(
        s,
        &IndexSpec {
            name: "code".into(),
            fields: vec![p("code")],
            unique: true,
        },
    )
    .await
    .unwrap();
    d.insert(s, &Q, Some("taken"), json!({"code": "c-taken"}))
        .await
        .unwrap();
    let insert = |id: &str, code: &str| WriteOp::Insert {
        collection: "bulk".into(),
        id: Some(id.into()),
        data: json!({"code": code}),
    };
    let run = |ops: Vec<WriteOp>| async move { d.batch("plug", &Q, &ops, None).await };
    // An id that exists, an id twice, a unique value taken, a unique value twice: each names
    // its operation, and nothing is written.
    for (ops, op) in [
        (
            vec![
                insert("n1", "1"),
                insert("n2", "2"),
                insert("taken", "3"),
                insert("n4", "4"),
            ],
            2,
        ),
        (
            vec![insert("n1", "1"), insert("n2", "2"), insert("n1", "3")],
            2,
        ),
        (
            vec![
                insert("n1", "1"),
                insert("n2", "c-taken"),
                insert("n3", "3"),
            ],
            1,
        ),
        (
            vec![insert("n1", "1"), insert("n2", "2"), insert("n3", "2")],
            2,
        ),
    ] {
        let err = run(ops).await.unwrap_err();
        assert_eq!(err.batch_op(), Some(op), "{err}");
        assert!(
            matches!(
                err.root(),
                DocError::AlreadyExists { .. } | DocError::Unique { .. }
            ),
            "{err}"
        );
        assert_eq!(d.count(s, None).await.unwrap(), 1, "{err}");
    }
    // Large runs are split into several statements.
    let many: Vec<(Option<String>, Value)> = (0..1234)
        .map(|i| (None, json!({"code": format!("k{i}"), "i": i})))
        .collect();
    let written = d.insert_many(s, &Q, many).await.unwrap();
    assert_eq!(written.len(), 1234);
    assert_eq!(d.count(s, None).await.unwrap(), 1235);
    assert_eq!(d.usage("plug").await.unwrap().documents, 1235);
    let got = d.get(s, &written[777].id).await.unwrap().unwrap();
    assert_eq!(got, written[777]);
    // A run mixed with other operations.
    let ops = vec![
        insert("m1", "m1"),
        insert("m2", "m2"),
        WriteOp::Patch {
            collection: "bulk".into(),
            id: "m1".into(),
            patch: json!({"x": 1}),
            expected_revision: Some(1),
        },
        insert("m3", "m3"),
        insert("m4", "m4"),
    ];
    let results = run(ops).await.unwrap();
    assert!(matches!(&results[2], WriteResult::Written(doc) if doc.revision == 2));
    assert_eq!(d.count(s, None).await.unwrap(), 1239);
}

/// Found by the host fuzzer (`host/tests/it/fuzz_host.rs`): on PostgreSQL a document holding
/// `1.7976931348623157e308` (f64::MAX) was stored, but `jsonb` gives it back as a 309-digit
/// integer that serde_json's default, approximate float parsing rounded to infinity, so every
/// read of the document failed with `unavailable`.
async fn extreme_floats_read_back_found_by_the_host_fuzzer(t: &TestDb) {
    let d = &t.docs;
    let s = scope("floats");
    let data = json!({
        "max": f64::MAX,
        "min": f64::MIN,
        "tiny": 5e-324,
        "small": f64::MIN_POSITIVE,
        "big": 1e308,
        "nested": [{"x": 1.7976931348623157e308}],
    });
    let doc = d.insert(s, &Q, Some("f"), data.clone()).await.unwrap();
    let back = d
        .get(s, "f")
        .await
        .unwrap()
        .expect("the document reads back");
    assert_eq!(back.revision, doc.revision);
    for key in ["max", "min", "tiny", "small", "big"] {
        assert_eq!(
            back.data[key].as_f64(),
            data[key].as_f64(),
            "{}: {key}",
            t.backend
        );
    }
    let page = d
        .query(
            s,
            &Query {
                filter: Some(Filter::Gt(p("max"), json!(1e308))),
                limit: 10,
                ..Query::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.documents.len(), 1, "{}", t.backend);
}
