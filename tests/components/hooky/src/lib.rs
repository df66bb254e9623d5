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

use serde_json::{Value, json};
use ucms_sdk::hooks::{HookCall, HookOutcome, Hooks};
use ucms_sdk::schedules::{Schedules, Tick};
use ucms_sdk::{Plugin, Request, Response, Result, Router, auth, config, hooks, kv};

struct Hooky;

impl Plugin for Hooky {
    fn router() -> Router {
        Router::new()
            .post("/items", save)
            .get("/access", access)
            .get("/ticks/{name}", ticks)
    }

    fn hooks() -> Hooks {
        Hooks::new().on("hooky.before-save", before_save)
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

fn count_tick(tick: Tick) -> Result<()> {
    kv::increment(&format!("ticks:{}", tick.name), 1)?;
    kv::increment(&format!("tick:{}:{}", tick.name, tick.scheduled_at_ms), 1)?;
    Ok(())
}

ucms_sdk::export!(Hooky);
