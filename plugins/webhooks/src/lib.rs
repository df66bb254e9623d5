//! `webhooks`: outbound HTTP POSTs on content events, signed with HMAC-SHA256, retried with
//! exponential backoff, with a bounded delivery log per endpoint (docs/webhooks.md).
//!
//! - `endpoints` (documents): each target's URL, event patterns, whether it is enabled, and its
//!   secret — shown once when it is made or rotated, never again.
//! - `deliveries` (documents, [`deliver`]): one per event and endpoint, the log and the retry
//!   queue at once. The event handler records them and makes the first attempts at once; the
//!   `retry` schedule (every 5 s) makes the ones that are due.
//! - Where webhooks may go is the site's decision: the manifest asks for `site-hosts`, and the
//!   operator's policy lists the hosts (`[policy.overrides.webhooks] hosts`). The host's egress
//!   check refuses anything else; an endpoint whose host it refuses is refused when it is made.

mod deliver;
mod util;

use serde::Deserialize;
use serde_json::json;
use ucms_sdk::documents::{Doc, Filter};
use ucms_sdk::http::Outbound;
use ucms_sdk::schedules::{Schedules, Tick};
use ucms_sdk::{Error, Event, Plugin, Request, Response, Result, Router};

use crate::deliver::{Delivery, Endpoint, Outcome, Settings, deliveries, endpoints};
use crate::util::now_ms;

struct Webhooks;

impl Plugin for Webhooks {
    fn router() -> Router {
        Router::new()
            .get("/endpoints", list_endpoints)
            .post("/endpoints", create_endpoint)
            .get("/endpoints/{id}", get_endpoint)
            .put("/endpoints/{id}", update_endpoint)
            .delete("/endpoints/{id}", delete_endpoint)
            .post("/endpoints/{id}/rotate-secret", rotate_secret)
            .post("/endpoints/{id}/ping", ping)
            .get("/endpoints/{id}/deliveries", list_deliveries)
            .post("/deliveries/{id}/redeliver", redeliver)
    }

    fn on_event(event: Event) -> Result<()> {
        on_event(event)
    }

    fn schedules() -> Schedules {
        Schedules::new().on("retry", retry)
    }
}

ucms_sdk::export!(Webhooks);

/// Most endpoints a site may have; each event is matched against all of them.
const MAX_ENDPOINTS: u32 = 200;
/// The part of the 30 s invocation deadline (`[limits] timeout-ms`) attempts may use.
const BUDGET_MS: i64 = 25_000;

// ---- events and retries --------------------------------------------------------------------

/// Records a delivery for every enabled endpoint that wants the event, then attempts them. An
/// event delivered again (the host delivers at least once) finds its deliveries already
/// recorded — their ids are `<endpoint>.<event id>` — and adds none.
fn on_event(event: Event) -> Result<()> {
    let settings = Settings::read()?;
    let started = now_ms();
    let targets = endpoints()
        .query()
        .filter(Filter::eq("enabled", true))
        .limit(MAX_ENDPOINTS)
        .fetch()?;
    let body = deliver::body(
        &event.id,
        &event.topic,
        event.published_at_ms as i64,
        &event.payload,
    );
    let mut out_of_requests = false;
    for endpoint in targets.documents {
        if !endpoint
            .data
            .events
            .iter()
            .any(|p| util::matches(p, &event.topic))
        {
            continue;
        }
        let delivery = deliver::new_delivery(&endpoint.id, &event.id, &event.topic, body.clone());
        let doc = match deliveries()
            .insert_with_id(&format!("{}.{}", endpoint.id, event.id), &delivery)
        {
            Ok(doc) => doc,
            Err(e) if e.code() == "document_exists" => continue,
            Err(e) => return Err(e),
        };
        // Recorded and due: what this invocation can't send in time, the retry schedule sends.
        if out_of_requests || now_ms() - started + i64::from(settings.timeout_ms) > BUDGET_MS {
            continue;
        }
        if let Some(claimed) = deliver::claim(&doc)? {
            out_of_requests = deliver::attempt(claimed, &settings)? == Outcome::OutOfRequests;
        }
    }
    Ok(())
}

