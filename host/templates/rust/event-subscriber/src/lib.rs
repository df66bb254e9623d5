//! The @NAME@ plugin: counts `content.*` events per topic and keeps the latest ones.
//!
//! - every delivered event increments `count:<topic>` and is added to `recent` (at most 100);
//!   a redelivery of the same event id is counted once;
//! - the hourly `trim` schedule keeps the 10 most recent;
//! - `GET /api/@NAME@/stats` shows both.

use serde::{Deserialize, Serialize};
use ucms_sdk::schedules::{Schedules, Tick};
use ucms_sdk::{Event, Plugin, Request, Response, Result, Router, kv, log};

struct App;

impl Plugin for App {
    fn router() -> Router {
        Router::new().get("/stats", stats)
    }

    fn on_event(event: Event) -> Result<()> {
        // At-least-once delivery: remember which events were counted.
        let first_time = kv::compare_and_swap(&format!("seen:{}", event.id), None, Some(b"1"))?;
        if !first_time {
            return Ok(());
        }
        let count = kv::increment(&format!("count:{}", event.topic), 1)?;
        kv::update("recent", |recent: Option<Vec<Seen>>| {
            let mut recent = recent.unwrap_or_default();
            recent.insert(0, Seen { id: event.id.clone(), topic: event.topic.clone(), source: event.source.clone() });
            recent.truncate(100);
            recent
        })?;
        log::info(&format!("{} event #{count} from {}", event.topic, event.source));
        Ok(())
    }

    fn schedules() -> Schedules {
        Schedules::new().on("trim", trim)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seen {
    id: String,
    topic: String,
    source: String,
}

fn trim(_tick: Tick) -> Result<()> {
    kv::update("recent", |recent: Option<Vec<Seen>>| {
        let mut recent = recent.unwrap_or_default();
        recent.truncate(10);
        recent
    })?;
    Ok(())
}

fn stats(_req: Request) -> Result<Response> {
    let recent: Vec<Seen> = kv::get("recent")?.unwrap_or_default();
    let published: i64 = kv::get("count:content.published")?.unwrap_or(0);
    Ok(Response::json(&serde_json::json!({ "published": published, "recent": recent })))
}

ucms_sdk::export!(App);
