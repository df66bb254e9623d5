//! The registry and its client over a real socket: publishing with every check, the signed index,
//! caching, yanks, owners, keys, search, rate limits, and the client refusing rollbacks.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ucms_package::archive::{self, Contents};
use ucms_package::keys::SecretKey;
use ucms_package::signature::PackageSignature;
use ucms_package::trust::{TrustError, TrustStore};
use ucms_registry::client::{ClientError, RegistryClient};
use ucms_registry::{Registry, RegistryConfig};
use ucms_test_components::{HELLO, MISBEHAVE};

const API: semver::Version = semver::Version::new(0, 2, 1);

async fn registry(dir: &Path) -> (Arc<Registry>, SocketAddr) {
    let mut config = RegistryConfig::new(dir, vec![API]);
    config.writes_per_minute = 1000;
    start(config).await
}

async fn start(config: RegistryConfig) -> (Arc<Registry>, SocketAddr) {
    ucms_registry::client::install_crypto_provider();
    let registry = Registry::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = registry.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (registry, addr)
}

fn contents(guest: ucms_test_components::Guest, manifest: &str) -> Contents {
    Contents {
        manifest_text: manifest.to_string(),
        manifest: ucms_manifest::Manifest::parse(manifest).unwrap(),
        wasm: guest.wasm_bytes(),
        readme: None,
        changelog: None,
        assets: Default::default(),
    }
}

fn hello(version: &str) -> Vec<u8> {
    let manifest = HELLO
        .manifest()
        .replace(r#"version = "0.1.0""#, &format!(r#"version = "{version}""#));
    archive::pack(&contents(HELLO, &manifest))
}

/// A site's client that trusts this registry.
fn site_client(registry: &Registry, addr: SocketAddr, cache: &Path) -> RegistryClient {
    let mut trust = TrustStore::new();
    trust.trust_registry(registry.public_key().key().unwrap());
    RegistryClient::new(&format!("http://{addr}"), cache, trust).unwrap()
}

struct Publisher {
    key: SecretKey,
    token: String,
}

async fn publisher(registry: &Registry, name: &str) -> Publisher {
    let token = registry.add_publisher(name).await.unwrap().token;
    Publisher {
        key: SecretKey::generate(name),
        token,
    }
}

async fn publish(
    client: &RegistryClient,
    p: &Publisher,
    archive: Vec<u8>,
) -> Result<ucms_package::index::IndexEntry, ClientError> {
    let signature = PackageSignature::sign(&p.key, &archive);
    client
        .publish(&p.token, archive, &signature, Some(&p.key.public_file()))
        .await
}

#[tokio::test]
async fn publish_then_install_side_fetches_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, addr) = registry(&dir.path().join("registry")).await;
    let ucms = publisher(&registry, "ucms").await;
    let mut client = site_client(&registry, addr, &dir.path().join("cache"));

    let entry = publish(&client, &ucms, hello("0.1.0")).await.unwrap();
    assert_eq!(
        (entry.id.as_str(), entry.version.to_string().as_str()),
        ("hello", "0.1.0")
    );
    assert!(entry.capabilities[0].starts_with("kv"));

    let snapshot = client.refresh().await.unwrap().clone();
    assert!(snapshot.packages.contains_key("hello"));
    let entries = client.index("hello").await.unwrap().unwrap();
    assert_eq!(entries.len(), 1);
    assert!(client.index("nothing").await.unwrap().is_none());

    let mut seen = 0;
    let bytes = client
        .download(&entries[0], &mut |n, _| seen = n)
        .await
        .unwrap();
    assert_eq!(seen, bytes.len() as u64);
    let trusted = client
        .trust()
        .verify_package(
            &bytes,
            Some(&entries[0].signature),
            "ucms",
            ucms_package::unix_now(),
        )
        .unwrap();
    assert_eq!(trusted.publisher, "ucms");

    // Versions are immutable.
    let err = publish(&client, &ucms, hello("0.1.0")).await.unwrap_err();
    assert_eq!(err.code(), "conflict", "{err}");
    assert!(err.to_string().contains("versions are immutable"), "{err}");
}

