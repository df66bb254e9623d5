//! `mailer`: the subscribing half of the events example.
//!
//! For every `orders.placed` event it "sends" a confirmation (records it in kv; a real mailer
//! would call an email API with `ucms_sdk::http`). Deliveries are at least once, so it remembers
//! the event ids it handled. An order with an address that can't receive mail fails the delivery;
//! the host retries with backoff and finally keeps it as a dead letter for an administrator.

use serde::{Deserialize, Serialize};
use ucms_sdk::{Error, Event, Plugin, Request, Response, Result, Router, config, kv, log};

struct Mailer;

#[derive(Debug, Deserialize)]
struct Order {
    id: u64,
    item: String,
    quantity: u32,
    email: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Mail {
    to: String,
    from: String,
    subject: String,
    body: String,
    event: String,
}

impl Plugin for Mailer {
    fn router() -> Router {
        Router::new().get("/sent", sent)
    }

    fn on_event(event: Event) -> Result<()> {
        let order: Order = event.json()?;
        if !order.email.contains('@') {
            return Err(Error::unprocessable(format!(
                "order {}: '{}' is not an email address",
                order.id, order.email
            )));
        }
        // A redelivered event must not send twice.
        if !kv::compare_and_swap(&format!("seen:{}", event.id), None, Some(b"1"))? {
            log::info(&format!("event {} was already handled", event.id));
            return Ok(());
        }
        let from: String = config::get("from")?.unwrap_or_else(|| "shop@example.com".into());
        let mail = Mail {
            to: order.email,
            from,
            subject: format!("Your order #{}", order.id),
            body: format!(
                "Thank you for ordering {} x {}.",
                order.quantity, order.item
            ),
            event: event.id.clone(),
        };
        kv::set(&format!("mail:{:010}", order.id), &mail)?;
        log::write(
            log::Level::Info,
            "confirmation sent",
            &[
                ("order", &order.id.to_string()),
                ("attempt", &event.attempt.to_string()),
            ],
        );
        Ok(())
    }
}

fn sent(_req: Request) -> Result<Response> {
    let mut mails = Vec::new();
    for key in kv::keys("mail:")? {
        if let Some(mail) = kv::get::<Mail>(&key)? {
            mails.push(mail);
        }
    }
    Ok(Response::json(&mails))
}

ucms_sdk::export!(Mailer);
