//! The marketplace over a real socket, on SQLite and on PostgreSQL: publishers and the verified
//! flag, download counts under concurrency, search with facets, sorting and pages, accounts,
//! sessions and CSRF, ratings and reviews with reports; the server-rendered pages with their
//! security headers and sanitized READMEs; and the pages driven by Chromium.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde_json::{Value, json};
use ucms_db::Db;
use ucms_package::archive::{self, Contents};
use ucms_package::keys::SecretKey;
use ucms_package::signature::PackageSignature;
use ucms_registry::client::RegistryClient;
use ucms_registry::{Registry, RegistryConfig};
use ucms_test_components::{Guest, HELLO, TALLY};

const API: semver::Version = semver::Version::new(0, 2, 1);

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A database for a test registry: a file in `dir`, or a fresh schema of the test PostgreSQL
/// (`None` when it is unreachable outside CI; under `CI=true` that fails the test).
async fn database(backend: Backend, dir: &Path) -> Option<(Db, Option<String>)> {
    match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", dir.join("registry.db").display());
            Some((Db::connect(&url, None).await.unwrap(), None))
        }
        Backend::Postgres => {
            let url = std::env::var("UCMS_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let admin = match sqlx::PgPool::connect(&url).await {
                Ok(pool) => pool,
                Err(e) => {
                    assert!(
                        !ci(),
                        "PostgreSQL is unreachable at {url} ({e}); under CI=true the PostgreSQL suites must run"
                    );
                    eprintln!("SKIPPED (PostgreSQL unreachable at {url}: {e})");
                    return None;
                }
            };
            let mut random = [0u8; 8];
            getrandom::fill(&mut random).unwrap();
            let schema = format!("ucms_market_{}", hex::encode(random));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
            let options = sqlx::postgres::PgConnectOptions::from_str(&url)
                .unwrap()
                .options([("search_path", schema.as_str())]);
            Some((
                Db::connect_postgres(options, Some(8)).await.unwrap(),
                Some(schema),
            ))
        }
    }
}

async fn drop_schema(schema: &str) {
    let url = std::env::var("UCMS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    if let Ok(pool) = sqlx::PgPool::connect(&url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&pool)
        .await;
        pool.close().await;
    }
}

/// A registry serving on 127.0.0.1 with three signed packages from three publishers:
/// `hello` (ucms, verified, with a README and a changelog, two versions), `tally` (ucms-tests,
/// verified, events) and `greeter` (acme, whose key was revoked after publishing: not verified).
struct Market {
    registry: Arc<Registry>,
    addr: SocketAddr,
    schema: Option<String>,
    _dir: tempfile::TempDir,
}

const README: &str = "# Hello\n\nGreets visitors. **Bold** and a [link](https://example.com).\n\n<script>window.pwned = true</script>\n\n<img src=\"data:,\" onerror=\"window.pwned = true\">\n\n[click](javascript:window.pwned=true)\n";
const CHANGELOG: &str = "## 0.2.0\n\n- Greets in more languages.\n\n## 0.1.0\n\n- First release.\n";

fn package(guest: Guest, edit: impl Fn(String) -> String, docs: bool) -> Vec<u8> {
    let manifest = edit(guest.manifest());
    archive::pack(&Contents {
        manifest: ucms_manifest::Manifest::parse(&manifest).unwrap(),
        manifest_text: manifest,
        wasm: guest.wasm_bytes(),
        readme: docs.then(|| README.to_string()),
        changelog: docs.then(|| CHANGELOG.to_string()),
        assets: Default::default(),
    })
}

