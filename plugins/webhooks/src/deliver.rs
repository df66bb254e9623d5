//! Deliveries: the log and the retry queue in one collection.
//!
//! A delivery is one event for one endpoint. It is `pending` (due at `next_attempt_at_ms`),
//! `sending` (claimed by one invocation until `lease_until_ms`), or finished: `delivered` (2xx),
//! `failed` (an answer or refusal that retrying won't change) or `dead` (out of attempts).
//! Claims are compare-and-set on the document's revision, so the event handler and the retry
//! schedule (and several nodes) never send one attempt twice; a claim whose invocation died
//! runs out and the schedule takes the delivery again.

use serde::{Deserialize, Serialize};
use serde_json::json;
use ucms_sdk::documents::{Collection, Doc, Filter};
use ucms_sdk::http::Outbound;
use ucms_sdk::{Error, Result, config, log};

use crate::util::{self, now_ms};

/// A receiver that stops answering gets this long before its claim may be taken again.
const LEASE_MS: i64 = 60_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub url: String,
    pub events: Vec<String>,
    pub enabled: bool,
    #[serde(default)]
    pub description: String,
    pub secret: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub endpoint: String,
    pub event_id: String,
    pub topic: String,
    /// The exact body sent (and signed) on every attempt.
    pub body: String,
    pub state: String,
    pub attempts: u32,
    pub status: Option<u16>,
    pub duration_ms: Option<u64>,
    pub error: Option<String>,
    pub next_attempt_at_ms: Option<i64>,
    pub lease_until_ms: Option<i64>,
    pub last_attempt_at_ms: Option<i64>,
    pub created_at_ms: i64,
    /// The delivery this one re-sends (`POST /deliveries/{id}/redeliver`).
    #[serde(default)]
    pub redelivery_of: Option<String>,
    /// A ping is tried once, never retried.
    #[serde(default)]
    pub ping: bool,
}

pub fn endpoints() -> Collection<Endpoint> {
    Collection::new("endpoints")
}

pub fn deliveries() -> Collection<Delivery> {
    Collection::new("deliveries")
}

/// The settings, read once per invocation.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_attempts: u32,
    pub retry_base_ms: i64,
    pub retry_max_ms: i64,
    pub timeout_ms: u32,
    pub keep: u32,
}

impl Settings {
    pub fn read() -> Result<Self> {
        let int = |key: &str, default: i64, min: i64, max: i64| -> Result<i64> {
            Ok(config::get::<i64>(key)?.unwrap_or(default).clamp(min, max))
        };
        Ok(Self {
            max_attempts: int("max-attempts", 8, 1, 20)? as u32,
            retry_base_ms: int("retry-base-seconds", 30, 1, 86_400)? * 1000,
            retry_max_ms: int("retry-max-seconds", 3600, 1, 7 * 86_400)? * 1000,
            timeout_ms: (int("timeout-seconds", 10, 1, 20)? * 1000) as u32,
            keep: int("log-per-endpoint", 100, 1, 10_000)? as u32,
        })
    }

    /// The wait after failed attempt number `attempt` (1-based): base × 2^(attempt−1), capped,
    /// ±20 % so that many endpoints failing together don't retry in lockstep.
    fn backoff_ms(&self, attempt: u32) -> i64 {
        let exp = self
            .retry_base_ms
            .saturating_mul(1i64 << attempt.saturating_sub(1).min(30))
            .min(self.retry_max_ms);
        let jitter = 0.8 + 0.4 * util::random_unit();
        ((exp as f64) * jitter) as i64
    }
}

/// The JSON body of a webhook: `{id, topic, occurred-at, data}`.
pub fn body(event_id: &str, topic: &str, occurred_at_ms: i64, payload: &[u8]) -> String {
    let data = serde_json::from_slice::<serde_json::Value>(payload)
        .unwrap_or_else(|_| json!(String::from_utf8_lossy(payload)));
    json!({
        "id": event_id,
        "topic": topic,
        "occurred-at": util::rfc3339(occurred_at_ms),
        "data": data,
    })
    .to_string()
}

