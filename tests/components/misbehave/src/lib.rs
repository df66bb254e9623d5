//! An adversarial plugin: every route misbehaves in its own way, so the host's tests can check
//! that each is stopped with the right error while other plugins keep serving.

use std::hint::black_box;

use serde_json::json;
use ucms_sdk::http::Outbound;
use ucms_sdk::{Error, Plugin, Request, Response, Result, Router, events, kv, log};

struct Misbehave;

impl Plugin for Misbehave {
    fn router() -> Router {
        Router::new()
            .get("/ok", |_| Ok(Response::json(&json!({ "ok": true }))))
            .get("/spin", spin)
            .get("/alloc", alloc)
            .get("/recurse", recurse_route)
            .get("/panic", |_| panic!("deliberate panic for the test"))
            .get("/huge", huge)
            .get("/egress", egress)
            .get("/log-flood", log_flood)
            .get("/print-flood", print_flood)
            .post("/publish", publish)
            .post("/echo", |req| {
                Ok(Response::new(200).with_body(req.body().to_vec()))
            })
            .post("/data/{case}", data_abuse)
    }

    /// Announces itself and records a schema version, and checks that it reads back what it wrote before the host
    /// has stored it (install hooks' writes wait for the switch).
    fn install() -> Result<()> {
        events::publish("misbehave.installed", &1)?;
        kv::set("schema", &1)?;
        kv::delete("never-there")?;
        if kv::get::<u32>("schema")? != Some(1) || kv::keys("sch")? != ["schema"] {
            return Err(Error::internal("a hook must read its own writes"));
        }
        Ok(())
    }

    /// Half-migrates and announces it, then refuses every upgrade: the host must keep the installed version
    /// serving, with its data as it was.
    fn upgrade(previous_version: &str) -> Result<()> {
        kv::set("schema", &2)?;
        kv::set("migrated", &true)?;
        events::publish("misbehave.upgraded", &2)?;
        Err(Error::unprocessable(format!(
            "refusing to upgrade from {previous_version}: this plugin's data can't be migrated"
        )))
    }
}

/// Loops forever.
fn spin(_req: Request) -> Result<Response> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

/// Allocates without bound and keeps everything.
fn alloc(_req: Request) -> Result<Response> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 20];
        chunk[0] = 1;
        hoard.push(black_box(chunk));
    }
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64, pad: [u64; 16]) -> u64 {
    let pad = black_box(pad);
    black_box(recurse(depth + 1, pad)) + pad[(depth % 16) as usize]
}

/// Recurses until the stack overflows.
fn recurse_route(_req: Request) -> Result<Response> {
    let n = recurse(0, [1; 16]);
    Ok(Response::json(&json!({ "depth": n })))
}

/// Returns a body of `?mib=` MiB (default 8).
fn huge(req: Request) -> Result<Response> {
    let mib: usize = req.query("mib").and_then(|m| m.parse().ok()).unwrap_or(8);
    Ok(Response::new(200).with_body(vec![b'x'; mib << 20]))
}

/// Requests `?url=` and reports what happened.
fn egress(req: Request) -> Result<Response> {
    let url = req
        .query("url")
        .ok_or_else(|| Error::bad_request("pass ?url="))?;
    let count: usize = req.query("count").and_then(|c| c.parse().ok()).unwrap_or(1);
    let mut response = Outbound::get(url).timeout_ms(2000).send()?;
    for _ in 1..count {
        response = Outbound::get(url).timeout_ms(2000).send()?;
    }
    Ok(Response::json(&json!({
        "status": response.status,
        "body": String::from_utf8_lossy(&response.body),
    })))
}

/// Writes `?lines=` log lines (default 10000).
fn log_flood(req: Request) -> Result<Response> {
    let lines: usize = req
        .query("lines")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10_000);
    for i in 0..lines {
        log::info(&format!("flood line {i}"));
    }
    Ok(Response::json(&json!({ "written": lines })))
}

/// Prints far more than the host captures.
fn print_flood(_req: Request) -> Result<Response> {
    for i in 0..20_000 {
        println!("stdout line {i}");
        eprintln!("stderr line {i}");
    }
    Ok(Response::json(&json!({ "printed": true })))
}

