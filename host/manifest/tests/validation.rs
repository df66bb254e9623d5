//! Manifest validation: what is accepted, and — as snapshots, because error messages are product —
//! what plugin authors are told when something is wrong.

use ucms_manifest::{Access, Capability, Manifest, Method};

const VALID: &str = r#"
id = "shop"
version = "1.2.3"
publisher = "acme"
description = "A shop"
license = "MIT"
homepage = "https://example.com/shop"
categories = ["commerce"]
api = "^0.1"

[dependencies]
content = "^2.1"

[capabilities]
kv = true
log = {}
events = { publish = ["shop.*", "orders.placed"] }
http-client = { hosts = ["api.stripe.com", "*.example.com:8443"] }

[permissions]
"orders.create" = "Place orders"

[[routes]]
method = "get"
path = "/products/{id}"
public = true

[[routes]]
method = "POST"
path = "/orders"
permission = "orders.create"

[[subscriptions]]
topic = "content.*"

[settings.currency]
type = "string"
default = "EUR"

[secrets]
stripe-key = "The Stripe API key"

[limits]
memory-mib = 128
timeout-ms = 2000

[[hooks]]
point = "content.before-save"
priority = 10
on-failure = "skip"

[[schedules]]
name = "abandoned-carts"
cron = "*/15 * * * *"

[[admin-pages]]
path = "/orders"
title = "Orders"
entry = "assets/admin/orders.html"
permission = "orders.create"

[provides]
"commerce/orders" = "1.0.0"

[requires]
"content/entries" = "^1"
"#;

fn problems(text: &str) -> String {
    Manifest::parse(text)
        .expect_err("the manifest should be refused")
        .to_string()
}

/// VALID with one line replaced.
fn with(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "{from} is not in the test manifest");
    VALID.replacen(from, to, 1)
}

#[test]
fn a_complete_manifest_parses() {
    let m = Manifest::parse(VALID).unwrap();
    assert_eq!(m.id.as_str(), "shop");
    assert_eq!(m.version, semver::Version::new(1, 2, 3));
    assert_eq!(m.dependencies.len(), 1);
    assert_eq!(
        m.capabilities.granted(),
        [
            Capability::Kv,
            Capability::Log,
            Capability::Events,
            Capability::HttpClient
        ]
    );
    assert!(
        m.capabilities
            .events
            .as_ref()
            .unwrap()
            .may_publish("shop.item.added")
    );
    assert!(
        !m.capabilities
            .events
            .as_ref()
            .unwrap()
            .may_publish("content.saved")
    );
    assert!(
        m.capabilities
            .http_client
            .as_ref()
            .unwrap()
            .allows("a.example.com", 8443)
    );
    assert!(
        !m.capabilities
            .http_client
            .as_ref()
            .unwrap()
            .allows("a.example.com", 443)
    );
    assert_eq!(m.routes[0].method, Method::Get);
    assert_eq!(m.routes[0].access, Access::Public);
    assert_eq!(
        m.routes[1].access,
        Access::Permission("orders.create".into())
    );
    assert_eq!(
        m.qualified_permission("orders.create"),
        "shop.orders.create"
    );
    assert!(m.subscribes_to("content.entry.published"));
    assert_eq!(m.limits.memory_mib, Some(128));
    assert_eq!(
        m.settings["currency"].default,
        Some(serde_json::json!("EUR"))
    );
    assert_eq!(m.hooks[0].point, "content.before-save");
    assert_eq!(
        (m.hooks[0].priority, m.hooks[0].on_failure),
        (10, ucms_manifest::OnFailure::Skip)
    );
    assert_eq!(m.schedules[0].cron, "*/15 * * * *");
    assert_eq!(m.admin_pages[0].entry, "assets/admin/orders.html");
    assert_eq!(m.provides["commerce/orders"], semver::Version::new(1, 0, 0));
    assert!(m.requires["content/entries"].matches(&semver::Version::new(1, 4, 0)));
}