/// Claims `doc` for one attempt; `None` when another invocation changed it first.
pub fn claim(doc: &Doc<Delivery>) -> Result<Option<Doc<Delivery>>> {
    let patch = json!({ "state": "sending", "lease_until_ms": now_ms() + LEASE_MS });
    match deliveries().patch(&doc.id, patch, Some(doc.revision)) {
        Ok(doc) => Ok(Some(doc)),
        Err(e) if matches!(e.code(), "revision_conflict" | "document_not_found") => Ok(None),
        Err(e) => Err(e),
    }
}

/// What an attempt led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded (delivered, failed, dead or waiting for a retry).
    Done,
    /// This invocation may make no more outbound requests: put back untouched.
    OutOfRequests,
}

/// Makes one attempt of a claimed delivery and records its outcome.
pub fn attempt(doc: Doc<Delivery>, settings: &Settings) -> Result<Outcome> {
    let mut delivery = doc.data;
    let Some(endpoint) = endpoints().get(&delivery.endpoint)? else {
        // The endpoint was deleted after the event came; its log goes with it.
        deliveries().delete(&doc.id, None)?;
        return Ok(Outcome::Done);
    };
    if !endpoint.data.enabled && !delivery.ping {
        delivery.state = "failed".into();
        delivery.error =
            Some("the endpoint is disabled; enable it, then redeliver this delivery".into());
        delivery.next_attempt_at_ms = None;
        delivery.lease_until_ms = None;
        deliveries().replace(&doc.id, &delivery, Some(doc.revision))?;
        return Ok(Outcome::Done);
    }
    let started = now_ms();
    let timestamp = (started / 1000) as u64;
    let request = Outbound::post(&endpoint.data.url)
        .header("content-type", "application/json")
        .header("x-ucms-event", &delivery.topic)
        .header("x-ucms-delivery", &doc.id)
        .header("x-ucms-timestamp", &timestamp.to_string())
        .header(
            "x-ucms-signature",
            &util::signature(&endpoint.data.secret, timestamp, delivery.body.as_bytes()),
        )
        .body(delivery.body.clone().into_bytes())
        .timeout_ms(settings.timeout_ms);
    let result = request.send();
    let duration = (now_ms() - started).max(0) as u64;

    // (retry?, status, error)
    let (retry, status, error) = match result {
        Ok(response) if (200..300).contains(&response.status) => {
            (false, Some(response.status), None)
        }
        Ok(response) => {
            let retry = response.status >= 500 || matches!(response.status, 408 | 429);
            let snippet: String = String::from_utf8_lossy(&response.body)
                .chars()
                .take(200)
                .collect();
            (
                retry,
                Some(response.status),
                Some(format!(
                    "the receiver answered {}: {snippet}",
                    response.status
                )),
            )
        }
        Err(e) => match e.code() {
            "egress_limit_exceeded" => {
                let put_back = json!({ "state": "pending", "lease_until_ms": null });
                deliveries().patch(&doc.id, put_back, Some(doc.revision))?;
                return Ok(Outcome::OutOfRequests);
            }
            "egress_denied" => (
                false,
                None,
                Some(format!(
                    "the site does not allow this destination: {}. The operator lists the hosts \
                     webhooks may reach in the policy ([policy.overrides.webhooks] hosts)",
                    e.message()
                )),
            ),
            "upstream_timeout" | "upstream_unreachable" => {
                (true, None, Some(e.message().to_string()))
            }
            _ => (false, None, Some(e.message().to_string())),
        },
    };

    delivery.attempts += 1;
    delivery.status = status;
    delivery.duration_ms = Some(duration);
    delivery.last_attempt_at_ms = Some(started);
    delivery.lease_until_ms = None;
    delivery.error = error;
    delivery.next_attempt_at_ms = None;
    delivery.state = if delivery.error.is_none() {
        "delivered".into()
    } else if !retry || delivery.ping {
        "failed".into()
    } else if delivery.attempts >= settings.max_attempts {
        "dead".into()
    } else {
        delivery.next_attempt_at_ms = Some(now_ms() + settings.backoff_ms(delivery.attempts));
        "pending".into()
    };
    if delivery.state != "delivered" {
        let attempt = delivery.attempts.to_string();
        log::write(
            log::Level::Warn,
            "webhook delivery failed",
            &[
                ("delivery", doc.id.as_str()),
                ("endpoint", delivery.endpoint.as_str()),
                ("state", delivery.state.as_str()),
                ("attempt", attempt.as_str()),
                ("error", delivery.error.as_deref().unwrap_or("")),
            ],
        );
    }
    let finished = delivery.state != "pending";
    let endpoint_id = delivery.endpoint.clone();
    match deliveries().replace(&doc.id, &delivery, Some(doc.revision)) {
        Ok(_) => {}
        // Our lease ran out and another invocation took the delivery over: its outcome counts.
        Err(e) if matches!(e.code(), "revision_conflict" | "document_not_found") => {
            return Ok(Outcome::Done);
        }
        Err(e) => return Err(e),
    }
    if finished {
        prune(&endpoint_id, settings.keep)?;
    }
    Ok(Outcome::Done)
}

