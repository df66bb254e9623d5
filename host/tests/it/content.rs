//! The content plugin (`plugins/content`) end to end: the compiled component run by the real
//! host, every request through the real router, on SQLite and PostgreSQL.

use http::{Method, StatusCode};
use serde_json::{Value, json};
use ucms_test_components::CONTENT;

use crate::support::{BACKENDS, TestSite, code, test_config};

struct Api<'a> {
    t: &'a TestSite,
    token: Option<String>,
}

impl Api<'_> {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.t
            .request(method, uri, self.token.as_deref(), body)
            .await
    }
    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None).await
    }
    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, uri, Some(body)).await
    }
    async fn put(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, uri, Some(body)).await
    }
    /// Creates an entry and returns its id, asserting success.
    async fn create(&self, ty: &str, fields: Value) -> String {
        let (status, body) = self
            .post(&format!("/api/content/{ty}"), json!({ "fields": fields }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "creating a {ty}: {body}");
        body["data"]["id"].as_str().unwrap().to_string()
    }
    async fn publish(&self, ty: &str, id: &str) {
        self.publish_locale(ty, id, "").await;
    }
    async fn publish_locale(&self, ty: &str, id: &str, locale: &str) {
        let (status, body) = self
            .post(
                &format!("/api/content/{ty}/{id}/publish?locale={locale}"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "publishing: {body}");
    }
}

async fn site(backend: crate::support::Backend) -> Option<(TestSite, String)> {
    let t = TestSite::open(backend, test_config()).await?;
    t.install(CONTENT).await;
    let admin = t.admin_token().await;
    Some((t, admin))
}

fn author_type() -> Value {
    json!({
        "name": "author",
        "display-name": "Author",
        "fields": [
            {"name": "name", "type": "short-text", "required": true},
            {"name": "slug", "type": "slug", "from": "name", "unique": true},
            {"name": "email", "type": "email", "private": true},
        ]
    })
}

/// A type with every field type.
fn article_type() -> Value {
    json!({
        "name": "article",
        "display-name": "Article",
        "locales": ["en", "fr"],
        "default-locale": "en",
        "search": ["title", "body"],
        "indexes": [["category", "price"]],
        "fields": [
            {"name": "title", "type": "short-text", "required": true, "localized": true, "max-length": 80},
            {"name": "slug", "type": "slug", "from": "title", "unique": true},
            {"name": "summary", "type": "long-text", "localized": true, "min-length": 3},
            {"name": "body", "type": "rich-text", "format": "markdown", "localized": true},
            {"name": "blocks-body", "type": "rich-text", "format": "blocks"},
            {"name": "views", "type": "integer", "min": 0, "default": 0},
            {"name": "price", "type": "decimal", "min": 0, "max": 1000},
            {"name": "featured", "type": "boolean", "default": false},
            {"name": "day", "type": "date"},
            {"name": "at", "type": "datetime"},
            {"name": "category", "type": "enumeration", "values": ["news", "guide", "review"]},
            {"name": "contact", "type": "email"},
            {"name": "link", "type": "url"},
            {"name": "code", "type": "short-text", "pattern": "^[A-Z]{2}-\\d{3}$"},
            {"name": "meta", "type": "json"},
            {"name": "cover", "type": "media", "allowed-types": ["image/"]},
            {"name": "author", "type": "relation", "target": "author", "cardinality": "one-to-one", "on-delete": "restrict"},
            {"name": "related", "type": "relation", "target": "article", "cardinality": "many-to-many", "on-delete": "set-null"},
            {"name": "seo", "type": "component", "fields": [
                {"name": "title", "type": "short-text", "max-length": 60},
                {"name": "description", "type": "long-text"}
            ]},
            {"name": "links", "type": "component", "repeatable": true, "max": 3, "fields": [
                {"name": "label", "type": "short-text", "required": true},
                {"name": "href", "type": "url", "required": true}
            ]},
            {"name": "sections", "type": "dynamic-zone", "blocks": {
                "quote": [{"name": "text", "type": "long-text", "required": true}],
                "image": [{"name": "file", "type": "media"}]
            }}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_entries_drafts_publishing_and_revisions() {
    for backend in BACKENDS {
        let Some((t, admin)) = site(backend).await else {
            continue;
        };
        let api = Api {
            t: &t,
            token: Some(admin.clone()),
        };

        // A bad type: every problem named by its key.
        let (status, body) = api
            .post(
                "/api/content/types",
                json!({"name": "types", "fields": [
                    {"name": "id", "type": "short-text"},
                    {"name": "kind", "type": "enumeration"},
                    {"name": "rel", "type": "relation", "target": "nowhere", "cardinality": "one-to-one"},
                    {"name": "code", "type": "short-text", "pattern": "(a|b)"}
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(code(&body), "validation_failed");
        let fields = &body["error"]["fields"];
        assert!(
            fields["name"].as_str().unwrap().contains("reserved"),
            "{body}"
        );
        assert!(
            fields["id"].as_str().unwrap().contains("reserved"),
            "{body}"
        );
        assert!(
            fields["kind"].as_str().unwrap().contains("values"),
            "{body}"
        );
        assert!(
            fields["rel"].as_str().unwrap().contains("nowhere"),
            "{body}"
        );
        assert!(
            fields["code"].as_str().unwrap().contains("pattern"),
            "{body}"
        );

        let (status, body) = api.post("/api/content/types", author_type()).await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {body}");
        let (status, body) = api.post("/api/content/types", article_type()).await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {body}");
        let (status, body) = api.post("/api/content/types", author_type()).await;
        assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "type_exists"));
        let (status, body) = api.get("/api/content/types").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["data"].as_array().unwrap().len(), 2, "{body}");
        let (_, body) = api.get("/api/content/types/article").await;
        assert_eq!(body["fields"].as_array().unwrap().len(), 21, "{body}");

        // Validation: each failure names the field.
        let (status, body) = api
            .post(
                "/api/content/article",
                json!({"fields": {
                    "summary": "ab", "views": -1, "price": "cheap", "featured": "yes",
                    "day": "2026-02-30", "at": "yesterday", "category": "gossip",
                    "contact": "nobody", "link": "ftp://x", "code": "ab-12",
                    "cover": {"key": "u/1", "content-type": "text/plain"},
                    "author": "missing-author", "blocks-body": [{"no-type": 1}],
                    "seo": {"title": "x".repeat(61)},
                    "links": [{"label": "a"}],
                    "sections": [{"__block": "video"}, {"__block": "quote"}],
                    "unknown": 1
                }}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let f = &body["error"]["fields"];
        for key in [
            "title",
            "summary",
            "views",
            "price",
            "featured",
            "day",
            "at",
            "category",
            "contact",
            "link",
            "code",
            "cover",
            "author",
            "blocks-body",
            "seo.title",
            "links.0.href",
            "sections.0",
            "sections.1.text",
            "unknown",
        ] {
            assert!(
                f[key].is_string(),
                "{backend:?}: no error for '{key}': {body}"
            );
        }
        assert_eq!(f["title"], "is required");
        assert_eq!(f["views"], "must be at least 0");

        // Entries: a draft with defaults and a slug derived from the title.
        let ada = api
            .create(
                "author",
                json!({"name": "Ada Lovelace", "email": "ada@example.com"}),
            )
            .await;
        let (status, body) = api
            .post(
                "/api/content/article",
                json!({"fields": {
                    "title": "Hello World", "summary": "A first post", "body": "# Hi",
                    "blocks-body": [{"type": "paragraph", "text": "hi"}],
                    "price": 9.5, "day": "2026-12-01", "at": "2026-12-01T10:00:00+01:00",
                    "category": "news", "contact": "me@example.com", "link": "https://example.com/x",
                    "code": "AB-123", "meta": {"any": ["thing"]},
                    "cover": {"key": "uploads/1", "content-type": "image/png"},
                    "author": ada, "seo": {"title": "Hello"},
                    "links": [{"label": "Home", "href": "https://example.com"}],
                    "sections": [{"__block": "quote", "text": "To be"}, {"__block": "image", "file": {"key": "k"}}]
                }}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {body}");
        let entry = &body["data"];
        let id = entry["id"].as_str().unwrap().to_string();
        assert_eq!(entry["status"], "draft");
        assert_eq!(entry["locale"], "en");
        assert_eq!(entry["fields"]["slug"], "hello-world");
        assert_eq!(entry["fields"]["views"], 0);
        assert_eq!(entry["fields"]["featured"], false);
        assert_eq!(
            entry["fields"]["at"], "2026-12-01T09:00:00.000Z",
            "datetimes are normalized"
        );
        assert!(entry["published-at"].is_null());

        // The unique slug: another entry with the same title is refused, naming the field.
        let (status, body) = api
            .post(
                "/api/content/article",
                json!({"fields": {"title": "Hello World"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{backend:?}: {body}");
        assert_eq!(code(&body), "unique_violation");
        assert!(body["error"]["fields"]["slug"].is_string(), "{body}");

        // Not published: delivery doesn't show it; the draft view does, by id and by slug.
        let (status, body) = api.get("/api/content/article").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["meta"]["total"], 0, "{body}");
        let (status, _) = api.get(&format!("/api/content/article/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = api
            .get("/api/content/article/hello-world?status=draft")
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["id"], id);

        // Publish: now delivered; editing makes a draft beside the published version.
        api.publish("article", &id).await;
        let (_, body) = api.get("/api/content/article/hello-world").await;
        assert_eq!(body["data"]["status"], "published", "{body}");
        assert!(body["data"]["published-at"].is_string());
        let mut changed = body["data"]["fields"].clone();
        changed["title"] = json!("Hello Again");
        changed["slug"] = json!("hello-world");
        changed["views"] = json!(5);
        let (status, body) = api
            .put(
                &format!("/api/content/article/{id}"),
                json!({"fields": changed}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
        assert_eq!(body["data"]["status"], "changed");
        let (_, body) = api.get(&format!("/api/content/article/{id}")).await;
        assert_eq!(
            body["data"]["fields"]["title"], "Hello World",
            "delivery keeps the published version"
        );
        let (_, body) = api
            .get(&format!("/api/content/article/{id}?status=draft"))
            .await;
        assert_eq!(body["data"]["fields"]["title"], "Hello Again");
        api.publish("article", &id).await;
        let (_, body) = api.get(&format!("/api/content/article/{id}")).await;
        assert_eq!(body["data"]["fields"]["title"], "Hello Again");

        // Revisions: create, publish, update, publish — with author, time and a field diff.
        let (status, body) = api
            .get(&format!("/api/content/article/{id}/revisions"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let actions: Vec<&str> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            ["publish", "update", "publish", "create"],
            "{body}"
        );
        assert!(body["data"][0]["author"].is_string());
        let (status, body) = api
            .get(&format!("/api/content/article/{id}/revisions/3"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["diff"]["title"],
            json!({"before": "Hello World", "after": "Hello Again"}),
            "{body}"
        );
        assert_eq!(body["diff"]["views"], json!({"before": 0, "after": 5}));
        assert!(
            body["diff"].get("price").is_none(),
            "unchanged fields are not in the diff: {body}"
        );
        let (status, body) = api
            .get(&format!("/api/content/article/{id}/revisions/99"))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "revision_not_found")
        );

        // Restore revision 1: its fields become the draft, as a new revision.
        let (status, body) = api
            .post(
                &format!("/api/content/article/{id}/revisions/1/restore"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["fields"]["title"], "Hello World");
        assert_eq!(body["data"]["status"], "changed");
        let (_, body) = api
            .get(&format!("/api/content/article/{id}/revisions"))
            .await;
        assert_eq!(body["data"][0]["action"], "restore");

        // Unpublish: gone from delivery, still a draft.
        let (status, body) = api
            .post(&format!("/api/content/article/{id}/unpublish"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["status"], "draft");
        let (status, _) = api.get(&format!("/api/content/article/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Relations on delete: restrict refuses while the article points at the author.
        let (status, body) = api
            .call(Method::DELETE, &format!("/api/content/author/{ada}"), None)
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "relation_restricted"),
            "{body}"
        );
        assert_eq!(body["error"]["entries"], json!([id]));
        // set-null: deleting a related article removes it from `related`.
        let other = api.create("article", json!({"title": "Other"})).await;
        let mut fields = api
            .get(&format!("/api/content/article/{id}?status=draft"))
            .await
            .1["data"]["fields"]
            .clone();
        fields["related"] = json!([other]);
        let (status, body) = api
            .put(
                &format!("/api/content/article/{id}"),
                json!({"fields": fields}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = api
            .call(
                Method::DELETE,
                &format!("/api/content/article/{other}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, body) = api
            .get(&format!("/api/content/article/{id}?status=draft"))
            .await;
        assert_eq!(body["data"]["fields"]["related"], json!([]), "{body}");
        let (status, _) = api
            .call(Method::DELETE, &format!("/api/content/article/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = api
            .call(Method::DELETE, &format!("/api/content/author/{ada}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        // Deleting a type another relates to is refused; unknown types are 404.
        let (status, body) = api
            .call(Method::DELETE, "/api/content/types/author", None)
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "relation_restricted")
        );
        let (status, body) = api.get("/api/content/nothing").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "type_not_found")
        );
        t.close().await;
    }
}

/// The ids of a list response's entries, by a field.
fn titles(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|e| e["fields"]["title"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Lets anonymous callers read content (the public role).
async fn public_read(api: &Api<'_>, grants: &[&str]) {
    let (status, body) = api
        .put(
            "/api/ucms/roles/public",
            json!({"description": "anonymous", "permissions": grants}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_filters_sorts_pages_populates_searches_and_localizes() {
    for backend in BACKENDS {
        let Some((t, admin)) = site(backend).await else {
            continue;
        };
        let api = Api {
            t: &t,
            token: Some(admin.clone()),
        };
        let (status, body) = api
            .post(
                "/api/content/types",
                json!({"name": "person", "fields": [
                    {"name": "name", "type": "short-text", "required": true},
                    {"name": "mentor", "type": "relation", "target": "person", "cardinality": "one-to-one", "on-delete": "set-null"}
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = api
            .post(
                "/api/content/types",
                json!({"name": "post", "locales": ["en", "fr"], "search": ["title", "body"], "fields": [
                    {"name": "title", "type": "short-text", "required": true, "localized": true},
                    {"name": "slug", "type": "slug", "from": "title", "unique": true},
                    {"name": "body", "type": "long-text", "localized": true},
                    {"name": "price", "type": "decimal"},
                    {"name": "rank", "type": "integer"},
                    {"name": "category", "type": "enumeration", "values": ["news", "guide"]},
                    {"name": "featured", "type": "boolean"},
                    {"name": "note", "type": "short-text"},
                    {"name": "author", "type": "relation", "target": "person", "cardinality": "one-to-one", "on-delete": "cascade"},
                    {"name": "reviewers", "type": "relation", "target": "person", "cardinality": "many-to-many", "on-delete": "set-null"}
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let grace = api.create("person", json!({"name": "Grace"})).await;
        let ada = api
            .create("person", json!({"name": "Ada", "mentor": grace}))
            .await;
        let alan = api.create("person", json!({"name": "Alan"})).await;
        for p in [&grace, &ada, &alan] {
            api.publish("person", p).await;
        }
        let people = [&ada, &grace, &alan];
        let mut ids = Vec::new();
        for i in 0..12u32 {
            let fields = json!({
                "title": format!("Post {i:02}"),
                "body": if i % 3 == 0 { "Running databases in production" } else { "Gardening and cooking" },
                "price": f64::from(i) * 1.5,
                "rank": i % 4,
                "category": if i % 2 == 0 { "news" } else { "guide" },
                "featured": i % 5 == 0,
                "note": if i < 4 { Value::String(format!("Note-{i}-END")) } else { Value::Null },
                "author": people[(i % 3) as usize],
                "reviewers": [people[((i + 1) % 3) as usize], people[((i + 2) % 3) as usize]],
            });
            let id = api.create("post", fields).await;
            if i < 10 {
                api.publish("post", &id).await;
            }
            ids.push(id);
        }

        let list = |q: &str| {
            let uri = format!("/api/content/post?{}", q.replace(' ', "%20"));
            let api = &api;
            async move {
                let (status, body) = api.get(&uri).await;
                assert_eq!(status, StatusCode::OK, "{backend:?} {uri}: {body}");
                body
            }
        };
        // Every operator (10 published posts: 00..09).
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("filters[title][$eq]=Post 03", vec!["Post 03"]),
            (
                "filters[rank][$ne]=0&filters[price][$lt]=3",
                vec!["Post 01"],
            ),
            (
                "filters[price][$lte]=3",
                vec!["Post 00", "Post 01", "Post 02"],
            ),
            ("filters[price][$gt]=12", vec!["Post 09"]),
            ("filters[price][$gte]=12", vec!["Post 08", "Post 09"]),
            (
                "filters[rank][$in][0]=3&filters[rank][$in][1]=2",
                vec!["Post 02", "Post 03", "Post 06", "Post 07"],
            ),
            ("filters[rank][$notIn]=0,1,2", vec!["Post 03", "Post 07"]),
            (
                "filters[title][$contains]=st 0&filters[price][$lt]=2",
                vec!["Post 00", "Post 01"],
            ),
            ("filters[note][$containsi]=note-2", vec!["Post 02"]),
            (
                "filters[title][$startsWith]=Post 0&filters[rank][$eq]=1",
                vec!["Post 01", "Post 05", "Post 09"],
            ),
            (
                "filters[note][$endsWith]=-END&filters[rank][$lt]=2",
                vec!["Post 00", "Post 01"],
            ),
            (
                "filters[note][$null]=true&filters[rank][$eq]=0",
                vec!["Post 04", "Post 08"],
            ),
            (
                "filters[note][$notNull]=true",
                vec!["Post 00", "Post 01", "Post 02", "Post 03"],
            ),
            (
                "filters[price][$between]=3,6",
                vec!["Post 02", "Post 03", "Post 04"],
            ),
            (
                "filters[$or][0][rank][$eq]=3&filters[$or][1][featured][$eq]=true",
                vec!["Post 00", "Post 03", "Post 05", "Post 07"],
            ),
            (
                "filters[$and][0][category][$eq]=news&filters[$and][1][price][$lt]=5",
                vec!["Post 00", "Post 02"],
            ),
            (
                "filters[$not][category][$eq]=news&filters[price][$lt]=6",
                vec!["Post 01", "Post 03"],
            ),
            (
                "filters[author][name][$eq]=Grace",
                vec!["Post 01", "Post 04", "Post 07"],
            ),
        ];
        for (q, want) in cases {
            let body = list(&format!("{q}&sort=title:asc")).await;
            assert_eq!(titles(&body), want, "{backend:?}: {q}");
        }
        let body = list(&format!(
            "filters[reviewers][$eq]={alan}&filters[rank][$eq]=0&sort=title"
        ))
        .await;
        assert_eq!(titles(&body), ["Post 00", "Post 04"], "{backend:?}");

        // Sort on two fields, field selection.
        let body = list("sort=rank:desc,price:asc&fields=title,rank&page-size=3").await;
        assert_eq!(titles(&body), ["Post 03", "Post 07", "Post 02"]);
        let fields = body["data"][0]["fields"].as_object().unwrap();
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["rank", "title"]);

        // Offset pages with totals; cursor pages walk everything once.
        let body = list("sort=title&page=2&page-size=4").await;
        assert_eq!(titles(&body), ["Post 04", "Post 05", "Post 06", "Post 07"]);
        assert_eq!(body["meta"]["total"], 10);
        assert_eq!(body["meta"]["page"], 2);
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let body = list(&format!("sort=price:desc&page-size=3&cursor={cursor}")).await;
            seen.extend(titles(&body));
            match body["meta"]["next-cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        assert_eq!(seen.len(), 10, "{seen:?}");
        assert_eq!(seen[0], "Post 09");

        // Populate one and two levels, batched.
        let body = list("filters[title][$eq]=Post 00&populate=author.mentor,reviewers").await;
        let e = &body["data"][0]["fields"];
        assert_eq!(e["author"]["fields"]["name"], "Ada", "{body}");
        assert_eq!(
            e["author"]["fields"]["mentor"]["fields"]["name"], "Grace",
            "{body}"
        );
        let reviewers: Vec<&str> = e["reviewers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["fields"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(reviewers, ["Grace", "Alan"]);
        let (status, body) = api
            .get("/api/content/post?populate=author.mentor.mentor")
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_query")
        );

        // Full-text search with stemming over published posts.
        let body = list("q=database&page-size=10").await;
        let mut found = titles(&body);
        found.sort();
        assert_eq!(
            found,
            ["Post 00", "Post 03", "Post 06", "Post 09"],
            "{backend:?}: {body}"
        );
        assert_eq!(body["meta"]["total"], 4);
        let body = list("q=database&filters[rank][$eq]=0").await;
        assert_eq!(titles(&body), ["Post 00"]);

        // Locales: a French version with its own title; the body falls back to English.
        let (status, body) = api
            .put(
                &format!("/api/content/post/{}?locale=fr", ids[0]),
                json!({"fields": {"title": "Billet 00"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        api.publish_locale("post", &ids[0], "fr").await;
        let body = list("locale=fr").await;
        assert_eq!(titles(&body), ["Billet 00"]);
        assert_eq!(
            body["data"][0]["fields"]["body"],
            "Running databases in production"
        );
        assert_eq!(
            body["data"][0]["fields"]["price"].as_f64(),
            Some(0.0),
            "shared fields are copied"
        );
        assert_eq!(
            body["data"][0]["fields"]["slug"], "post-00",
            "shared fields keep their values"
        );
        let (status, body) = api.get("/api/content/post?locale=de").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_query")
        );

        // Bad queries name the parameter.
        for (q, needle) in [
            ("filters[nope][$eq]=1", "filters[nope]"),
            ("filters[price][$gt]=cheap", "filters[price][$gt]"),
            ("filters[title][$regex]=x", "$regex"),
            ("sort=title:sideways", "sort"),
            ("page-size=1000", "page-size"),
            ("populate=title", "populate"),
        ] {
            let (status, body) = api.get(&format!("/api/content/post?{q}")).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::BAD_REQUEST, "invalid_query"),
                "{q}: {body}"
            );
            assert!(
                body["error"]["message"].as_str().unwrap().contains(needle),
                "{q}: {body}"
            );
        }

        // Anonymous delivery: 401 until the public role grants read; then cacheable, with ETags.
        let anon = Api { t: &t, token: None };
        let (status, body) = anon.get("/api/content/post").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthenticated")
        );
        public_read(&api, &["content.read"]).await;
        let (status, headers, _) = t
            .raw(Method::GET, "/api/content/post/post-01", None, None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["cache-control"], "public, max-age=60");
        let etag = headers["etag"].to_str().unwrap().to_string();
        let request = http::Request::get("/api/content/post/post-01")
            .header("if-none-match", &etag)
            .body(axum::body::Body::empty())
            .unwrap();
        let (status, headers, body) = t.send(request).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        assert_eq!(headers["etag"].to_str().unwrap(), etag);
        let (status, headers, _) = t
            .raw(Method::GET, "/api/content/post/post-01", Some(&admin), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["cache-control"], "private, no-store");
        // Drafts stay private.
        let (status, _) = anon.get("/api/content/post?status=draft").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = anon.get("/api/content/post/post-11").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Cascade: deleting Alan deletes the posts he wrote.
        let (status, _) = api
            .call(Method::DELETE, &format!("/api/content/person/{alan}"), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let body = list("filters[title][$in]=Post 02,Post 05").await;
        assert_eq!(titles(&body), Vec::<String>::new(), "{backend:?}: cascaded");
        t.close().await;
    }
}

/// A user holding `role` (created first with `grants`, unless it is a built-in one) and an API
/// client acting for them.
async fn user<'a>(
    t: &'a TestSite,
    admin: &Api<'_>,
    email: &str,
    role: &str,
    grants: &[&str],
) -> Api<'a> {
    if !grants.is_empty() {
        let (status, body) = admin
            .post(
                "/api/ucms/roles",
                json!({"name": role, "description": role, "permissions": grants}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let token = t.token(email, &[role], &["*"]).await;
    Api {
        t,
        token: Some(token),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_anonymous_viewer_editor_admin_and_own_entries() {
    for backend in BACKENDS {
        let Some((t, admin_token)) = site(backend).await else {
            continue;
        };
        let admin = Api {
            t: &t,
            token: Some(admin_token),
        };
        let (status, body) = admin.post("/api/content/types", author_type()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = admin
            .post("/api/content/types", json!({"name": "memo", "fields": [{"name": "title", "type": "short-text", "required": true}]}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let anon = Api { t: &t, token: None };
        let viewer = user(&t, &admin, "viewer@example.com", "viewer", &[]).await;
        let editor = user(&t, &admin, "editor@example.com", "editor", &[]).await;
        let writer = user(
            &t,
            &admin,
            "writer@example.com",
            "writer",
            &[
                "content.read",
                "content.create",
                "content.update:own",
                "content.delete:own",
                "content.publish:own",
            ],
        )
        .await;
        let mine = user(
            &t,
            &admin,
            "mine@example.com",
            "own-reader",
            &["content.read:own", "content.create"],
        )
        .await;
        let memo_reader = user(
            &t,
            &admin,
            "memo@example.com",
            "memo-reader",
            &["content.read:type-memo"],
        )
        .await;
        let odd = user(
            &t,
            &admin,
            "odd@example.com",
            "odd",
            &["content.read:weekdays"],
        )
        .await;

        // Anonymous: nothing without the public role.
        for uri in ["/api/content/author", "/api/content/types"] {
            let (status, body) = anon.get(uri).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::UNAUTHORIZED, "unauthenticated"),
                "{uri}"
            );
        }
        let (status, _) = anon
            .post("/api/content/author", json!({"fields": {"name": "X"}}))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _) = anon.post("/api/content/types", json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // Editor: writes and publishes; can change the schema too (editor holds every plugin permission).
        let by_editor = editor
            .create(
                "author",
                json!({"name": "Edith", "email": "edith@example.com"}),
            )
            .await;
        editor.publish("author", &by_editor).await;
        let (status, body) = editor
            .get(&format!("/api/content/author/{by_editor}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["data"]["fields"]["email"], "edith@example.com",
            "editors see private fields"
        );

        // Viewer: reads published entries, without private fields; no drafts, no writes.
        let (status, body) = viewer
            .get(&format!("/api/content/author/{by_editor}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            body["data"]["fields"].get("email").is_none(),
            "private: {body}"
        );
        let (status, body) = viewer.get("/api/content/author?status=draft").await;
        assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
        let (status, _) = viewer
            .post("/api/content/author", json!({"fields": {"name": "V"}}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = viewer
            .call(
                Method::DELETE,
                &format!("/api/content/author/{by_editor}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = viewer
            .post("/api/content/types", json!({"name": "x", "fields": []}))
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "the schema needs content.schema"
        );

        // Own entries only: the writer changes, publishes and deletes their own, not the editor's.
        let by_writer = writer.create("author", json!({"name": "Wren"})).await;
        let (status, body) = writer
            .put(
                &format!("/api/content/author/{by_writer}"),
                json!({"fields": {"name": "Wren B"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        writer.publish("author", &by_writer).await;
        let (status, body) = writer
            .put(
                &format!("/api/content/author/{by_editor}"),
                json!({"fields": {"name": "Hacked"}}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("only entries you created")
        );
        let (status, _) = writer
            .post(
                &format!("/api/content/author/{by_editor}/unpublish"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = writer
            .call(
                Method::DELETE,
                &format!("/api/content/author/{by_editor}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (_, body) = writer.get("/api/content/author?sort=name").await;
        assert_eq!(
            body["meta"]["total"], 2,
            "read is not limited to own: {body}"
        );

        // read:own lists only one's own entries (drafts need preview, so publish with admin).
        let own = mine.create("author", json!({"name": "Mina"})).await;
        admin.publish("author", &own).await;
        let (status, body) = mine.get("/api/content/author").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let names: Vec<&str> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["fields"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Mina"]);
        let (status, _) = mine.get(&format!("/api/content/author/{by_editor}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // Per-type grants; an unknown condition is refused rather than ignored.
        let memo = admin.create("memo", json!({"title": "M"})).await;
        admin.publish("memo", &memo).await;
        let (status, _) = memo_reader.get("/api/content/memo").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = memo_reader.get("/api/content/author").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = odd.get("/api/content/memo").await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // The public role: anonymous delivery of one type only.
        public_read(&admin, &["content.read:type-memo"]).await;
        let (status, _) = anon.get("/api/content/memo").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = anon.get("/api/content/author").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // Admin: everything, including deleting the editor's entry.
        let (status, _) = admin
            .call(
                Method::DELETE,
                &format!("/api/content/author/{by_editor}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = admin
            .call(Method::DELETE, "/api/content/types/memo", None)
            .await;
        assert_eq!(status, StatusCode::OK);
        t.close().await;
    }
}

/// The content plugin with its publisher schedule ticking every second, and hooky joined to its
/// two hook points and subscribed to its events.
async fn site_with_hooks(backend: crate::support::Backend) -> Option<(TestSite, String)> {
    let t = TestSite::open(backend, test_config()).await?;
    let manifest = CONTENT
        .manifest()
        .replace(r#"cron = "* * * * *""#, r#"cron = "* * * * * *""#);
    assert!(manifest.contains(r#"cron = "* * * * * *""#));
    t.install_with(CONTENT, &manifest)
        .await
        .expect("install content");
    let hooky = format!(
        "{}\n[[hooks]]\npoint = \"content.before-save\"\n\n[[hooks]]\npoint = \"content.before-publish\"\n\n[[subscriptions]]\ntopic = \"content.*\"\n",
        ucms_test_components::HOOKY.manifest()
    );
    t.install_with(ucms_test_components::HOOKY, &hooky)
        .await
        .expect("install hooky");
    let admin = t.admin_token().await;
    Some((t, admin))
}

fn page_type() -> Value {
    json!({"name": "page", "fields": [
        {"name": "title", "type": "short-text", "required": true},
        {"name": "summary", "type": "long-text"},
        {"name": "words", "type": "integer"}
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_events_schedules_type_changes_schema_and_openapi() {
    for backend in BACKENDS {
        let Some((t, admin)) = site_with_hooks(backend).await else {
            continue;
        };
        let api = Api {
            t: &t,
            token: Some(admin.clone()),
        };
        let (status, body) = api.post("/api/content/types", page_type()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");

        // content.before-save enriches and refuses; content.before-publish refuses.
        let (status, body) = api
            .post(
                "/api/content/page",
                json!({"fields": {"title": "Hello", "words": 10}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {body}");
        assert_eq!(
            body["data"]["fields"]["summary"], "About Hello",
            "the hook filled it"
        );
        let hello = body["data"]["id"].as_str().unwrap().to_string();
        let (status, body) = api
            .post(
                "/api/content/page",
                json!({"fields": {"title": "forbidden fruit"}}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "hook_rejected"),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("forbidden word")
        );
        let embargo = api
            .create("page", json!({"title": "embargo news", "words": 99}))
            .await;
        let (status, body) = api
            .post(&format!("/api/content/page/{embargo}/publish"), json!({}))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "hook_rejected"),
            "{body}"
        );

        // Scheduled publish and unpublish, run by the publisher schedule.
        let soon = |secs: i64| {
            let at = std::time::SystemTime::now() + std::time::Duration::from_secs(secs as u64);
            let ms = at
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            httpdate_rfc3339(ms)
        };
        let (status, body) = api
            .post(
                &format!("/api/content/page/{hello}/schedule"),
                json!({"publish-at": soon(1), "unpublish-at": soon(3)}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            body["data"]["scheduled"]["publish-at"].is_string(),
            "{body}"
        );
        let (status, body) = api
            .post(
                &format!("/api/content/page/{hello}/schedule"),
                json!({"publish-at": "tomorrow"}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
        );
        assert!(body["error"]["fields"]["publish-at"].is_string());
        // Both ran (a slow tick may run them together): the revisions show it.
        crate::support::eventually(20, || async {
            let (_, body) = api
                .get(&format!("/api/content/page/{hello}/revisions"))
                .await;
            let actions: Vec<&str> = body["data"]
                .as_array()?
                .iter()
                .filter_map(|r| r["action"].as_str())
                .collect();
            (actions.first() == Some(&"unpublish") && actions.contains(&"publish")).then_some(())
        })
        .await;
        let (_, body) = api
            .get(&format!("/api/content/page/{hello}?status=draft"))
            .await;
        assert_eq!(body["data"]["status"], "draft", "{body}");
        assert!(body["data"]["published-at"].is_string(), "{body}");
        assert!(
            body["data"].get("scheduled").is_none(),
            "the schedule is cleared: {body}"
        );

        // Events, each once, in the order written.
        let (status, body) = api
            .call(
                Method::DELETE,
                &format!("/api/content/page/{embargo}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let topics = crate::support::eventually(15, || async {
            let (_, body) = t.get("/api/hooky/events").await;
            let topics: Vec<String> = body["events"]
                .as_array()?
                .iter()
                .map(|e| e["topic"].as_str().unwrap_or_default().to_string())
                .collect();
            let all = [
                "content.type.changed",
                "content.entry.created",
                "content.entry.published",
                "content.entry.unpublished",
                "content.entry.deleted",
            ]
            .iter()
            .all(|want| topics.iter().any(|t| t == want));
            let created = topics
                .iter()
                .filter(|t| *t == "content.entry.created")
                .count();
            (all && created == 2).then_some(topics)
        })
        .await;
        for topic in [
            "content.type.changed",
            "content.entry.created",
            "content.entry.published",
            "content.entry.unpublished",
            "content.entry.deleted",
        ] {
            assert!(
                topics.iter().any(|t| t == topic),
                "{backend:?}: no {topic} in {topics:?}"
            );
        }
        assert_eq!(
            topics
                .iter()
                .filter(|t| *t == "content.entry.created")
                .count(),
            2,
            "{topics:?}"
        );
        let (_, body) = t.get("/api/hooky/events").await;
        // Events of different entries may arrive in either order: find hello's.
        let created = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["topic"] == "content.entry.created" && e["payload"]["id"] == hello)
            .unwrap_or_else(|| panic!("no content.entry.created for {hello}: {body}"));
        assert_eq!(created["payload"]["type"], "page");

        // Type changes: a required field without a default refuses with a report (dry-run too).
        let second = api
            .create("page", json!({"title": "Second", "words": 2000}))
            .await;
        let mut changed = page_type();
        changed["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "lead", "type": "short-text", "required": true}));
        let (status, body) = api
            .put("/api/content/types/page?dry-run=true", changed.clone())
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["ok"], false);
        let (status, body) = api.put("/api/content/types/page", changed.clone()).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "type_change_refused"),
            "{body}"
        );
        let report = &body["error"]["report"][0];
        assert_eq!(report["field"], "lead");
        assert_eq!(report["entries"].as_array().unwrap().len(), 2, "{body}");
        // Tightening validation that an entry breaks, or changing a field's type, refuses too.
        let mut tighter = page_type();
        tighter["fields"][2]["max"] = json!(1000);
        let (status, body) = api.put("/api/content/types/page", tighter).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["report"][0]["field"], "words");
        assert_eq!(body["error"]["report"][0]["entries"], json!([second]));
        let mut retyped = page_type();
        retyped["fields"][2]["type"] = json!("boolean");
        let (status, body) = api.put("/api/content/types/page", retyped).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["error"]["report"][0]["problem"]
                .as_str()
                .unwrap()
                .contains("integer to boolean"),
            "{body}"
        );
        // With a default it migrates: every entry gets the value; a removed field goes away.
        changed["fields"][3]["default"] = json!("Read on");
        changed["fields"].as_array_mut().unwrap().remove(2);
        let (status, body) = api.put("/api/content/types/page", changed).await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
        assert_eq!(body["migrated"], 2);
        let (_, body) = api
            .get(&format!("/api/content/page/{second}?status=draft"))
            .await;
        assert_eq!(body["data"]["fields"]["lead"], "Read on", "{body}");
        assert!(body["data"]["fields"].get("words").is_none(), "{body}");

        // Schema export, and import into another site.
        let (status, schema) = api.get("/api/content/schema").await;
        assert_eq!(status, StatusCode::OK, "{schema}");
        assert_eq!(schema["types"][0]["name"], "page");
        let (status, body) = api.post("/api/content/schema", schema.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["unchanged"], json!(["page"]));
        let (other, other_admin) = site(backend).await.expect("a second site");
        let other_api = Api {
            t: &other,
            token: Some(other_admin),
        };
        let (status, body) = other_api.post("/api/content/types", author_type()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let mut with_relation = schema.clone();
        with_relation["types"].as_array_mut().unwrap().insert(
            0,
            json!({"name": "story", "fields": [
                {"name": "page", "type": "relation", "target": "page", "cardinality": "one-to-one"}
            ]}),
        );
        let (status, body) = other_api.post("/api/content/schema", with_relation).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["created"],
            json!(["page", "story"]),
            "targets are created first"
        );
        let (_, exported) = other_api.get("/api/content/schema").await;
        assert_eq!(exported["types"].as_array().unwrap().len(), 3);
        other.close().await;

        // OpenAPI from the current types, public.
        let (status, doc) = t.get("/api/content/openapi.json").await;
        assert_eq!(status, StatusCode::OK, "{doc}");
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(
            doc["paths"]["/api/content/page"]["get"].is_object(),
            "{doc}"
        );
        assert_eq!(
            doc["components"]["schemas"]["page"]["properties"]["fields"]["properties"]["lead"]["type"],
            "string"
        );
        assert_eq!(
            doc["components"]["schemas"]["page"]["properties"]["fields"]["required"],
            json!(["title", "lead"])
        );
        t.close().await;
    }
}

/// Unix milliseconds as RFC 3339 (UTC), for the schedule API.
fn httpdate_rfc3339(ms: i64) -> String {
    let secs = ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since the epoch.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// A site whose content plugin knows its public address and makes sitemap pages of 2 URLs.
async fn site_with_settings(backend: crate::support::Backend) -> Option<(TestSite, String)> {
    let mut config = test_config();
    let mut settings = toml::Table::new();
    settings.insert("site-url".into(), "https://example.com/".into());
    settings.insert("sitemap-page-size".into(), toml::Value::Integer(2));
    config.plugins.insert(
        "content".into(),
        ucms::config::PluginConfig {
            settings,
            ..Default::default()
        },
    );
    let t = TestSite::open(backend, config).await?;
    t.install(CONTENT).await;
    let admin = t.admin_token().await;
    Some((t, admin))
}

/// The `<loc>` values of a sitemap or sitemap index, as written (XML-escaped).
fn locs(xml: &str) -> Vec<String> {
    xml.split("<loc>")
        .skip(1)
        .map(|s| s.split("</loc>").next().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seo_fields_and_the_sitemap() {
    for backend in BACKENDS {
        let Some((t, admin)) = site_with_settings(backend).await else {
            continue;
        };
        let api = Api {
            t: &t,
            token: Some(admin.clone()),
        };

        // Bad definitions: the URL pattern and the seo field are checked when the type is saved.
        let (status, body) = api
            .post(
                "/api/content/types",
                json!({"name": "bad", "url-pattern": "blog/{title}", "fields": [
                    {"name": "title", "type": "short-text"},
                    {"name": "seo", "type": "seo"},
                    {"name": "seo2", "type": "seo"},
                    {"name": "box", "type": "component", "fields": [{"name": "seo", "type": "seo"}]}
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let fields = &body["error"]["fields"];
        assert!(
            fields["url-pattern"]
                .as_str()
                .unwrap()
                .contains("starting with '/'"),
            "{body}"
        );
        assert!(
            fields["fields"]
                .as_str()
                .unwrap()
                .contains("at most one seo"),
            "{body}"
        );
        assert!(
            fields["box.seo"]
                .as_str()
                .unwrap()
                .contains("top of a type"),
            "{body}"
        );
        let (status, body) = api
            .post(
                "/api/content/types",
                json!({"name": "bad", "url-pattern": "/blog/{title}", "fields": [
                    {"name": "title", "type": "short-text"}
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["fields"]["url-pattern"]
                .as_str()
                .unwrap()
                .contains("'{title}' is not a placeholder"),
            "{body}"
        );
        let (status, body) = api
            .post(
                "/api/content/types",
                json!({"name": "bad", "url-pattern": "/blog", "fields": []}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["fields"]["url-pattern"]
                .as_str()
                .unwrap()
                .contains("distinct URLs"),
            "{body}"
        );

        for ty in [
            json!({"name": "post", "url-pattern": "/blog/{slug}", "fields": [
                {"name": "title", "type": "short-text", "required": true},
                {"name": "slug", "type": "slug", "from": "title", "unique": true},
                {"name": "seo", "type": "seo"}
            ]}),
            json!({"name": "doc", "locales": ["en", "fr"], "url-pattern": "/{locale}/a&b/{slug}", "fields": [
                {"name": "title", "type": "short-text", "required": true, "localized": true},
                {"name": "slug", "type": "slug", "from": "title", "localized": true}
            ]}),
            json!({"name": "memo", "fields": [{"name": "title", "type": "short-text"}]}),
        ] {
            let (status, body) = api.post("/api/content/types", ty).await;
            assert_eq!(status, StatusCode::CREATED, "{backend:?}: {body}");
        }

        // SEO values are validated like other fields, each key named.
        let long_title = "t".repeat(61);
        let (status, body) = api
            .post(
                "/api/content/post",
                json!({"fields": {"title": "Bad", "seo": {
                    "meta-title": long_title, "meta-description": "two\nlines",
                    "canonical-url": "ftp://example.com/x", "noindex": "yes", "keywords": "x"}}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let fields = &body["error"]["fields"];
        assert_eq!(
            fields["seo.meta-title"],
            "must be at most 60 characters long (search engines cut the rest)"
        );
        assert_eq!(fields["seo.meta-description"], "must be one line");
        assert_eq!(
            fields["seo.canonical-url"],
            "must be an absolute http:// or https:// URL"
        );
        assert_eq!(fields["seo.noindex"], "must be true or false");
        assert!(
            fields["seo.keywords"]
                .as_str()
                .unwrap()
                .contains("not an SEO key")
        );
        let (status, body) = api
            .post(
                "/api/content/post",
                json!({"fields": {"title": "Bad", "seo": "x"}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["fields"]["seo"]
                .as_str()
                .unwrap()
                .contains("meta-title")
        );

        // Entries carry their public path.
        let (status, body) = api
            .post(
                "/api/content/post",
                json!({"fields": {"title": "Hello World", "seo": {
                    "meta-title": "Hello", "meta-description": "The first post",
                    "canonical-url": "https://example.com/blog/hello-world"}}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["data"]["path"], "/blog/hello-world");
        assert_eq!(body["data"]["fields"]["seo"]["meta-title"], "Hello");
        let hello = body["data"]["id"].as_str().unwrap().to_string();
        api.publish("post", &hello).await;
        let hidden = api
            .create("post", json!({"title": "Hidden", "seo": {"noindex": true}}))
            .await;
        api.publish("post", &hidden).await;
        api.create("post", json!({"title": "Draft only"})).await;
        let second = api.create("post", json!({"title": "Second"})).await;
        api.publish("post", &second).await;
        let third = api
            .create("post", json!({"title": "Third", "seo": {"noindex": false}}))
            .await;
        api.publish("post", &third).await;
        let guide = api.create("doc", json!({"title": "Guide"})).await;
        api.publish("doc", &guide).await;
        let (status, body) = api
            .put(
                &format!("/api/content/doc/{guide}?locale=fr"),
                json!({"fields": {"title": "Guide FR"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["data"]["path"], "/fr/a&b/guide-fr");
        api.publish_locale("doc", &guide, "fr").await;
        let memo = api
            .create("memo", json!({"title": "Not on the site"}))
            .await;
        api.publish("memo", &memo).await;

        // Anonymous callers need the public role's read grant, like every read.
        let anon = Api { t: &t, token: None };
        let (status, body) = anon.get("/api/content/sitemap.xml").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{body}"
        );
        public_read(&api, &["content.read"]).await;

        // Five URLs in pages of two: an index of three pages.
        let (status, headers, bytes) = t
            .raw(Method::GET, "/api/content/sitemap.xml", None, None)
            .await;
        let xml = String::from_utf8(bytes).unwrap();
        assert_eq!(status, StatusCode::OK, "{backend:?}: {xml}");
        assert_eq!(headers["content-type"], "application/xml; charset=utf-8");
        assert_eq!(headers["cache-control"], "public, max-age=60");
        assert!(headers.contains_key("etag"));
        assert!(xml.contains("<sitemapindex"), "{xml}");
        assert_eq!(
            locs(&xml),
            (1..=3)
                .map(|p| format!("https://example.com/api/content/sitemap.xml?page={p}"))
                .collect::<Vec<_>>()
        );
        assert_eq!(xml.matches("<lastmod>").count(), 3, "{xml}");
        let mut all = Vec::new();
        for p in 1..=3 {
            let (status, _, bytes) = t
                .raw(
                    Method::GET,
                    &format!("/api/content/sitemap.xml?page={p}"),
                    None,
                    None,
                )
                .await;
            let xml = String::from_utf8(bytes).unwrap();
            assert_eq!(status, StatusCode::OK, "{xml}");
            assert!(xml.contains("<urlset"), "{xml}");
            let page = locs(&xml);
            assert_eq!(page.len(), if p < 3 { 2 } else { 1 }, "{xml}");
            assert_eq!(xml.matches("<lastmod>").count(), page.len(), "{xml}");
            all.extend(page);
        }
        all.sort();
        assert_eq!(
            all,
            [
                "https://example.com/blog/hello-world",
                "https://example.com/blog/second",
                "https://example.com/blog/third",
                "https://example.com/en/a&amp;b/guide",
                "https://example.com/fr/a&amp;b/guide-fr",
            ],
            "{backend:?}: published, indexable entries of types with a url-pattern"
        );
        for bad in ["4", "0", "abc"] {
            let (status, body) = anon
                .get(&format!("/api/content/sitemap.xml?page={bad}"))
                .await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::BAD_REQUEST, "invalid_query"),
                "page={bad}: {body}"
            );
        }

        // Unpublishing the posts leaves two URLs: one page, a plain urlset.
        for (ty, id) in [("post", &second), ("post", &third), ("post", &hello)] {
            let (status, body) = api
                .post(&format!("/api/content/{ty}/{id}/unpublish"), json!({}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let (status, _, bytes) = t
            .raw(Method::GET, "/api/content/sitemap.xml", None, None)
            .await;
        let xml = String::from_utf8(bytes).unwrap();
        assert_eq!(status, StatusCode::OK, "{xml}");
        assert!(xml.starts_with("<?xml"), "{xml}");
        assert!(xml.contains("<urlset"), "{xml}");
        assert_eq!(locs(&xml).len(), 2, "{xml}");
        assert!(!xml.contains("/blog/"), "{xml}");
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_tokens_open_one_draft() {
    for backend in BACKENDS {
        let Some((t, admin_token)) = site(backend).await else {
            continue;
        };
        let admin = Api {
            t: &t,
            token: Some(admin_token.clone()),
        };
        let (status, body) = admin
            .post(
                "/api/content/types",
                json!({"name": "post", "locales": ["en", "fr"], "fields": [
                    {"name": "title", "type": "short-text", "required": true, "localized": true},
                    {"name": "slug", "type": "slug", "from": "title"},
                    {"name": "notes", "type": "short-text", "private": true}
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        // (This site has no site-url: the sitemap says what to set.)
        let (status, body) = admin.get("/api/content/sitemap.xml").await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::SERVICE_UNAVAILABLE, "sitemap_not_configured"),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("site-url")
        );
        let alpha = admin
            .create("post", json!({"title": "Alpha", "notes": "internal"}))
            .await;
        let beta = admin.create("post", json!({"title": "Beta"})).await;
        let anon = Api { t: &t, token: None };
        let (status, _) = anon
            .get(&format!("/api/content/post/{alpha}?status=draft"))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // Who may ask: update or preview, not read alone.
        let viewer = user(&t, &admin, "viewer@example.com", "viewer", &[]).await;
        let (status, body) = viewer
            .post(
                &format!("/api/content/post/{alpha}/preview-token"),
                json!({}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("content.preview")
        );
        let previewer = user(
            &t,
            &admin,
            "previewer@example.com",
            "previewer",
            &["content.read", "content.preview"],
        )
        .await;
        let (status, body) = previewer
            .post(
                &format!("/api/content/post/{alpha}/preview-token"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = admin
            .post("/api/content/post/nope/preview-token", json!({}))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::NOT_FOUND, "entry_not_found")
        );
        let (status, body) = admin
            .post(
                &format!("/api/content/post/{alpha}/preview-token"),
                json!({"expires-in": 0, "locale": "de"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["fields"]["expires-in"]
                .as_str()
                .unwrap()
                .contains("seconds")
        );
        assert_eq!(
            body["error"]["fields"]["locale"],
            "the entry has no 'de' version"
        );

        // The token shows the draft to anyone holding it, never cached, private fields left out.
        let (status, body) = admin
            .post(
                &format!("/api/content/post/{alpha}/preview-token"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let token = body["token"].as_str().unwrap().to_string();
        let url = body["url"].as_str().unwrap().to_string();
        assert_eq!(
            url,
            format!("/api/content/post/{alpha}?status=draft&preview={token}")
        );
        assert!(body["expires-at"].as_str().is_some());
        let (status, headers, bytes) = t.raw(Method::GET, &url, None, None).await;
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(body["data"]["fields"]["title"], "Alpha");
        assert_eq!(body["data"]["status"], "draft");
        assert!(body["data"]["fields"].get("notes").is_none(), "{body}");
        let (status, body) = anon
            .get(&format!(
                "/api/content/post/alpha?status=draft&preview={token}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "by slug: {body}");
        assert_eq!(body["data"]["id"], alpha.as_str());

        // Only that entry, only the draft view, only one entry at a time.
        let (status, body) = anon
            .get(&format!(
                "/api/content/post/{beta}?status=draft&preview={token}"
            ))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "preview_token_wrong_entry"),
            "{body}"
        );
        assert!(body["error"]["message"].as_str().unwrap().contains(&alpha));
        let (status, body) = anon
            .get(&format!("/api/content/post/{alpha}?preview={token}"))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_query")
        );
        let (status, body) = anon
            .get(&format!("/api/content/post?status=draft&preview={token}"))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_query")
        );
        let (status, body) = anon.get(&format!("{url}&populate=author")).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid_query")
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("populate")
        );

        // Tampered: another signature, or the claims changed under the signature.
        let mut bad_sig = token.clone();
        let last = bad_sig.pop().unwrap();
        bad_sig.push(if last == '0' { '1' } else { '0' });
        let forged = token.replacen(&alpha, &beta, 1);
        let far = {
            let parts: Vec<&str> = token.split('.').collect();
            format!(
                "{}.{}.{}.{}.{}",
                parts[0], parts[1], parts[2], "99999999999999", parts[4]
            )
        };
        for (bad, id) in [(&bad_sig, &alpha), (&forged, &beta), (&far, &alpha)] {
            let (status, body) = anon
                .get(&format!(
                    "/api/content/post/{id}?status=draft&preview={bad}"
                ))
                .await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::UNAUTHORIZED, "preview_token_invalid"),
                "{bad}: {body}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("signature does not match"),
                "{body}"
            );
        }
        let (status, body) = anon
            .get(&format!(
                "/api/content/post/{alpha}?status=draft&preview=abc"
            ))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "preview_token_invalid")
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("malformed")
        );

        // Expired.
        let (status, body) = admin
            .post(
                &format!("/api/content/post/{alpha}/preview-token"),
                json!({"expires-in": 1}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let short = body["url"].as_str().unwrap().to_string();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let (status, body) = anon.get(&short).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "preview_token_expired"),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("expired at")
        );

        // A token for one locale opens only that version.
        let (status, body) = admin
            .put(
                &format!("/api/content/post/{alpha}?locale=fr"),
                json!({"fields": {"title": "Alpha FR"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = admin
            .post(
                &format!("/api/content/post/{alpha}/preview-token"),
                json!({"locale": "fr"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let fr_url = body["url"].as_str().unwrap().to_string();
        assert!(fr_url.ends_with("&locale=fr"));
        let (status, body) = anon.get(&fr_url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["fields"]["title"], "Alpha FR");
        let en_url = fr_url.trim_end_matches("&locale=fr");
        let (status, body) = anon.get(en_url).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "preview_token_wrong_entry"),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("'fr' version")
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_stages_gate_publishing() {
    for backend in BACKENDS {
        let Some((t, admin_token)) = site_with_hooks(backend).await else {
            continue;
        };
        let admin = Api {
            t: &t,
            token: Some(admin_token.clone()),
        };

        // Bad workflows are named.
        let (status, body) = admin
            .post(
                "/api/content/types",
                json!({"name": "bad", "draft-and-publish": false, "workflow": {"stages": [
                    {"name": "draft"}, {"name": "draft"}, {"name": "ok", "permission": "delete"}
                ]}, "fields": []}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let fields = &body["error"]["fields"];
        assert!(
            fields["workflow"]
                .as_str()
                .unwrap()
                .contains("draft-and-publish"),
            "{body}"
        );
        assert_eq!(
            fields["workflow.stages.1"],
            "the stage 'draft' is listed twice"
        );
        assert!(
            fields["workflow.stages.2.permission"]
                .as_str()
                .unwrap()
                .contains("'delete' is not one of"),
            "{body}"
        );
        let (status, body) = admin
            .post(
                "/api/content/types",
                json!({"name": "bad", "workflow": {"stages": [{"name": "only"}]}, "fields": []}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["fields"]["workflow.stages"]
                .as_str()
                .unwrap()
                .contains("2 to 10")
        );

        let (status, body) = admin
            .post(
                "/api/content/types",
                json!({"name": "story", "workflow": {"stages": [
                    {"name": "draft"}, {"name": "in-review"}, {"name": "approved", "permission": "review"}
                ]}, "fields": [
                    {"name": "title", "type": "short-text", "required": true},
                    {"name": "summary", "type": "long-text"}
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = admin.post("/api/content/types", page_type()).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");

        let writer = user(
            &t,
            &admin,
            "writer@example.com",
            "writer",
            &[
                "content.read",
                "content.create",
                "content.update",
                "content.publish",
            ],
        )
        .await;
        let other_reviewer = user(
            &t,
            &admin,
            "archivist@example.com",
            "archivist",
            &["content.read", "content.review:stage-archived"],
        )
        .await;
        let reviewer = user(
            &t,
            &admin,
            "reviewer@example.com",
            "reviewer",
            &["content.read", "content.review:stage-approved,type-story"],
        )
        .await;

        let (status, body) = writer
            .post("/api/content/story", json!({"fields": {"title": "Scoop"}}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["data"]["stage"], "draft");
        let id = body["data"]["id"].as_str().unwrap().to_string();

        // Publishing needs the last stage.
        let (status, body) = writer
            .post(&format!("/api/content/story/{id}/publish"), json!({}))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "stage_required"),
            "{body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(
                "in the review stage 'draft'; publishing needs the last stage 'approved'"
            ),
            "{body}"
        );
        let (status, body) = writer
            .post(
                "/api/content/story/bulk",
                json!({"entries": [{"fields": {"title": "Many"}}], "publish": true}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "stage_required"),
            "{body}"
        );

        // Unknown stages and types without a workflow.
        let (status, body) = writer
            .post(
                &format!("/api/content/story/{id}/stage"),
                json!({"stage": "done"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            body["error"]["fields"]["stage"],
            "must be one of the stages of 'story': draft, in-review, approved"
        );
        let page = admin.create("page", json!({"title": "Plain"})).await;
        let (status, body) = admin
            .post(
                &format!("/api/content/page/{page}/stage"),
                json!({"stage": "draft"}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "no_workflow"),
            "{body}"
        );

        // update moves into plain stages; the approved stage asks for content.review (with a
        // matching stage- condition).
        let (status, body) = writer
            .post(
                &format!("/api/content/story/{id}/stage"),
                json!({"stage": "in-review"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["stage"], "in-review");
        for who in [&writer, &other_reviewer] {
            let (status, body) = who
                .post(
                    &format!("/api/content/story/{id}/stage"),
                    json!({"stage": "approved"}),
                )
                .await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{body}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("'content.review' permission (unconditional, or with the condition stage-approved)"),
                "{body}"
            );
        }
        let (status, body) = reviewer
            .post(
                &format!("/api/content/story/{id}/stage"),
                json!({"stage": "approved"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["stage"], "approved");
        // The reviewer's grant covers only the approved stage.
        let (status, body) = reviewer
            .post(
                &format!("/api/content/story/{id}/stage"),
                json!({"stage": "in-review"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

        // An approved draft that changes needs approval again.
        let (status, body) = writer
            .put(
                &format!("/api/content/story/{id}"),
                json!({"fields": {"title": "Scoop!"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["stage"], "draft");
        let (status, _) = writer
            .post(&format!("/api/content/story/{id}/publish"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (status, body) = reviewer
            .post(
                &format!("/api/content/story/{id}/stage"),
                json!({"stage": "approved"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = writer
            .post(&format!("/api/content/story/{id}/publish"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["status"], "published");

        // Stage changes are revisions and events.
        let (status, body) = admin
            .get(&format!("/api/content/story/{id}/revisions"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let stages: Vec<(String, String)> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "stage")
            .map(|r| (r["n"].to_string(), r["stage"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            stages.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
            ["approved", "approved", "in-review"],
            "{body}"
        );
        let changes = crate::support::eventually(15, || async {
            let (_, body) = t.get("/api/hooky/events").await;
            let changes: Vec<(String, String)> = body["events"]
                .as_array()?
                .iter()
                .filter(|e| e["topic"] == "content.entry.stage-changed")
                .map(|e| {
                    (
                        e["payload"]["from"].as_str().unwrap_or("?").to_string(),
                        e["payload"]["stage"].as_str().unwrap_or("?").to_string(),
                    )
                })
                .collect();
            (changes.len() == 3).then_some(changes)
        })
        .await;
        assert_eq!(
            changes,
            [
                ("draft".to_string(), "in-review".to_string()),
                ("in-review".to_string(), "approved".to_string()),
                ("draft".to_string(), "approved".to_string()),
            ],
            "{backend:?}"
        );
        t.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taxonomy_vocabularies_terms_fields_and_subtree_filters() {
    for backend in BACKENDS {
        let Some((t, admin_token)) = site(backend).await else {
            continue;
        };
        let api = Api {
            t: &t,
            token: Some(admin_token.clone()),
        };
        let anon = Api { t: &t, token: None };
        let (status, _) = anon
            .post("/api/content/taxonomies", json!({"name": "topics"}))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let viewer = user(&t, &api, "viewer@example.com", "viewer", &[]).await;
        let (status, body) = viewer
            .post("/api/content/taxonomies", json!({"name": "topics"}))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("content.taxonomy")
        );

        // Vocabularies.
        let (status, body) = api
            .post("/api/content/taxonomies", json!({"name": "Bad Name"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body["error"]["fields"]["name"].as_str().is_some());
        for v in [
            json!({"name": "topics", "display-name": "Topics"}),
            json!({"name": "tags", "hierarchical": false}),
        ] {
            let (status, body) = api.post("/api/content/taxonomies", v).await;
            assert_eq!(status, StatusCode::CREATED, "{backend:?}: {body}");
        }
        let (status, body) = api
            .post("/api/content/taxonomies", json!({"name": "tags"}))
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "vocabulary_exists")
        );

        // Terms, with parents.
        for (v, term) in [
            ("topics", json!({"name": "Science"})),
            ("topics", json!({"name": "Physics", "parent": "science"})),
            (
                "topics",
                json!({"slug": "quantum", "name": "Quantum mechanics", "parent": "physics"}),
            ),
            ("topics", json!({"name": "Art"})),
            ("tags", json!({"name": "Rust"})),
            ("tags", json!({"name": "Wasm"})),
        ] {
            let (status, body) = api
                .post(&format!("/api/content/taxonomies/{v}/terms"), term)
                .await;
            assert_eq!(status, StatusCode::CREATED, "{backend:?}: {body}");
        }
        let (status, body) = api
            .post(
                "/api/content/taxonomies/topics/terms",
                json!({"name": "Orphan", "parent": "nope"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            body["error"]["fields"]["parent"],
            "'nope' is not a term of the vocabulary 'topics'"
        );
        let (status, body) = api
            .post(
                "/api/content/taxonomies/tags/terms",
                json!({"name": "Sub", "parent": "rust"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["fields"]["parent"]
                .as_str()
                .unwrap()
                .contains("flat")
        );
        let (status, body) = api
            .post(
                "/api/content/taxonomies/topics/terms",
                json!({"name": "Art"}),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "term_exists"),
            "{body}"
        );

        // Types: a taxonomy field names an existing vocabulary.
        let (status, body) = api
            .post(
                "/api/content/types",
                json!({"name": "bad", "fields": [
                    {"name": "a", "type": "taxonomy", "vocabulary": "nope"},
                    {"name": "b", "type": "taxonomy"}
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["fields"]["a"]
                .as_str()
                .unwrap()
                .contains("'nope' does not exist")
        );
        assert!(
            body["error"]["fields"]["b"]
                .as_str()
                .unwrap()
                .contains("needs a 'vocabulary'")
        );
        let (status, body) = api
            .post(
                "/api/content/types",
                json!({"name": "essay", "fields": [
                    {"name": "title", "type": "short-text", "required": true},
                    {"name": "topic", "type": "taxonomy", "vocabulary": "topics"},
                    {"name": "tags", "type": "taxonomy", "vocabulary": "tags", "multiple": true}
                ]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");

        // Values name terms of the vocabulary.
        let (status, body) = api
            .post(
                "/api/content/essay",
                json!({"fields": {"title": "Bad", "topic": "nope", "tags": "rust"}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            body["error"]["fields"]["topic"],
            "names nope, which is not a term of the vocabulary 'topics'"
        );
        assert_eq!(
            body["error"]["fields"]["tags"],
            "must be an array of distinct term slugs"
        );
        let mut ids = std::collections::BTreeMap::new();
        for (title, topic, tags) in [
            ("E1", "quantum", json!(["rust"])),
            ("E2", "physics", json!([])),
            ("E3", "art", json!(["rust", "wasm"])),
            ("E4", "science", json!(null)),
        ] {
            let id = api
                .create(
                    "essay",
                    json!({"title": title, "topic": topic, "tags": tags}),
                )
                .await;
            api.publish("essay", &id).await;
            ids.insert(title, id);
        }
        let under = |field: &str, term: &str| {
            format!("/api/content/essay?sort=title:asc&filters[{field}][$under]={term}")
        };
        for (field, term, want) in [
            ("topic", "science", vec!["E1", "E2", "E4"]),
            ("topic", "physics", vec!["E1", "E2"]),
            ("topic", "quantum", vec!["E1"]),
            ("tags", "rust", vec!["E1", "E3"]),
        ] {
            let (status, body) = api.get(&under(field, term)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(titles(&body), want, "{backend:?}: {field} under {term}");
        }
        let (status, body) = api.get("/api/content/essay?filters[tags][$eq]=wasm").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(titles(&body), ["E3"]);
        for (bad, says) in [
            (under("title", "x"), "works on taxonomy fields"),
            (under("topic", "nope"), "'nope' is not a term"),
        ] {
            let (status, body) = api.get(&bad).await;
            assert_eq!(
                (status, code(&body)),
                (StatusCode::BAD_REQUEST, "invalid_query")
            );
            assert!(
                body["error"]["message"].as_str().unwrap().contains(says),
                "{body}"
            );
        }

        // Moving a term moves its subtree; no cycles.
        let (status, body) = api
            .put(
                "/api/content/taxonomies/topics/terms/physics",
                json!({"name": "Physics", "parent": "art"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["ancestors"], json!(["art"]));
        let (status, body) = api
            .get("/api/content/taxonomies/topics/terms/quantum")
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["ancestors"], json!(["art", "physics"]));
        let (_, body) = api.get(&under("topic", "art")).await;
        assert_eq!(titles(&body), ["E1", "E2", "E3"], "{backend:?}");
        let (_, body) = api.get(&under("topic", "science")).await;
        assert_eq!(titles(&body), ["E4"], "{backend:?}");
        for parent in ["quantum", "art"] {
            let (status, body) = api
                .put(
                    "/api/content/taxonomies/topics/terms/art",
                    json!({"name": "Art", "parent": parent}),
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert!(
                body["error"]["fields"]["parent"]
                    .as_str()
                    .unwrap()
                    .contains("can't be its own ancestor"),
                "{body}"
            );
        }
        let (status, body) = api
            .get("/api/content/taxonomies/topics/terms/physics")
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["children"], json!(["quantum"]));

        // Reads follow content.read (anonymous through the public role).
        let (status, _) = anon.get("/api/content/taxonomies/topics").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        public_read(&api, &["content.read"]).await;
        let (status, body) = anon.get("/api/content/taxonomies").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut names: Vec<&str> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["tags", "topics"]);
        assert_eq!(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == "tags")
                .unwrap()["hierarchical"],
            false
        );
        let (status, body) = anon.get("/api/content/taxonomies/topics").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["display-name"], "Topics");
        assert_eq!(body["terms"].as_array().unwrap().len(), 4);

        // Deleting: not with children or uses unless asked.
        let (status, body) = api
            .call(
                Method::DELETE,
                "/api/content/taxonomies/topics/terms/physics",
                None,
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "term_has_children"),
            "{body}"
        );
        let (status, body) = api
            .call(
                Method::DELETE,
                "/api/content/taxonomies/topics/terms/quantum",
                None,
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "term_in_use"),
            "{body}"
        );
        assert_eq!(body["error"]["entries"], json!([ids["E1"]]));
        let (status, body) = api
            .call(
                Method::DELETE,
                "/api/content/taxonomies/tags/terms/rust?detach=true",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["detached"], 2);
        let (_, body) = api.get(&format!("/api/content/essay/{}", ids["E3"])).await;
        assert_eq!(body["data"]["fields"]["tags"], json!(["wasm"]), "{body}");
        let (status, body) = api
            .call(
                Method::DELETE,
                "/api/content/taxonomies/topics/terms/physics?cascade=true&detach=true",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["deleted"], json!(["physics", "quantum"]));
        let (_, body) = api
            .get(&format!("/api/content/essay/{}?status=draft", ids["E1"]))
            .await;
        assert_eq!(body["data"]["fields"]["topic"], Value::Null, "{body}");
        let (status, body) = api
            .call(Method::DELETE, "/api/content/taxonomies/topics", None)
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, "vocabulary_in_use"),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("'topic' of the type 'essay'")
        );
        t.close().await;
    }
}