#[test]
fn hooks_schedules_pages_and_interfaces() {
    insta::assert_snapshot!(
        "bad_cron",
        problems(&with(
            r#"cron = "*/15 * * * *""#,
            r#"cron = "every quarter hour""#
        ))
    );
    insta::assert_snapshot!(
        "bad_hook_point",
        problems(&with(
            r#"point = "content.before-save""#,
            r#"point = "beforesave""#
        ))
    );
    insta::assert_snapshot!(
        "bad_hook_policy",
        problems(&with(r#"on-failure = "skip""#, r#"on-failure = "ignore""#))
    );
    insta::assert_snapshot!(
        "admin_page_outside_assets",
        problems(&with(
            r#"entry = "assets/admin/orders.html""#,
            r#"entry = "../secret.html""#
        ))
    );
    insta::assert_snapshot!(
        "bad_interface",
        problems(&with(
            r#""commerce/orders" = "1.0.0""#,
            r#""orders" = "1.0.0""#
        ))
    );
}

#[test]
fn toml_syntax_errors_point_at_the_line() {
    insta::assert_snapshot!(
        "syntax",
        problems(&with(r#"license = "MIT""#, "license = MIT"))
    );
}

#[test]
fn unknown_keys_list_what_is_allowed() {
    insta::assert_snapshot!(
        "unknown_top_level_key",
        problems(&with("license", "licence"))
    );
    insta::assert_snapshot!(
        "unknown_capability",
        problems(&with("kv = true", "database = true"))
    );
}

#[test]
fn identity_fields() {
    insta::assert_snapshot!(
        "bad_id",
        problems(&with(r#"id = "shop""#, r#"id = "My Shop""#))
    );
    insta::assert_snapshot!(
        "reserved_id",
        problems(&with(r#"id = "shop""#, r#"id = "ucms""#))
    );
    insta::assert_snapshot!(
        "bad_version",
        problems(&with(r#"version = "1.2.3""#, r#"version = "1.2""#))
    );
    insta::assert_snapshot!(
        "bad_api",
        problems(&with(r#"api = "^0.1""#, r#"api = "latest""#))
    );
    insta::assert_snapshot!("missing_id", problems(&with(r#"id = "shop""#, "")));
}

#[test]
fn routes_must_say_who_may_call_them() {
    insta::assert_snapshot!("route_without_access", problems(&with("public = true", "")));
    insta::assert_snapshot!(
        "route_with_undeclared_permission",
        problems(&with(
            r#"permission = "orders.create""#,
            r#"permission = "orders.delete""#
        ))
    );
    insta::assert_snapshot!(
        "route_public_and_permission",
        problems(&with(
            r#"permission = "orders.create""#,
            "permission = \"orders.create\"\npublic = true"
        ))
    );
    insta::assert_snapshot!(
        "route_bad_method",
        problems(&with(r#"method = "get""#, r#"method = "FETCH""#))
    );
    insta::assert_snapshot!(
        "route_bad_path",
        problems(&with(r#"path = "/orders""#, r#"path = "orders/../x""#))
    );
    insta::assert_snapshot!(
        "route_conflict",
        problems(&with(
            "public = true",
            "public = true\n\n[[routes]]\nmethod = \"GET\"\npath = \"/products/{slug}\"\npublic = true"
        ))
    );
}

#[test]
fn capability_scopes() {
    insta::assert_snapshot!(
        "events_without_topics",
        problems(&with(
            r#"events = { publish = ["shop.*", "orders.placed"] }"#,
            "events = true"
        ))
    );
    insta::assert_snapshot!(
        "bad_topic",
        problems(&with(r#""orders.placed""#, r#""Orders Placed""#))
    );
    insta::assert_snapshot!(
        "bad_host",
        problems(&with(
            r#""api.stripe.com""#,
            r#""https://api.stripe.com/v1""#
        ))
    );
}

#[test]
fn settings_and_limits() {
    insta::assert_snapshot!(
        "setting_default_wrong_type",
        problems(&with(r#"default = "EUR""#, "default = 978"))
    );
    insta::assert_snapshot!(
        "setting_unknown_type",
        problems(&with(r#"type = "string""#, r#"type = "money""#))
    );
    insta::assert_snapshot!(
        "limit_out_of_range",
        problems(&with("memory-mib = 128", "memory-mib = 0"))
    );
    insta::assert_snapshot!(
        "limit_unknown",
        problems(&with("memory-mib = 128", "cpu-cores = 2"))
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = with(r#"id = "shop""#, r#"id = "Shop""#)
        .replacen(r#"version = "1.2.3""#, r#"version = "one""#, 1)
        .replacen("public = true", "", 1);
    let err = Manifest::parse(&text).unwrap_err();
    assert_eq!(err.problems().len(), 3, "{err}");
    insta::assert_snapshot!("several_problems", err.to_string());
}

#[test]
fn data_capabilities_parse_with_their_declarations() {
    let text = with(
        "kv = true",
        "kv = true\ncache = true\nblobs = { max-mib = 64, max-blob-mib = 8 }",
    );
    let text = text.replace(
        "[permissions]",
        r#"[capabilities.documents]
max-documents = 5000

[[capabilities.documents.indexes]]
collection = "notes"
name = "slug"
fields = ["slug"]
unique = true

[[capabilities.documents.search]]
collection = "notes"
fields = ["title", "body"]
language = "german"

[permissions]"#,
    );
    let manifest = Manifest::parse(&text).expect("valid");
    let caps = &manifest.capabilities;
    assert!(caps.cache);
    assert_eq!(caps.blobs.as_ref().unwrap().max_blob_mib, Some(8));
    let docs = caps.documents.as_ref().unwrap();
    assert_eq!(docs.max_documents, Some(5000));
    assert_eq!(docs.indexes[0].fields, ["slug"]);
    assert!(docs.indexes[0].unique);
    assert_eq!(docs.search[0].language, "german");
}

#[test]
fn data_capability_declarations_are_checked() {
    insta::assert_snapshot!(
        "bad_document_declarations",
        problems(
            &with("kv = true", "kv = true\nblobs = { max-mib = 0 }").replace(
                "[permissions]",
                r#"[capabilities.documents]

[[capabilities.documents.indexes]]
collection = "Notes"
name = "by slug"
fields = []

[[capabilities.documents.search]]
collection = "notes"
fields = ["title..x"]
language = "Klingon!"

[permissions]"#
            )
        )
    );
}

#[test]
fn upload_routes_need_blobs_and_a_body_method() {
    insta::assert_snapshot!(
        "upload_route_without_blobs",
        problems(&with(
            r#"path = "/products/{id}""#,
            r#"path = "/products/{id}"
upload = true"#
        ))
    );
}

#[test]
fn site_hosts_lets_the_site_choose_the_destinations() {
    let site = Manifest::parse(&with(
        r#"http-client = { hosts = ["api.stripe.com", "*.example.com:8443"] }"#,
        "http-client = { site-hosts = true }",
    ))
    .unwrap();
    let grant = site.capabilities.http_client.as_ref().unwrap();
    assert!(grant.site_hosts && grant.hosts.is_empty());
    assert!(!grant.allows("api.stripe.com", 443));
    assert!(
        site.capabilities
            .describe()
            .iter()
            .any(|line| line.ends_with("(to the hosts the site's policy grants it)")),
        "{:?}",
        site.capabilities.describe()
    );
    let none = problems(&with(
        r#"http-client = { hosts = ["api.stripe.com", "*.example.com:8443"] }"#,
        "http-client = { hosts = [] }",
    ));
    assert!(none.contains("grants no destination"), "{none}");
    assert!(none.contains("site-hosts = true"), "{none}");
}
