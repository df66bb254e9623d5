//! `legacy-0-2`: a plugin built for `ucms:plugin@0.2.0` with `wit_bindgen::generate!` against the
//! frozen `wit/v0.2.0`, not with the SDK (which targets a newer API). The host links only the
//! newest 0.2.x imports and relies on wasmtime matching `@0.2.0` imports to `@0.2.1` definitions;
//! this component proves it.
//!
//! - `POST /count` (public): `kv.increment("count", 1)` → `{"value": n, "principal": kind}`
//! - `POST /publish` (public): publishes `{}` on `legacy-two.pinged` → `{"event": id}`
//! - `GET /state` (public): `{"count": n, "delivered": [event ids], "api": "0.2.0"}`
//! - events of `legacy-two.pinged`: writes `delivered:<event id>` into kv

#![allow(unsafe_code)]

wit_bindgen::generate!({
    world: "ucms:plugin/plugin@0.2.0",
    path: ["../../../wit/v0.2.0/host", "../../../wit/v0.2.0/plugin"],
    generate_all,
});

use exports::ucms::plugin::{event_handler, http_handler, lifecycle};
use serde_json::{Value, json};
use ucms::host::types::Principal;
use ucms::host::{auth, events, kv};

/// The API version this component was built for, as `ucms_sdk::export!` stamps it.
#[used]
#[unsafe(link_section = "ucms:api-version")]
static UCMS_API_VERSION: [u8; 5] = *b"0.2.0";

struct LegacyTwo;

impl http_handler::Guest for LegacyTwo {
    fn handle(request: http_handler::Request) -> http_handler::Response {
        let result = match (request.method.as_str(), request.route.as_str()) {
            ("POST", "/count") => kv::increment("count", 1)
                .map(|value| json!({ "value": value, "principal": kind(&auth::current()) }))
                .map_err(|e| format!("{e:?}")),
            ("POST", "/publish") => events::publish("legacy-two.pinged", None, b"{}")
                .map(|id| json!({ "event": id }))
                .map_err(|e| format!("{e:?}")),
            ("GET", "/state") => state(),
            (method, route) => Err(format!("no handler for {method} {route}")),
        };
        match result {
            Ok(body) => json_response(200, &body),
            Err(message) => json_response(
                500,
                &json!({ "error": { "code": "legacy_error", "message": message } }),
            ),
        }
    }
}

fn state() -> Result<Value, String> {
    let count = kv::get("count")
        .map_err(|e| format!("{e:?}"))?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(0);
    let page = kv::list_keys("delivered:", None, 1000).map_err(|e| format!("{e:?}"))?;
    let delivered: Vec<String> = page
        .keys
        .iter()
        .map(|k| k.trim_start_matches("delivered:").to_string())
        .collect();
    Ok(json!({ "count": count, "delivered": delivered, "api": "0.2.0" }))
}

impl event_handler::Guest for LegacyTwo {
    fn handle(event: event_handler::Event) -> Result<(), String> {
        kv::set(&format!("delivered:{}", event.id), event.topic.as_bytes())
            .map_err(|e| format!("recording event {} failed: {e:?}", event.id))
    }
}

impl lifecycle::Guest for LegacyTwo {
    fn install() -> Result<(), String> {
        Ok(())
    }

    fn upgrade(_previous_version: String) -> Result<(), String> {
        Ok(())
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

fn json_response(status: u16, body: &Value) -> http_handler::Response {
    http_handler::Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

export!(LegacyTwo);