const FINISHED: [&str; 3] = ["delivered", "failed", "dead"];

/// Keeps the newest `keep` finished deliveries of `endpoint`; pending ones are never pruned.
pub fn prune(endpoint: &str, keep: u32) -> Result<()> {
    let finished = Filter::eq("endpoint", endpoint) & Filter::is_in("state", FINISHED);
    let count = deliveries().count(finished.clone())?;
    if count <= u64::from(keep) {
        return Ok(());
    }
    let excess = (count - u64::from(keep)).min(500) as u32;
    let oldest = deliveries()
        .query()
        .filter(finished)
        .sort("created_at_ms")
        .limit(excess)
        .fields(["endpoint"])
        .fetch_as::<serde_json::Value>()?;
    for doc in oldest.documents {
        deliveries().delete(&doc.id, None)?;
    }
    Ok(())
}

/// Attempts due deliveries until `budget_ms` is spent; returns how many were attempted.
pub fn run_due(settings: &Settings, budget_ms: i64) -> Result<u32> {
    let started = now_ms();
    let now = started;
    let due = Filter::any([
        Filter::eq("state", "pending") & Filter::lte("next_attempt_at_ms", now),
        Filter::eq("state", "sending") & Filter::lte("lease_until_ms", now),
    ]);
    let page = deliveries()
        .query()
        .filter(due)
        .sort("next_attempt_at_ms")
        .limit(50)
        .fetch()?;
    let mut attempted = 0;
    for doc in page.documents {
        if now_ms() - started + i64::from(settings.timeout_ms) > budget_ms {
            break;
        }
        let Some(claimed) = claim(&doc)? else {
            continue;
        };
        attempted += 1;
        if attempt(claimed, settings)? == Outcome::OutOfRequests {
            break;
        }
    }
    Ok(attempted)
}

/// A new delivery of `body` to `endpoint`, due now.
pub fn new_delivery(endpoint: &str, event_id: &str, topic: &str, body: String) -> Delivery {
    let now = now_ms();
    Delivery {
        endpoint: endpoint.to_string(),
        event_id: event_id.to_string(),
        topic: topic.to_string(),
        body,
        state: "pending".into(),
        attempts: 0,
        status: None,
        duration_ms: None,
        error: None,
        next_attempt_at_ms: Some(now),
        lease_until_ms: None,
        last_attempt_at_ms: None,
        created_at_ms: now,
        redelivery_of: None,
        ping: false,
    }
}

/// The delivery as the API shows it (never the body's secret: there is none in it).
pub fn view(doc: &Doc<Delivery>) -> serde_json::Value {
    let d = &doc.data;
    json!({
        "id": doc.id,
        "endpoint": d.endpoint,
        "event_id": d.event_id,
        "topic": d.topic,
        "state": d.state,
        "attempts": d.attempts,
        "status_code": d.status,
        "duration_ms": d.duration_ms,
        "error": d.error,
        "next_retry_at": d.next_attempt_at_ms.filter(|_| d.state == "pending").map(util::rfc3339),
        "last_attempt_at": d.last_attempt_at_ms.map(util::rfc3339),
        "created_at": util::rfc3339(d.created_at_ms),
        "redelivery_of": d.redelivery_of,
        "ping": d.ping,
    })
}

/// 404 for a delivery id that doesn't exist.
pub fn not_found(id: &str) -> Error {
    Error::new(
        404,
        "delivery_not_found",
        format!("there is no delivery '{id}'"),
    )
}
