//! Publishing and receiving events. Publishing requires the `events` capability with the topic
//! granted; receiving requires a `[[subscriptions]]` entry in the manifest and [`crate::Plugin::on_event`].

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::exports::ucms::plugin::event_handler;
use crate::bindings::ucms::host::events as raw;
use crate::{Error, Result};

/// An event delivered to this plugin.
#[derive(Debug, Clone)]
pub struct Event {
    /// Unique id; redeliveries carry the same id.
    pub id: String,
    pub topic: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    /// The plugin that published it.
    pub source: String,
    pub published_at_ms: u64,
    /// 1 on first delivery.
    pub attempt: u32,
}

impl Event {
    pub(crate) fn from_raw(raw: event_handler::Event) -> Self {
        Self {
            id: raw.id,
            topic: raw.topic,
            key: raw.key,
            payload: raw.payload,
            source: raw.source,
            published_at_ms: raw.published_at_ms,
            attempt: raw.attempt,
        }
    }

    /// The payload parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.payload).map_err(|e| {
            Error::internal(format!(
                "event {} on '{}' has an unexpected payload: {e}",
                self.id, self.topic
            ))
        })
    }
}

/// Publishes `payload` as JSON on `topic`; returns the event id.
pub fn publish<T: Serialize + ?Sized>(topic: &str, payload: &T) -> Result<String> {
    publish_raw(topic, None, &serde_json::to_vec(payload)?)
}

/// Publishes with an ordering key: events with the same key are delivered in order.
pub fn publish_keyed<T: Serialize + ?Sized>(topic: &str, key: &str, payload: &T) -> Result<String> {
    publish_raw(topic, Some(key), &serde_json::to_vec(payload)?)
}

/// Publishes raw bytes.
pub fn publish_raw(topic: &str, key: Option<&str>, payload: &[u8]) -> Result<String> {
    raw::publish(topic, key, payload).map_err(|e| match e {
        raw::PublishError::NotPermitted(m) => Error::new(500, "event_not_permitted", m),
        raw::PublishError::Invalid(m) => Error::new(500, "event_invalid", m),
        raw::PublishError::Unavailable(m) => Error::new(503, "events_unavailable", m),
    })
}
