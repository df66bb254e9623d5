//! `bulky`: a benchmark plugin whose component is about 2 MB of real code.
//!
//! `GET /api/bulky/mix?n=12&x=34` runs generated function number `n` (modulo their count) on `x`
//! and answers `{"n": 12, "value": …}`. The functions exist to give installs a realistic amount of
//! code to verify and compile; see `build.rs`.

use serde_json::json;
use ucms_sdk::{Plugin, Request, Response, Result, Router};

#[allow(clippy::all, clippy::pedantic)]
mod mix {
    include!(concat!(env!("OUT_DIR"), "/mix.rs"));
}

struct Bulky;

impl Plugin for Bulky {
    fn router() -> Router {
        Router::new().get("/mix", run)
    }
}

fn run(req: Request) -> Result<Response> {
    let n: u64 = req.query("n").and_then(|v| v.parse().ok()).unwrap_or(0);
    let x: u64 = req.query("x").and_then(|v| v.parse().ok()).unwrap_or(1);
    let value = mix::TABLE[(n % mix::FUNCTIONS) as usize](x);
    Ok(Response::json(&json!({ "n": n, "value": value })))
}

ucms_sdk::export!(Bulky);
