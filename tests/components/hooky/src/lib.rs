//! `hooky`: the test plugin of hooks, schedules and conditional permissions.
//!
//! - `POST /items` (public): runs the hook point `hooky.before-save` on the JSON body and answers
//!   with what the hooks left, or 422 with a hook's rejection. Installed under another id, the
//!   point is not its own: the host refuses it (500 `hook_invalid`).
//! - `GET /access` (public): `auth::access("items.edit")` → `{"access": "denied" | "granted" |
//!   {"only": [conditions]}}`
//! - `GET /ticks/{name}` (public): `{"count": ticks run, "times": distinct scheduled times,
//!   "max_per_time": most runs of one scheduled time}`
//! - hook `hooky.before-save`, by the `hook-mode` setting (tests install copies with other
//!   defaults): `slug` adds `slug` from `title`; `check` rejects a title containing "forbidden";
//!   `upper` upper-cases `title`; `loop` never returns. Each appends its mode to `trail`.
//! - schedules `every-second` and `rare`: count their ticks in kv.
//! - for the content plugin's tests: `content.before-save` (refuses a title with "forbidden",
//!   fills an empty `summary`) and `content.before-publish` (refuses "embargo"), joined when a
//!   test adds them to the manifest; events of the topics a test subscribes it to are kept in
//!   order and listed by `GET /events`.

use serde_json::{Value, json};
use ucms_sdk::hooks::{HookCall, HookOutcome, Hooks};
use ucms_sdk::schedules::{Schedules, Tick};
use ucms_sdk::{Event, Plugin, Request, Response, Result, Router, auth, config, hooks, kv};

struct Hooky;

impl Plugin for Hooky {
    fn router() -> Router {
        Router::new()
            .post("/items", save)
            .get("/access", access)
            .get("/ticks/{name}", ticks)
            .get("/events", events)
    }

    fn on_event(event: Event) -> Result<()> {
        // Deliveries are at least once: keep each event id once.
        if kv::get_bytes(&format!("event-id:{}", event.id))?.is_some() {
            return Ok(());
        }
        kv::set(&format!("event-id:{}", event.id), &true)?;
        let n = kv::increment("events", 1)?;
        let payload: Value = event.json().unwrap_or(Value::Null);
        kv::set(
            &format!("event:{n:06}"),
            &json!({"topic": event.topic, "payload": payload}),
        )?;
        Ok(())
    }

    fn hooks() -> Hooks {
        Hooks::new()
            .on("hooky.before-save", before_save)
            .on("content.before-save", content_before_save)
            .on("content.before-publish", content_before_publish)
    }

    fn schedules() -> Schedules {
        Schedules::new()
            .on("every-second", count_tick)
            .on("rare", count_tick)
    }
}

fn save(req: Request) -> Result<Response> {
    let item: Value = req.json()?;
    let item = hooks::run_json("hooky.before-save", &item)?;
    Ok(Response::json(&item))
}

fn access(_req: Request) -> Result<Response> {
    let access = match auth::access("items.edit") {
        auth::Access::Denied => json!("denied"),
        auth::Access::Granted => json!("granted"),
        auth::Access::Only(conditions) => json!({ "only": conditions }),
    };
    Ok(Response::json(&json!({ "access": access })))
}

/// `GET /events`: the events delivered to this install, in order of arrival.
fn events(_req: Request) -> Result<Response> {
    let mut out = Vec::new();
    for key in kv::keys("event:")? {
        let event: Value = kv::get(&key)?.unwrap_or(Value::Null);
        out.push(event);
    }
    Ok(Response::json(&json!({ "events": out })))
}

fn ticks(req: Request) -> Result<Response> {
    let name = req.require_param("name")?;
    let count: i64 = kv::get(&format!("ticks:{name}"))?.unwrap_or(0);
    let mut times = 0;
    let mut max_per_time = 0;
    for key in kv::keys(&format!("tick:{name}:"))? {
        let n: i64 = kv::get(&key)?.unwrap_or(0);
        times += 1;
        max_per_time = max_per_time.max(n);
    }
    Ok(Response::json(
        &json!({ "count": count, "times": times, "max_per_time": max_per_time }),
    ))
}

fn before_save(call: HookCall) -> HookOutcome {
    let Ok(mut item) = call.json::<Value>() else {
        return HookOutcome::Rejected("the item is not JSON".into());
    };
    let mode: String = config::get("hook-mode")
        .ok()
        .flatten()
        .unwrap_or_else(|| "slug".into());
    let title = item["title"].as_str().unwrap_or_default().to_string();
    match mode.as_str() {
        "slug" => {
            let slug: String = title
                .to_lowercase()
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("-");
            item["slug"] = slug.into();
        }
        "check" if title.contains("forbidden") => {
            return HookOutcome::Rejected(format!("the title '{title}' contains a forbidden word"));
        }
        "upper" => item["title"] = title.to_uppercase().into(),
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        _ => {}
    }
    match item["trail"].as_array_mut() {
        Some(trail) => trail.push(mode.into()),
        None => item["trail"] = json!([mode]),
    }
    HookOutcome::json(&item)
}

/// The content plugin's `content.before-save` (when a test joins it): refuses a title with
/// "forbidden", fills an empty `summary`.
fn content_before_save(call: HookCall) -> HookOutcome {
    let Ok(mut value) = call.json::<Value>() else {
        return HookOutcome::Rejected("the entry is not JSON".into());
    };
    let title = value["fields"]["title"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if title.contains("forbidden") {
        return HookOutcome::Rejected(format!("the title '{title}' contains a forbidden word"));
    }
    if value["fields"]["summary"].is_null() {
        value["fields"]["summary"] = json!(format!("About {title}"));
    }
    HookOutcome::json(&value)
}

/// The content plugin's `content.before-publish`: refuses a title with "embargo".
fn content_before_publish(call: HookCall) -> HookOutcome {
    let Ok(value) = call.json::<Value>() else {
        return HookOutcome::Rejected("the entry is not JSON".into());
    };
    if value["fields"]["title"]
        .as_str()
        .unwrap_or_default()
        .contains("embargo")
    {
        return HookOutcome::Rejected("this entry is under embargo".into());
    }
    HookOutcome::Unchanged
}

fn count_tick(tick: Tick) -> Result<()> {
    kv::increment(&format!("ticks:{}", tick.name), 1)?;
    kv::increment(&format!("tick:{}:{}", tick.name, tick.scheduled_at_ms), 1)?;
    Ok(())
}

ucms_sdk::export!(Hooky);
