//! `orders`: the publishing half of the events example.
//!
//! `POST /api/orders/orders` stores an order in kv and publishes `orders.placed` with it (keyed by
//! the order id, so events about one order stay in order); `mailer` subscribes and sends the
//! confirmation.

use serde::{Deserialize, Serialize};
use ucms_sdk::{Error, Plugin, Request, Response, Result, Router, events, kv, log};

struct Orders;

impl Plugin for Orders {
    fn router() -> Router {
        Router::new()
            .post("/orders", place)
            .get("/orders/{id}", get)
    }
}

#[derive(Debug, Deserialize)]
struct NewOrder {
    item: String,
    quantity: u32,
    email: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
    quantity: u32,
    email: String,
    placed_by: Option<String>,
}

fn place(req: Request) -> Result<Response> {
    let new: NewOrder = req.json()?;
    if new.item.trim().is_empty() || new.quantity == 0 {
        return Err(Error::unprocessable(
            "an order needs an item and a quantity of at least 1",
        ));
    }
    let id = kv::increment("next-id", 1)? as u64;
    let order = Order {
        id,
        item: new.item,
        quantity: new.quantity,
        email: new.email,
        placed_by: req.principal().user().map(|u| u.email.clone()),
    };
    kv::set(&format!("order:{id}"), &order)?;
    let event = events::publish_keyed("orders.placed", &id.to_string(), &order)?;
    log::write(
        log::Level::Info,
        "order placed",
        &[("order", &id.to_string()), ("event", &event)],
    );
    Ok(Response::json(&order).with_status(201))
}

fn get(req: Request) -> Result<Response> {
    let id = req.require_param("id")?;
    match kv::get::<Order>(&format!("order:{id}"))? {
        Some(order) => Ok(Response::json(&order)),
        None => Err(Error::not_found(format!("there is no order {id}"))),
    }
}

ucms_sdk::export!(Orders);