#[tokio::test]
async fn publishing_refuses_what_a_site_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, addr) = registry(&dir.path().join("registry")).await;
    let ucms = publisher(&registry, "ucms").await;
    let acme = publisher(&registry, "acme").await;
    let client = site_client(&registry, addr, &dir.path().join("cache"));

    // Another publisher's token.
    let archive = hello("0.1.0");
    let signature = PackageSignature::sign(&acme.key, &archive);
    let err = client
        .publish(
            &acme.token,
            archive.clone(),
            &signature,
            Some(&acme.key.public_file()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "forbidden", "{err}");

    // A key the registry doesn't know, without its public half.
    let signature = PackageSignature::sign(&ucms.key, &archive);
    let err = client
        .publish(&ucms.token, archive.clone(), &signature, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "signature_refused", "{err}");

    // A byte changed after signing.
    let mut tampered = archive.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let err = client
        .publish(
            &ucms.token,
            tampered,
            &signature,
            Some(&ucms.key.public_file()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), "signature_refused" | "invalid_package"),
        "{err}"
    );

    // A component importing what its manifest doesn't grant.
    let manifest = MISBEHAVE
        .manifest()
        .replace(r#"publisher = "ucms-tests""#, r#"publisher = "ucms""#)
        .replace(
            r#"http-client = { hosts = ["127.0.0.1", "localhost", "169.254.169.254", "[::1]", "*.ucms.test"] }"#,
            "",
        );
    let err = publish(
        &client,
        &ucms,
        archive::pack(&contents(MISBEHAVE, &manifest)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "invalid_component", "{err}");
    assert!(
        err.to_string().contains("ucms:host/http-client@0.2.1"),
        "{err}"
    );

    // No token at all.
    let raw = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/packages"))
        .body(archive)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);
}