impl Market {
    async fn start(backend: Backend) -> Option<Self> {
        ucms_registry::client::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let (db, schema) = database(backend, dir.path()).await?;
        let mut config = RegistryConfig::new(dir.path().join("registry"), vec![API]);
        config.writes_per_minute = 1000;
        config.logins_per_minute = 5;
        let registry = Registry::open_with_db(config, db).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = registry.router();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

        let mut trust = ucms_package::trust::TrustStore::new();
        trust.trust_registry(registry.public_key().key().unwrap());
        let client =
            RegistryClient::new(&format!("http://{addr}"), &dir.path().join("cache"), trust)
                .unwrap();
        let publish = async |name: &str, archives: Vec<Vec<u8>>| {
            let token = registry.add_publisher(name).await.unwrap().token;
            let key = SecretKey::generate(name);
            for archive in archives {
                let signature = PackageSignature::sign(&key, &archive);
                client
                    .publish(&token, archive, &signature, Some(&key.public_file()))
                    .await
                    .unwrap();
            }
            key
        };
        let hello = |version: &'static str| {
            package(
                HELLO,
                move |m| m.replace(r#"version = "0.1.0""#, &format!(r#"version = "{version}""#)),
                true,
            )
        };
        publish("ucms", vec![hello("0.1.0"), hello("0.2.0")]).await;
        publish(
            "ucms-tests",
            vec![package(
                TALLY,
                |m| {
                    m.replace(
                        "id = \"tally\"\n",
                        "id = \"tally\"\ncategories = [\"analytics\"]\n",
                    )
                },
                false,
            )],
        )
        .await;
        let acme = publish(
            "acme",
            vec![package(
                HELLO,
                |m| {
                    m.replace(r#"id = "hello""#, r#"id = "greeter""#)
                        .replace(r#"publisher = "ucms""#, r#"publisher = "acme""#)
                        .replace(
                            r#"categories = ["examples"]"#,
                            r#"categories = ["examples", "content"]"#,
                        )
                        .replace("Greets visitors", "Says hello to visitors")
                },
                false,
            )],
        )
        .await;
        registry
            .revoke_key(&acme.public().id(), "test: an unverified publisher")
            .await
            .unwrap();
        Some(Self {
            registry,
            addr,
            schema,
            _dir: dir,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> Value {
        let response = reqwest::get(self.url(path)).await.unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn close(self) {
        self.registry.db().close().await;
        if let Some(schema) = &self.schema {
            drop_schema(schema).await;
        }
    }
}

/// A marketplace user's HTTP client, holding its session cookie and CSRF token.
struct Visitor {
    http: reqwest::Client,
    csrf: String,
    id: String,
}

/// The `name=value` part of a response's session cookie.
fn cookie_of(response: &reqwest::Response) -> String {
    let header = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Lax"),
        "{header}"
    );
    header.split(';').next().unwrap().to_string()
}

/// A client that sends `cookie` with every request, as a browser would.
fn client_with(cookie: &str, redirects: bool) -> reqwest::Client {
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::COOKIE, cookie.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(if redirects {
            reqwest::redirect::Policy::limited(5)
        } else {
            reqwest::redirect::Policy::none()
        })
        .build()
        .unwrap()
}

async fn sign_up(market: &Market, email: &str, name: &str) -> Visitor {
    let response = reqwest::Client::new()
        .post(market.url("/api/v1/users"))
        .json(&json!({ "email": email, "name": name, "password": "correct horse battery" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let cookie = cookie_of(&response);
    let body: Value = response.json().await.unwrap();
    Visitor {
        http: client_with(&cookie, true),
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
        id: body["user"]["id"].as_str().unwrap().to_string(),
    }
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

async fn marketplace_api(backend: Backend) {
    let Some(market) = Market::start(backend).await else {
        return;
    };

    // Publishers: keys, packages and the verified flag.
    let ucms = market.get("/api/v1/publishers/ucms").await;
    assert_eq!(ucms["verified"], true, "{ucms}");
    assert_eq!(ucms["keys"].as_array().unwrap().len(), 1);
    assert_eq!(ucms["keys"][0]["trusted"], true);
    assert!(ucms["keys"][0]["endorsed_until"].as_i64().unwrap() > 0);
    assert_eq!(ucms["packages"][0]["latest"]["id"], "hello");
    let acme = market.get("/api/v1/publishers/acme").await;
    assert_eq!(
        acme["verified"], false,
        "a revoked key verifies nothing: {acme}"
    );
    assert_eq!(acme["keys"][0]["revoked"], "test: an unverified publisher");
    assert_eq!(acme["packages"][0]["latest"]["id"], "greeter");
    let missing = reqwest::get(market.url("/api/v1/publishers/nobody"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(error_code(&missing.json().await.unwrap()), "not_found");

    // Downloads: counted per version and in total, none lost under concurrency.
    let downloads = (0..24).map(|i| {
        let url = market.url(&format!(
            "/packages/hello/{}/download",
            if i % 3 == 0 { "0.1.0" } else { "0.2.0" }
        ));
        tokio::spawn(async move { reqwest::get(url).await.unwrap().status() })
    });
    for d in downloads {
        assert_eq!(d.await.unwrap(), 200);
    }
    let missing = reqwest::get(market.url("/packages/hello/9.9.9/download"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let tally_download = reqwest::get(market.url("/packages/tally/0.1.0/download"))
        .await
        .unwrap();
    assert_eq!(tally_download.status(), 200);
    let hello = market.get("/api/v1/packages/hello").await;
    assert_eq!(hello["downloads"]["total"], 24, "{}", hello["downloads"]);
    assert_eq!(hello["downloads"]["versions"]["0.1.0"], 8);
    assert_eq!(hello["downloads"]["versions"]["0.2.0"], 16);
    assert_eq!(hello["verified"], true);
    assert!(hello["readme"].as_str().unwrap().starts_with("# Hello"));
    assert!(
        hello["changelog"]
            .as_str()
            .unwrap()
            .contains("First release")
    );

    // Search: text, category, capability, facets, sorting, pages and clear errors.
    let all = market.get("/api/v1/search").await;
    assert_eq!(all["total"], 3);
    let ids = |v: &Value| -> Vec<String> {
        v["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["latest"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&all)[0], "hello", "most downloaded first");
    assert_eq!(
        all["facets"]["categories"]["examples"], 2,
        "{}",
        all["facets"]
    );
    assert_eq!(all["facets"]["categories"]["analytics"], 1);
    assert_eq!(all["facets"]["capabilities"]["kv"], 3);
    assert_eq!(all["facets"]["capabilities"]["events"], 1);
    assert_eq!(ids(&market.get("/api/v1/search?q=visitors").await).len(), 2);
    assert_eq!(
        ids(&market
            .get("/api/v1/search?q=visitors&category=content")
            .await),
        ["greeter"]
    );
    assert_eq!(
        ids(&market.get("/api/v1/search?capability=events").await),
        ["tally"]
    );
    let by_name = market
        .get("/api/v1/search?sort=name&per_page=2&page=2")
        .await;
    assert_eq!(ids(&by_name), ["tally"]);
    assert_eq!(
        (by_name["total"].as_u64(), by_name["page"].as_u64()),
        (Some(3), Some(2))
    );
    let updated = market.get("/api/v1/search?sort=updated").await;
    assert_eq!(ids(&updated).len(), 3);
    assert!(
        updated["packages"][0]["updated_at"].as_i64()
            >= updated["packages"][2]["updated_at"].as_i64()
    );
    let bad = reqwest::get(market.url("/api/v1/search?sort=stars"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sort=downloads, rating, updated or name"),
        "{bad}"
    );
    let bad = reqwest::get(market.url("/api/v1/search?page=two"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // Accounts: sign-up checks, sign-in, rate limits, sessions.
    let http = reqwest::Client::new();
    let weak = http
        .post(market.url("/api/v1/users"))
        .json(&json!({ "email": "a@example.com", "name": "A", "password": "short" }))
        .send()
        .await
        .unwrap();
    assert_eq!(weak.status(), 422);
    assert_eq!(error_code(&weak.json().await.unwrap()), "weak_password");
    let malformed = http
        .post(market.url("/api/v1/users"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(error_code(&malformed.json().await.unwrap()), "bad_request");
    let alice = sign_up(&market, "Alice@Example.com", "Alice").await;
    let again = http
        .post(market.url("/api/v1/users"))
        .json(&json!({ "email": "alice@example.com", "name": "Alice 2", "password": "another long one" }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    // Behind a TLS-terminating proxy the cookie is marked Secure.
    let proxied = http
        .post(market.url("/api/v1/session"))
        .header("x-forwarded-proto", "https")
        .json(&json!({ "email": "alice@example.com", "password": "correct horse battery" }))
        .send()
        .await
        .unwrap();
    assert!(
        proxied.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .ends_with("; Secure")
    );
    let me: Value = alice
        .http
        .get(market.url("/api/v1/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["name"], "Alice");
    assert_eq!(me["csrf_token"], alice.csrf.as_str());
    assert!(
        me["user"].get("email").is_none(),
        "emails are not shown: {me}"
    );

    let sign_in = async |password: &str| {
        http.post(market.url("/api/v1/session"))
            .json(&json!({ "email": "alice@example.com", "password": password }))
            .send()
            .await
            .unwrap()
    };
    let ok = sign_in("correct horse battery").await;
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("ucms_market=")
    );
    let wrong = sign_in("not the password").await;
    assert_eq!(wrong.status(), 401);
    let wrong: Value = wrong.json().await.unwrap();
    assert_eq!(
        wrong["error"]["message"],
        "the email or the password is wrong"
    );
    let unknown = http
        .post(market.url("/api/v1/session"))
        .json(&json!({ "email": "nobody@example.com", "password": "whatever it is" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unknown.status(),
        401,
        "an unknown account looks like a wrong password"
    );
    // Five attempts a minute per account (the test's setting): three used, two more pass, then 429.
    for _ in 0..2 {
        assert_eq!(sign_in("not the password").await.status(), 401);
    }
    let limited = sign_in("correct horse battery").await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));

    // Reviews: CSRF required, one per user, editable, averaged, deletable, reportable.
    let no_csrf = alice
        .http
        .put(market.url("/api/v1/packages/hello/reviews/mine"))
        .json(&json!({ "rating": 5, "body": "Lovely" }))
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), 403);
    let anonymous = http
        .put(market.url("/api/v1/packages/hello/reviews/mine"))
        .header("x-csrf-token", &alice.csrf)
        .json(&json!({ "rating": 5, "body": "Lovely" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.status(),
        401,
        "a CSRF token without the cookie is nothing"
    );
    let review = async |who: &Visitor, package: &str, rating: i64, body: &str| {
        who.http
            .put(market.url(&format!("/api/v1/packages/{package}/reviews/mine")))
            .header("x-csrf-token", &who.csrf)
            .json(&json!({ "rating": rating, "body": body }))
            .send()
            .await
            .unwrap()
    };
    let written: Value = review(&alice, "hello", 5, "Lovely")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(written["rating"], json!({ "average": 5.0, "count": 1 }));
    assert_eq!(review(&alice, "hello", 6, "Too good").await.status(), 422);
    assert_eq!(review(&alice, "nothing", 3, "?").await.status(), 404);
    let bob = sign_up(&market, "bob@example.com", "Bob <b>").await;
    review(&bob, "hello", 2, "Needs <b>more</b> greetings").await;
    let edited: Value = review(&alice, "hello", 4, "Lovely, but small")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        edited["rating"],
        json!({ "average": 3.0, "count": 2 }),
        "one review per user, edited"
    );
    let listed = market.get("/api/v1/packages/hello/reviews").await;
    assert_eq!(listed["reviews"].as_array().unwrap().len(), 2);
    assert_eq!(
        listed["reviews"][0]["author_name"], "Alice",
        "the last edited first"
    );
    assert_eq!(listed["reviews"][0]["body"], "Lovely, but small");
    let rated = market.get("/api/v1/search?sort=rating").await;
    assert_eq!(ids(&rated)[0], "hello");
    assert_eq!(rated["packages"][0]["rating"]["count"], 2);

    let report = async |who: &Visitor, author: &str, reason: &str| {
        who.http
            .post(market.url(&format!("/api/v1/packages/hello/reviews/{author}/report")))
            .header("x-csrf-token", &who.csrf)
            .json(&json!({ "reason": reason }))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(report(&alice, &bob.id, "markup in a review").await, 201);
    assert_eq!(
        report(&alice, &bob.id, "again").await,
        201,
        "reporting twice is one report"
    );
    assert_eq!(report(&bob, &bob.id, "myself").await, 400);
    assert_eq!(report(&bob, "nobody", "ghost").await, 404);
    assert_eq!(report(&bob, &alice.id, "").await, 422);
    let not_admin = alice
        .http
        .get(market.url("/api/v1/reports"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_admin.status(), 403);
    market
        .registry
        .set_admin("alice@example.com", true)
        .await
        .unwrap();
    let reports: Value = alice
        .http
        .get(market.url("/api/v1/reports"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reports["reports"].as_array().unwrap().len(), 1, "{reports}");
    assert_eq!(reports["reports"][0]["reason"], "markup in a review");
    assert_eq!(reports["reports"][0]["author_name"], "Bob <b>");

    let deleted = bob
        .http
        .delete(market.url("/api/v1/packages/hello/reviews/mine"))
        .header("x-csrf-token", &bob.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let after = market.get("/api/v1/packages/hello").await;
    assert_eq!(after["rating"], json!({ "average": 4.0, "count": 1 }));
    let reports: Value = alice
        .http
        .get(market.url("/api/v1/reports"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        reports["reports"].as_array().unwrap().is_empty(),
        "a deleted review's reports go with it"
    );

    // Sign-out ends the session.
    let out = alice
        .http
        .delete(market.url("/api/v1/session"))
        .header("x-csrf-token", &alice.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let gone = alice
        .http
        .get(market.url("/api/v1/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 401);

    market.close().await;
}

#[tokio::test]
async fn marketplace_api_on_sqlite() {
    marketplace_api(Backend::Sqlite).await;
}

#[tokio::test]
async fn marketplace_api_on_postgres() {
    marketplace_api(Backend::Postgres).await;
}

#[tokio::test]
async fn pages_are_escaped_sanitized_and_locked_down() {
    let market = Market::start(Backend::Sqlite).await.unwrap();
    let home = reqwest::get(market.url("/")).await.unwrap();
    assert_eq!(home.status(), 200);
    let csp = home.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(home.headers()["x-content-type-options"], "nosniff");
    let text = home.text().await.unwrap();
    for id in ["hello", "tally", "greeter"] {
        assert!(
            text.contains(&format!("href=\"/plugins/{id}\"")),
            "{id} is listed"
        );
    }
    let filtered = reqwest::get(market.url("/?q=visitors&category=content"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(filtered.contains("/plugins/greeter") && !filtered.contains("href=\"/plugins/hello\""));

    let page = reqwest::get(market.url("/plugins/hello"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<strong>Bold</strong>"),
        "the README is rendered"
    );
    assert!(
        !page.contains("window.pwned"),
        "no script from the README: {page}"
    );
    assert!(!page.contains("onerror"), "no handlers from the README");
    assert!(page.contains("First release"), "the changelog is shown");
    assert!(page.contains("kv:"), "capabilities are listed");
    assert!(page.contains("Works with host API 0.2.1"));
    assert!(page.contains("✓ verified"));
    let greeter = reqwest::get(market.url("/plugins/greeter"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!greeter.contains("✓ verified"), "acme's key is revoked");
    let missing = reqwest::get(market.url("/plugins/nothing")).await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(
        missing
            .text()
            .await
            .unwrap()
            .contains("no plugin 'nothing' is published here")
    );

    // Forms: sign up through the page, review with the CSRF token, refused without it.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cross = anonymous
        .post(market.url("/signup"))
        .header("origin", "https://evil.example")
        .form(&[
            ("email", "eve@example.com"),
            ("name", "Eve"),
            ("password", "long enough password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let signed_up = anonymous
        .post(market.url("/signup"))
        .form(&[
            ("email", "carol@example.com"),
            ("name", "<script>x</script>Carol"),
            ("password", "long enough password"),
            ("next", "/plugins/hello"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), 303);
    assert_eq!(signed_up.headers()["location"], "/plugins/hello");
    let browser = client_with(&cookie_of(&signed_up), false);
    let page = browser
        .get(market.url("/plugins/hello"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("&lt;script&gt;x&lt;/script&gt;Carol"),
        "names are escaped"
    );
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let forged = browser
        .post(market.url("/plugins/hello/review"))
        .form(&[("rating", "1"), ("body", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let posted = browser
        .post(market.url("/plugins/hello/review"))
        .form(&[
            ("rating", "4"),
            ("body", "Nice <em>plugin</em>"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 303);
    let page = browser
        .get(market.url("/plugins/hello"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Nice &lt;em&gt;plugin&lt;/em&gt;"),
        "reviews are escaped"
    );
    assert!(page.contains("Rated 4.0 out of 5 by 1 person"));
    let bad = browser
        .post(market.url("/plugins/hello/review"))
        .form(&[("rating", "9"), ("body", "x"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("give 1 to 5 stars"));

    // Reports are for the registry's admins only.
    let reports = browser.get(market.url("/reports")).send().await.unwrap();
    assert_eq!(reports.status(), 403);
    market
        .registry
        .set_admin("carol@example.com", true)
        .await
        .unwrap();
    let reports = browser.get(market.url("/reports")).send().await.unwrap();
    assert_eq!(reports.status(), 200);
    assert!(
        reports
            .text()
            .await
            .unwrap()
            .contains("Nothing is reported.")
    );

    let publisher = reqwest::get(market.url("/publishers/ucms"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(publisher.contains("/plugins/hello") && publisher.contains("trusted"));
    market.close().await;
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The public marketplace in Chromium: search by text and category, a plugin page, sign up, sign
/// in, a review, the rating updating, an edit. Screenshots go to target/test-output/marketplace/.
#[tokio::test]
async fn marketplace_in_chromium() {
    let root = workspace_root();
    let browser_dir = root.join("tests/browser");
    let chromium = std::env::var("UCMS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<String> = [
        (!Path::new(&chromium).exists())
            .then(|| format!("Chromium at {chromium} (apt-get install chromium)")),
        (!browser_dir.join("node_modules/playwright-core").exists())
            .then(|| format!("playwright-core (npm ci in {})", browser_dir.display())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        assert!(
            !ci(),
            "the browser test cannot run: missing {}",
            missing.join(" and ")
        );
        eprintln!(
            "SKIPPED (missing {}); under CI=true this fails",
            missing.join(" and ")
        );
        return;
    }
    let market = Market::start(Backend::Sqlite).await.unwrap();
    let out = root.join("target/test-output/marketplace");
    std::fs::create_dir_all(&out).unwrap();
    let output = tokio::process::Command::new("node")
        .arg(browser_dir.join("marketplace.mjs"))
        .env("MARKET_URL", market.url(""))
        .env("SCREENSHOTS", &out)
        .env("CHROMIUM", &chromium)
        .current_dir(&browser_dir)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser script failed:\n{stdout}\n{stderr}"
    );

    // What the browser did is in the registry.
    let reviews = market.registry.reviews("hello").await.unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].rating, 3, "the edited rating");
    assert!(reviews[0].body.contains("edited"), "{:?}", reviews[0]);
    for shot in [
        "home",
        "search",
        "plugin",
        "signed-up",
        "reviewed",
        "edited",
    ] {
        assert!(
            out.join(format!("{shot}.png")).exists(),
            "{shot}.png was saved"
        );
    }
    market.close().await;
}