/// Publishes `?count=` events (default 1) on `?topic=`; the first refusal is the answer.
fn publish(req: Request) -> Result<Response> {
    let topic = req.query("topic").unwrap_or("misbehave.poked");
    let count: usize = req.query("count").and_then(|c| c.parse().ok()).unwrap_or(1);
    let mut id = String::new();
    for _ in 0..count {
        id = events::publish(topic, &json!({ "poked": true }))?;
    }
    Ok(Response::json(&json!({ "event": id, "published": count })))
}

ucms_sdk::export!(Misbehave);

/// Abuses the data capabilities in one way per `case`, below the SDK (raw WIT values), and
/// answers with the error the host gave: `{"error": "<variant>: <message>"}`, or `{"ok": ...}`.
fn data_abuse(req: Request) -> Result<Response> {
    use ucms_sdk::bindings::ucms::host::blobs as b;
    use ucms_sdk::bindings::ucms::host::documents as d;

    fn doc_error(e: d::DocumentError) -> String {
        match e {
            d::DocumentError::Invalid(m) => format!("invalid: {m}"),
            d::DocumentError::QuotaExceeded(m) => format!("quota-exceeded: {m}"),
            other => format!("other: {other:?}"),
        }
    }
    fn blob_error(e: b::BlobError) -> String {
        match e {
            b::BlobError::Invalid(m) => format!("invalid: {m}"),
            b::BlobError::QuotaExceeded(m) => format!("quota-exceeded: {m}"),
            b::BlobError::TooLarge(m) => format!("too-large: {m}"),
            other => format!("other: {other:?}"),
        }
    }
    let eq = |path: &str| {
        d::FilterNode::Eq(d::Comparison {
            path: path.into(),
            value: "1".into(),
        })
    };
    let count = |nodes: Vec<d::FilterNode>, root: u32| {
        d::count("things", Some(&d::Filter { nodes, root })).map_err(doc_error)
    };
    let outcome: std::result::Result<serde_json::Value, String> =
        match req.param("case").unwrap_or("") {
            // One leaf used by every level: a tree of 2^60 leaves if the host expanded it.
            "shared-node" => {
                let mut nodes = vec![eq("a")];
                for i in 0..60 {
                    nodes.push(d::FilterNode::And(vec![i, i]));
                }
                count(nodes, 60).map(|n| json!(n))
            }
            "forward-child" => count(vec![d::FilterNode::Not(1), eq("a")], 0).map(|n| json!(n)),
            "too-many-nodes" => {
                let nodes: Vec<_> = (0..10_000).map(|_| eq("a")).collect();
                count(nodes, 0).map(|n| json!(n))
            }
            "bad-path" => count(vec![eq("a..b")], 0).map(|n| json!(n)),
            "bad-json" => d::insert("things", None, "{not json")
                .map(|_| json!(null))
                .map_err(doc_error),
            "quota" => {
                let mut last = Ok(json!(0));
                for i in 0..20 {
                    last = d::insert("things", None, &format!("{{\"n\":{i}}}"))
                        .map(|_| json!(i))
                        .map_err(doc_error);
                    if last.is_err() {
                        break;
                    }
                }
                last
            }
            "big-chunk" => b::put("big", "application/octet-stream")
                .map_err(blob_error)
                .and_then(|w| w.write(&vec![0u8; 5 * 1024 * 1024]).map_err(blob_error))
                .map(|()| json!(null)),
            "many-writers" => {
                let mut writers = Vec::new();
                let mut result = Ok(json!(0));
                for i in 0..40 {
                    match b::put(&format!("w{i}"), "text/plain") {
                        Ok(w) => writers.push(w),
                        Err(e) => {
                            result = Err(blob_error(e));
                            break;
                        }
                    }
                }
                result
            }
            "blob-quota" => {
                // 1 MiB chunks into a plugin whose quota is 2 MiB.
                b::put("filler", "application/octet-stream")
                    .map_err(blob_error)
                    .and_then(|w| {
                        for _ in 0..3 {
                            w.write(&vec![1u8; 1024 * 1024]).map_err(blob_error)?;
                        }
                        w.finish().map_err(blob_error)
                    })
                    .map(|info| json!(info.size))
            }
            other => return Err(Error::not_found(format!("no case '{other}'"))),
        };
    Ok(Response::json(&match outcome {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "error": e }),
    }))
}