#[tokio::test]
async fn index_files_are_cacheable_and_yanks_show() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, addr) = registry(&dir.path().join("registry")).await;
    let ucms = publisher(&registry, "ucms").await;
    let mut client = site_client(&registry, addr, &dir.path().join("cache"));
    publish(&client, &ucms, hello("0.1.0")).await.unwrap();
    publish(&client, &ucms, hello("0.2.0")).await.unwrap();

    let http = reqwest::Client::new();
    let first = http
        .get(format!("http://{addr}/index/hello"))
        .send()
        .await
        .unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(first.text().await.unwrap().lines().count(), 2);
    let again = http
        .get(format!("http://{addr}/index/hello"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    let before = client.refresh().await.unwrap().version;
    client
        .set_yanked(&ucms.token, "hello", "0.2.0", true)
        .await
        .unwrap();
    let after = client.refresh().await.unwrap().version;
    assert!(after > before, "every change signs a newer snapshot");
    let entries = client.index("hello").await.unwrap().unwrap();
    assert!(
        entries
            .iter()
            .find(|e| e.version.to_string() == "0.2.0")
            .unwrap()
            .yanked
    );
    assert!(
        !entries
            .iter()
            .find(|e| e.version.to_string() == "0.1.0")
            .unwrap()
            .yanked
    );

    let changed = http
        .get(format!("http://{addr}/index/hello"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        changed.status(),
        200,
        "a yank changes the file and its ETag"
    );
}

#[tokio::test]
async fn a_client_refuses_a_rolled_back_registry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("registry");
    let (current, addr) = registry(&data).await;
    let ucms = publisher(&current, "ucms").await;
    let cache = dir.path().join("cache");
    let mut client = site_client(&current, addr, &cache);
    publish(&client, &ucms, hello("0.1.0")).await.unwrap();
    publish(&client, &ucms, hello("0.2.0")).await.unwrap();
    let seen = client.refresh().await.unwrap().version;

    // A registry with the same key but older state (a restored backup, or an attacker replaying
    // stale metadata) signs a lower version.
    let stale = dir.path().join("stale");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::copy(data.join("registry.key"), stale.join("registry.key")).unwrap();
    let (old, old_addr) = registry(&stale).await;
    assert_eq!(old.public_key(), current.public_key());
    // The site's memory of what it saw at this registry follows it to the (stale) address.
    std::fs::rename(
        cache.join(format!("127.0.0.1_{}", addr.port())),
        cache.join(format!("127.0.0.1_{}", old_addr.port())),
    )
    .unwrap();
    let mut trust = TrustStore::new();
    trust.trust_registry(current.public_key().key().unwrap());
    let mut replayed = RegistryClient::new(&format!("http://{old_addr}"), &cache, trust).unwrap();
    let err = replayed.refresh().await.unwrap_err();
    assert_eq!(err.code(), "metadata_rollback", "{err}");
    assert!(
        err.to_string()
            .contains(&format!("older than version {seen}")),
        "{err}"
    );
}

#[tokio::test]
async fn a_revoked_key_fails_verification_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, addr) = registry(&dir.path().join("registry")).await;
    let ucms = publisher(&registry, "ucms").await;
    let mut client = site_client(&registry, addr, &dir.path().join("cache"));
    publish(&client, &ucms, hello("0.1.0")).await.unwrap();

    let revoked = reqwest::Client::new()
        .post(format!(
            "http://{addr}/api/v1/keys/{}/revoke",
            ucms.key.public().id()
        ))
        .bearer_auth(&ucms.token)
        .json(&serde_json::json!({ "reason": "laptop stolen" }))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);

    client.refresh().await.unwrap();
    let entry = client.index("hello").await.unwrap().unwrap().remove(0);
    let bytes = client.download(&entry, &mut |_, _| {}).await.unwrap();
    let err = client
        .trust()
        .verify_package(
            &bytes,
            Some(&entry.signature),
            "ucms",
            ucms_package::unix_now(),
        )
        .unwrap_err();
    assert!(
        matches!(err, TrustError::Revoked { ref reason, .. } if reason == "laptop stolen"),
        "{err}"
    );

    // And the registry itself refuses new packages signed with it.
    let err = publish(&client, &ucms, hello("0.2.0")).await.unwrap_err();
    assert_eq!(err.code(), "signature_refused", "{err}");
}

#[tokio::test]
async fn owners_search_and_rate_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RegistryConfig::new(dir.path().join("registry"), vec![API]);
    config.writes_per_minute = 3;
    let (registry, addr) = start(config).await;
    let ucms = publisher(&registry, "ucms").await;
    let client = site_client(&registry, addr, &dir.path().join("cache"));
    publish(&client, &ucms, hello("0.1.0")).await.unwrap();

    let found = client.search("greets").await.unwrap();
    assert_eq!(found["packages"][0]["latest"]["id"], "hello");
    let found = client.search("nothing-like-this").await.unwrap();
    assert!(found["packages"].as_array().unwrap().is_empty());
    let by_capability: serde_json::Value = reqwest::get(format!(
        "http://{addr}/api/v1/search?capability=kv&category=examples"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(by_capability["packages"].as_array().unwrap().len(), 1);

    let owners: serde_json::Value =
        reqwest::get(format!("http://{addr}/api/v1/packages/hello/owners"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(owners["owners"], serde_json::json!(["ucms"]));

    // The third write in the minute (one was the publish) is over the limit of 3 only after the
    // bucket empties: two yanks pass, the next is refused.
    client
        .set_yanked(&ucms.token, "hello", "0.1.0", true)
        .await
        .unwrap();
    client
        .set_yanked(&ucms.token, "hello", "0.1.0", false)
        .await
        .unwrap();
    let err = client
        .set_yanked(&ucms.token, "hello", "0.1.0", true)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "rate_limited", "{err}");
}
