//! The @NAME@ plugin: relays every `orders.*` event to a webhook endpoint.
//!
//! Each event is POSTed as `{"id", "topic", "source", "payload"}` to the `url` setting, with the
//! `token` secret as a bearer token. A failure (refused, unreachable, or a non-2xx answer) returns
//! an error, so the host delivers the event again later with backoff, and after the last attempt
//! keeps it as a dead letter. `GET /deliveries` shows the counters.

use ucms_sdk::http::Outbound;
use ucms_sdk::{Error, Event, Plugin, Request, Response, Result, Router, config, kv, log};

struct App;

impl Plugin for App {
    fn router() -> Router {
        Router::new().get("/deliveries", deliveries)
    }

    fn on_event(event: Event) -> Result<()> {
        let url: String = config::get("url")?.unwrap_or_default();
        let payload: serde_json::Value =
            serde_json::from_slice(&event.payload).unwrap_or(serde_json::Value::Null);
        let body = serde_json::json!({
            "id": event.id,
            "topic": event.topic,
            "source": event.source,
            "payload": payload,
        });
        let mut request = Outbound::post(&url)
            .header("x-ucms-event-id", &event.id)
            .json(&body)?;
        if let Some(token) = config::secret("token") {
            request = request.header("authorization", &format!("Bearer {token}"));
        }
        let answer = request.send();
        match answer {
            Ok(response) if (200..300).contains(&response.status) => {
                kv::increment("delivered", 1)?;
                Ok(())
            }
            Ok(response) => {
                kv::increment("failed", 1)?;
                log::warn(&format!("{url} answered {} for event {}", response.status, event.id));
                Err(Error::unavailable(format!("the endpoint answered {}", response.status)))
            }
            Err(error) => {
                kv::increment("failed", 1)?;
                log::warn(&format!("cannot reach {url}: {}", error.message()));
                Err(error)
            }
        }
    }
}

fn deliveries(_req: Request) -> Result<Response> {
    let delivered: i64 = kv::get("delivered")?.unwrap_or(0);
    let failed: i64 = kv::get("failed")?.unwrap_or(0);
    Ok(Response::json(&serde_json::json!({ "delivered": delivered, "failed": failed })))
}

ucms_sdk::export!(App);