fn retry(_tick: Tick) -> Result<()> {
    let settings = Settings::read()?;
    deliver::run_due(&settings, BUDGET_MS)?;
    Ok(())
}

// ---- endpoints -----------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointInput {
    url: String,
    events: Vec<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    description: String,
}

fn yes() -> bool {
    true
}

impl EndpointInput {
    fn check(&self) -> Result<()> {
        util::check_url(&self.url)?;
        if self.events.is_empty() {
            return Err(Error::new(
                400,
                "no_events",
                "list the events this endpoint receives, for example [\"content.entry.*\"]",
            ));
        }
        if self.events.len() > 50 {
            return Err(Error::bad_request(
                "an endpoint lists at most 50 event patterns",
            ));
        }
        for pattern in &self.events {
            util::check_pattern(pattern)?;
        }
        if self.description.len() > 1000 {
            return Err(Error::bad_request(
                "the description is longer than 1000 bytes",
            ));
        }
        check_destination(&self.url)
    }
}

/// Asks the host's egress check whether the site lets this plugin reach `url`, without sending
/// anything: a request with an empty method is refused as `denied` when the destination isn't
/// allowed, and otherwise as an invalid request before any connection is made. Names that
/// resolve to refused addresses are only found when a delivery connects; that delivery's log
/// entry says so.
fn check_destination(url: &str) -> Result<()> {
    match Outbound::new("", url).send() {
        Err(e) if e.code() == "egress_denied" => Err(Error::new(
            422,
            "destination_not_allowed",
            format!(
                "the site does not let webhooks reach {url}: {}. Ask the site's operator to add \
                 the host to the policy: [policy.overrides.webhooks] hosts = [\"{}\"]",
                e.message(),
                url::Url::parse(url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string))
                    .unwrap_or_default()
            ),
        )),
        _ => Ok(()),
    }
}

fn endpoint_view(doc: &Doc<Endpoint>) -> serde_json::Value {
    json!({
        "id": doc.id,
        "url": doc.data.url,
        "events": doc.data.events,
        "enabled": doc.data.enabled,
        "description": doc.data.description,
        "created_at": util::rfc3339(doc.data.created_at_ms),
        "updated_at": util::rfc3339(doc.updated_at_ms),
    })
}

fn load_endpoint(req: &Request) -> Result<Doc<Endpoint>> {
    let id = req.require_param("id")?;
    endpoints().get(id)?.ok_or_else(|| {
        Error::new(
            404,
            "endpoint_not_found",
            format!("there is no webhook endpoint '{id}'"),
        )
    })
}

fn list_endpoints(_req: Request) -> Result<Response> {
    let page = endpoints()
        .query()
        .sort("created_at_ms")
        .limit(MAX_ENDPOINTS)
        .fetch()?;
    let items: Vec<_> = page.documents.iter().map(endpoint_view).collect();
    Ok(Response::json(&json!({ "items": items })))
}

fn create_endpoint(req: Request) -> Result<Response> {
    let input: EndpointInput = req.json()?;
    input.check()?;
    if endpoints().count(None)? >= u64::from(MAX_ENDPOINTS) {
        return Err(Error::conflict(format!(
            "this site already has {MAX_ENDPOINTS} webhook endpoints; delete one first"
        )));
    }
    let secret = util::new_secret()?;
    let doc = endpoints().insert(&Endpoint {
        url: input.url,
        events: input.events,
        enabled: input.enabled,
        description: input.description,
        secret: secret.clone(),
        created_at_ms: now_ms(),
    })?;
    let mut view = endpoint_view(&doc);
    // The only time the secret leaves the plugin, with the rotation's answer.
    view["secret"] = json!(secret);
    Ok(Response::json(&view).with_status(201))
}

fn get_endpoint(req: Request) -> Result<Response> {
    Ok(Response::json(&endpoint_view(&load_endpoint(&req)?)))
}

