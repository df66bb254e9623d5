//! `tally`: publishes events on request and counts every delivery it handles, so the host's tests
//! can check at-least-once delivery, ordering and redelivery across nodes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use ucms_sdk::{Error, Event, Plugin, Request, Response, Result, Router, events, kv};

struct Tally;

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    n: u32,
    slow_ms: u64,
    fail: u32,
    /// Handle without recording anything (the event benchmark's no-op subscriber).
    #[serde(default)]
    quiet: bool,
}

impl Plugin for Tally {
    fn router() -> Router {
        Router::new()
            .post("/publish", publish)
            .post("/heal", heal)
            .get("/seen", seen)
    }

    fn on_event(event: Event) -> Result<()> {
        let payload: Payload = event.json()?;
        if payload.quiet {
            return Ok(());
        }
        if event.attempt == 1 && payload.slow_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(payload.slow_ms));
        }
        kv::set(
            &format!("attempt:{}:{:04}", event.id, event.attempt),
            &event.attempt,
        )?;
        if event.attempt <= payload.fail && kv::get_bytes("healed")?.is_none() {
            return Err(Error::unprocessable(format!(
                "event {} fails on attempt {}",
                payload.n, event.attempt
            )));
        }
        let order = kv::increment("order", 1)?;
        kv::set(&format!("order:{order:08}"), &event.id)?;
        kv::increment(&format!("seen:{}", event.id), 1)?;
        Ok(())
    }
}

fn publish(req: Request) -> Result<Response> {
    let n: u32 = req.query("n").and_then(|n| n.parse().ok()).unwrap_or(1);
    let slow_ms: u64 = req
        .query("slow-ms")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let fail: u32 = req.query("fail").and_then(|n| n.parse().ok()).unwrap_or(0);
    let key = req.query("key");
    let mut ids = Vec::new();
    for i in 0..n {
        let payload = serde_json::to_vec(&Payload {
            n: i,
            slow_ms,
            fail,
            quiet: false,
        })
        .map_err(|e| Error::internal(e.to_string()))?;
        ids.push(events::publish_raw("tally.counted", key, &payload)?);
    }
    Ok(Response::json(&json!({ "events": ids })))
}

fn heal(_req: Request) -> Result<Response> {
    kv::set("healed", &true)?;
    Ok(Response::json(&json!({ "healed": true })))
}

fn seen(_req: Request) -> Result<Response> {
    let mut deliveries = BTreeMap::new();
    for key in kv::keys("seen:")? {
        let count: i64 = kv::get(&key)?.unwrap_or(0);
        deliveries.insert(key["seen:".len()..].to_string(), count);
    }
    let mut attempts: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for key in kv::keys("attempt:")? {
        if let Some((id, _)) = key["attempt:".len()..].rsplit_once(':') {
            let attempt: u32 = kv::get(&key)?.unwrap_or(0);
            attempts.entry(id.to_string()).or_default().push(attempt);
        }
    }
    let mut order = Vec::new();
    for key in kv::keys("order:")? {
        if let Some(id) = kv::get::<String>(&key)? {
            order.push(id);
        }
    }
    Ok(Response::json(
        &json!({ "deliveries": deliveries, "attempts": attempts, "order": order }),
    ))
}

ucms_sdk::export!(Tally);
