//! `legacy`: a plugin built for `ucms:plugin@0.1.0` the way a plugin compiled before 0.2.0 was —
//! directly with `wit_bindgen::generate!` against the frozen `wit/v0.1.0`, not with the SDK (which
//! now targets a newer API). The host's tests install it to check that it keeps working.
//!
//! - `GET /hello` (public): `{"greeting", "api": "0.1.0", "principal": <kind from auth.current>,
//!   "request_principal": <kind from the request>, "can_count": auth.check("count")}`
//! - `POST /count` (`legacy.count`): `kv.increment("count", 1)` → `{"value": n}`
//! - `POST /publish` (`legacy.publish`): publishes the body (or `{}`) on `legacy.pinged`, keyed by
//!   `?key=` when given → `{"event": id}`
//! - `GET /state` (public): `{"installed": <marker or null>, "count": n, "delivered": [event ids]}`
//! - events of `legacy.pinged`: writes `delivered:<event id>` = the topic into kv
//! - `install` writes the marker `installed` = `0.1.0`; `upgrade` writes `upgraded-from`
//!
//! Like the SDK's `export!`, it stamps its API version (`0.1.0`) into the `ucms:api-version`
//! custom section, which the host reads before instantiating anything.

#![allow(unsafe_code)]

wit_bindgen::generate!({
    world: "ucms:plugin/plugin@0.1.0",
    path: ["../../../wit/v0.1.0/host", "../../../wit/v0.1.0/plugin"],
    generate_all,
});

use exports::ucms::plugin::{event_handler, http_handler, lifecycle};
use serde_json::{Value, json};
use ucms::host::types::Principal;
use ucms::host::{auth, events, kv, log};

/// The API version this component was built for, read by the host before instantiation. The same
/// bytes `ucms_sdk::export!` writes for its own version.
#[used]
#[unsafe(link_section = "ucms:api-version")]
static UCMS_API_VERSION: [u8; 5] = *b"0.1.0";

const TOPIC: &str = "legacy.pinged";

struct Legacy;

impl http_handler::Guest for Legacy {
    fn handle(request: http_handler::Request) -> http_handler::Response {
        let result = match (request.method.as_str(), request.route.as_str()) {
            ("GET", "/hello") => Ok(hello(&request)),
            ("GET", "/state") => state(),
            ("POST", "/count") => count(),
            ("POST", "/publish") => publish(&request),
            (method, route) => Err((404, format!("no handler for {method} {route}"))),
        };
        match result {
            Ok(body) => json_response(200, &body),
            Err((status, message)) => json_response(
                status,
                &json!({ "error": { "code": "legacy_error", "message": message } }),
            ),
        }
    }
}

type Handled = Result<Value, (u16, String)>;

fn hello(request: &http_handler::Request) -> Value {
    log::write(
        log::Level::Info,
        "greeting",
        &[("request".into(), request.request_id.clone())],
    );
    json!({
        "greeting": "Hello from a plugin built for API 0.1.0",
        "api": "0.1.0",
        "principal": kind(&auth::current()),
        "request_principal": kind(&request.principal),
        "can_count": auth::check("count"),
    })
}

fn count() -> Handled {
    let value = kv::increment("count", 1).map_err(kv_error)?;
    Ok(json!({ "value": value }))
}

fn publish(request: &http_handler::Request) -> Handled {
    let payload = if request.body.is_empty() {
        b"{}".to_vec()
    } else {
        request.body.clone()
    };
    let key = request
        .query
        .iter()
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v.as_str());
    let event = events::publish(TOPIC, key, &payload).map_err(|e| match e {
        events::PublishError::NotPermitted(m) | events::PublishError::Invalid(m) => (500, m),
        events::PublishError::Unavailable(m) => (503, m),
    })?;
    log::write(
        log::Level::Info,
        "published",
        &[("event".into(), event.clone())],
    );
    Ok(json!({ "event": event }))
}

fn state() -> Handled {
    let installed = kv::get("installed")
        .map_err(kv_error)?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let count = kv::get("count")
        .map_err(kv_error)?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let mut delivered = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = kv::list_keys("delivered:", cursor.as_deref(), 1000).map_err(kv_error)?;
        delivered.extend(
            page.keys
                .iter()
                .map(|k| k.trim_start_matches("delivered:").to_string()),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(json!({ "installed": installed, "count": count, "delivered": delivered }))
}

impl event_handler::Guest for Legacy {
    fn handle(event: event_handler::Event) -> Result<(), String> {
        kv::set(&format!("delivered:{}", event.id), event.topic.as_bytes())
            .map_err(|e| format!("recording event {} failed: {e:?}", event.id))?;
        log::write(
            log::Level::Info,
            "event delivered",
            &[
                ("event".into(), event.id),
                ("attempt".into(), event.attempt.to_string()),
            ],
        );
        Ok(())
    }
}

impl lifecycle::Guest for Legacy {
    fn install() -> Result<(), String> {
        kv::set("installed", b"0.1.0").map_err(|e| format!("{e:?}"))
    }

    fn upgrade(previous_version: String) -> Result<(), String> {
        kv::set("upgraded-from", previous_version.as_bytes()).map_err(|e| format!("{e:?}"))
    }

    fn uninstall() -> Result<(), String> {
        Ok(())
    }
}

fn kind(principal: &Principal) -> &'static str {
    match principal {
        Principal::Anonymous => "anonymous",
        Principal::User(_) => "user",
        Principal::Token(_) => "token",
        Principal::System => "system",
    }
}

fn kv_error(error: kv::KvError) -> (u16, String) {
    match error {
        kv::KvError::Unavailable(m) => (503, m),
        kv::KvError::QuotaExceeded(m) => (507, m),
        kv::KvError::Invalid(m) | kv::KvError::TypeMismatch(m) => (500, m),
    }
}

fn json_response(status: u16, body: &Value) -> http_handler::Response {
    http_handler::Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

export!(Legacy);