fn update_endpoint(req: Request) -> Result<Response> {
    let current = load_endpoint(&req)?;
    let input: EndpointInput = req.json()?;
    input.check()?;
    let endpoint = Endpoint {
        url: input.url,
        events: input.events,
        enabled: input.enabled,
        description: input.description,
        ..current.data
    };
    // Against the revision read, so a rotation at the same moment isn't undone.
    let doc = endpoints().replace(&current.id, &endpoint, Some(current.revision))?;
    Ok(Response::json(&endpoint_view(&doc)))
}

fn delete_endpoint(req: Request) -> Result<Response> {
    let current = load_endpoint(&req)?;
    endpoints().delete(&current.id, None)?;
    // Its log and queue go with it (bounded: the log is pruned, the queue is what is pending).
    loop {
        let page = deliveries()
            .query()
            .filter(Filter::eq("endpoint", current.id.as_str()))
            .limit(200)
            .fields(["endpoint"])
            .fetch_as::<serde_json::Value>()?;
        if page.documents.is_empty() {
            break;
        }
        for doc in page.documents {
            deliveries().delete(&doc.id, None)?;
        }
    }
    Ok(Response::no_content())
}

fn rotate_secret(req: Request) -> Result<Response> {
    let current = load_endpoint(&req)?;
    let secret = util::new_secret()?;
    let doc = endpoints().patch(
        &current.id,
        json!({ "secret": secret }),
        Some(current.revision),
    )?;
    let mut view = endpoint_view(&doc);
    view["secret"] = json!(secret);
    Ok(Response::json(&view))
}

// ---- deliveries ----------------------------------------------------------------------------

fn list_deliveries(req: Request) -> Result<Response> {
    let endpoint = load_endpoint(&req)?;
    let limit = match req.query("limit") {
        None => 50,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| Error::bad_request("limit must be a number from 1 to 500"))?,
    };
    let page = deliveries()
        .query()
        .filter(Filter::eq("endpoint", endpoint.id.as_str()))
        .sort_desc("created_at_ms")
        .limit(limit)
        .fetch()?;
    let items: Vec<_> = page.documents.iter().map(deliver::view).collect();
    Ok(Response::json(&json!({ "items": items })))
}

/// Sends a `webhooks.ping` to the endpoint now (once, no retries) and answers with the log
/// entry: the quickest way to check a receiver and its signature check.
fn ping(req: Request) -> Result<Response> {
    let endpoint = load_endpoint(&req)?;
    let settings = Settings::read()?;
    let event_id = format!("ping-{}", now_ms());
    let body = deliver::body(
        &event_id,
        "webhooks.ping",
        now_ms(),
        json!({ "endpoint": endpoint.id }).to_string().as_bytes(),
    );
    let mut delivery = deliver::new_delivery(&endpoint.id, &event_id, "webhooks.ping", body);
    delivery.ping = true;
    send_now(delivery, &settings).map(|r| r.with_status(201))
}

/// Sends a delivery's body again, as a new delivery (with its own id, attempts and retries).
fn redeliver(req: Request) -> Result<Response> {
    let id = req.require_param("id")?;
    let original = deliveries()
        .get(id)?
        .ok_or_else(|| deliver::not_found(id))?;
    if endpoints().get(&original.data.endpoint)?.is_none() {
        return Err(deliver::not_found(id));
    }
    let settings = Settings::read()?;
    let o = original.data;
    let mut delivery: Delivery = deliver::new_delivery(&o.endpoint, &o.event_id, &o.topic, o.body);
    delivery.redelivery_of = Some(original.id.clone());
    delivery.ping = o.ping;
    send_now(delivery, &settings).map(|r| r.with_status(201))
}

fn send_now(delivery: Delivery, settings: &Settings) -> Result<Response> {
    let doc = deliveries().insert(&delivery)?;
    let id = doc.id.clone();
    if let Some(claimed) = deliver::claim(&doc)? {
        deliver::attempt(claimed, settings)?;
    }
    let doc = deliveries()
        .get(&id)?
        .ok_or_else(|| deliver::not_found(&id))?;
    Ok(Response::json(&deliver::view(&doc)))
}
