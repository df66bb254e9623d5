//! The event bus in the host API: dead letters listed (`ucms.events.read`), replayed and
//! discarded (`ucms.events.manage`), under `/api/ucms/events/…`.

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, JsonBody};
use crate::Site;
use crate::capabilities::events::outbox::Cursor;
use crate::capabilities::events::{DeadLetterQuery, Selection};
use crate::identity::permissions;

/// Most dead letters one page lists.
pub const MAX_PAGE: u32 = 1000;

pub fn routes() -> Router<Site> {
    Router::new()
        .route("/events/dead-letters", get(list))
        // The path of the first version of the API.
        .route("/dead-letters", get(list))
        .route("/events/dead-letters/replay", post(replay))
        .route("/events/dead-letters/discard", post(discard))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    subscriber: Option<String>,
    topic: Option<String>,
    limit: Option<u32>,
    before: Option<String>,
}

async fn list(
    State(site): State<Site>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::EVENTS_READ)?;
    let Query(query) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("{}; the parameters are subscriber, topic, limit (1-{MAX_PAGE}) and before (a cursor from the previous page)", e.body_text()),
        )
    })?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("limit is {limit}; ask for 1 to {MAX_PAGE} dead letters per page"),
        ));
    }
    let before = match &query.before {
        None => None,
        Some(raw) => Some(Cursor::parse(raw).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("'{raw}' is not a dead-letter cursor; pass the `next_before` of the previous page"),
            )
        })?),
    };
    let letters = site
        .services
        .events
        .outbox
        .list_dead(&DeadLetterQuery {
            subscriber: query.subscriber,
            topic: query.topic,
            before,
            limit,
        })
        .await
        .map_err(ApiError::internal)?;
    let next = (letters.len() == limit as usize)
        .then(|| letters.last().map(|l| l.cursor.clone()))
        .flatten();
    Ok(Json(
        json!({ "dead_letters": letters, "next_before": next }),
    ))
}

/// One letter (`event_id` and `subscriber`) or every letter of a `subscriber` and/or `topic`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectionBody {
    event_id: Option<String>,
    subscriber: Option<String>,
    topic: Option<String>,
}

impl SelectionBody {
    fn selection(self) -> Result<Selection, ApiError> {
        let shape = "send {\"event_id\", \"subscriber\"} for one letter, or {\"subscriber\"} and/or {\"topic\"} for every matching letter";
        match self {
            Self {
                event_id: Some(event_id),
                subscriber: Some(subscriber),
                topic: None,
            } => Ok(Selection::One {
                event_id,
                subscriber,
            }),
            Self {
                event_id: Some(_), ..
            } => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_selection",
                format!("an event id needs its subscriber and no topic: {shape}"),
            )),
            Self {
                event_id: None,
                subscriber: None,
                topic: None,
            } => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_selection",
                format!("nothing is selected: {shape}"),
            )),
            Self {
                event_id: None,
                subscriber,
                topic,
            } => Ok(Selection::Matching { subscriber, topic }),
        }
    }
}

fn describe(selection: &Selection) -> Value {
    match selection {
        Selection::One {
            event_id,
            subscriber,
        } => json!({ "event_id": event_id, "subscriber": subscriber }),
        Selection::Matching { subscriber, topic } => {
            json!({ "subscriber": subscriber, "topic": topic })
        }
    }
}

fn nothing_selected(selection: &Selection) -> ApiError {
    let message = match selection {
        Selection::One {
            event_id,
            subscriber,
        } => format!(
            "there is no dead letter of event '{event_id}' for '{subscriber}'; list them at GET /api/ucms/events/dead-letters"
        ),
        Selection::Matching { .. } => {
            "no dead letter matches; list them at GET /api/ucms/events/dead-letters".to_string()
        }
    };
    ApiError::new(StatusCode::NOT_FOUND, "dead_letter_not_found", message)
}

async fn replay(
    State(site): State<Site>,
    caller: Caller,
    JsonBody(body): JsonBody<SelectionBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::EVENTS_MANAGE)?;
    let selection = body.selection()?;
    let replayed = site
        .services
        .events
        .outbox
        .replay(&selection, crate::db::now_ms())
        .await
        .map_err(ApiError::internal)?;
    if replayed == 0 {
        return Err(nothing_selected(&selection));
    }
    site.services.events.published();
    let mut detail = describe(&selection);
    detail["count"] = json!(replayed);
    site.services
        .identity
        .audit(Some(&caller.0.actor()), "events.replay", None, detail)
        .await;
    Ok(Json(json!({ "replayed": replayed })))
}

async fn discard(
    State(site): State<Site>,
    caller: Caller,
    JsonBody(body): JsonBody<SelectionBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require(permissions::EVENTS_MANAGE)?;
    let selection = body.selection()?;
    let discarded = site
        .services
        .events
        .outbox
        .discard(&selection)
        .await
        .map_err(ApiError::internal)?;
    if discarded == 0 {
        return Err(nothing_selected(&selection));
    }
    let mut detail = describe(&selection);
    detail["count"] = json!(discarded);
    site.services
        .identity
        .audit(Some(&caller.0.actor()), "events.discard", None, detail)
        .await;
    Ok(Json(json!({ "discarded": discarded })))
}
