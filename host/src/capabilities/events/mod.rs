//! `ucms:host/events`: publishing to a durable outbox, and delivering to subscribers.
//!
//! A plugin publishes only to topics its manifest grants. [`Subscriptions`] (kept current by the
//! plugin manager) says which enabled plugins subscribe to a topic; publishing writes the event and
//! one delivery per subscriber in one transaction ([`outbox`]). The [`dispatcher`] delivers them at
//! least once, with exponential backoff, and parks what keeps failing as dead letters.

pub mod dispatcher;
pub mod outbox;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use ucms_manifest::{EventsGrant, TopicPattern};
use wasmtime::component::{HasData, Linker};

pub use dispatcher::{DeliveryOutcome, Dispatcher, EventDelivery, Subscribers};
pub use outbox::{DeadLetter, DeadLetterQuery, NewEvent, OutboxBackend, Selection};
pub(crate) use outbox::{INSERT_DELIVERY, INSERT_EVENT};

use super::rate::{Admission, PerMinute};
use crate::metrics::Metrics;
use crate::runtime::health::Health;
use crate::wit::latest::ucms::host::events::{self as wit, PublishError};

/// Longest ordering key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;

/// Which enabled plugins subscribe to which topic patterns.
#[derive(Debug, Default)]
pub struct Subscriptions {
    entries: ArcSwap<Vec<(String, Vec<TopicPattern>)>>,
}

impl Subscriptions {
    /// Replaces the table (the plugin manager calls this whenever plugins change).
    pub fn replace(&self, entries: Vec<(String, Vec<TopicPattern>)>) {
        self.entries.store(Arc::new(entries));
    }

    /// The plugins subscribed to `topic`.
    pub fn subscribers(&self, topic: &str) -> Vec<String> {
        self.entries
            .load()
            .iter()
            .filter(|(_, patterns)| patterns.iter().any(|p| p.matches(topic)))
            .map(|(plugin, _)| plugin.clone())
            .collect()
    }
}

/// Called when this node published events, to wake the dispatchers of other nodes.
pub type RemoteWake = Arc<dyn Fn() + Send + Sync>;

/// The site-wide parts of the events capability.
pub struct EventBus {
    pub outbox: Arc<dyn OutboxBackend>,
    pub subscriptions: Subscriptions,
    /// Wakes the dispatcher when something was published.
    pub wake: Notify,
    /// Set when the site runs as one of several nodes ([`crate::cluster`]).
    remote_wake: std::sync::OnceLock<RemoteWake>,
}

impl EventBus {
    pub fn new(outbox: Arc<dyn OutboxBackend>) -> Self {
        Self {
            outbox,
            subscriptions: Subscriptions::default(),
            wake: Notify::new(),
            remote_wake: std::sync::OnceLock::new(),
        }
    }

    /// Something was published: wake this node's dispatcher and, in a cluster, the others'.
    pub fn published(&self) {
        self.wake.notify_one();
        if let Some(remote) = self.remote_wake.get() {
            remote();
        }
    }

    /// Delivers `subscriber`'s parked deliveries now (it was released from quarantine).
    pub async fn resume(&self, subscriber: &str) {
        match self.outbox.resume(subscriber, crate::db::now_ms()).await {
            Ok(n) if n > 0 => {
                tracing::info!(
                    plugin = subscriber,
                    deliveries = n,
                    "parked event deliveries resumed"
                );
                self.published();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(plugin = subscriber, error = %e, "cannot resume parked deliveries")
            }
        }
    }

    /// Installs the hook that wakes other nodes (once; later calls are ignored).
    pub fn set_remote_wake(&self, wake: RemoteWake) {
        let _ = self.remote_wake.set(wake);
    }
}

/// What `events.publish` sees of the invocation.
pub struct EventsCtx<'a> {
    pub plugin: &'a str,
    pub grant: Option<&'a EventsGrant>,
    pub bus: &'a EventBus,
    pub metrics: &'a Metrics,
    pub max_payload: usize,
    /// Set for `install` and `upgrade` hooks: what they publish waits for the switch.
    pub staged: Option<&'a StagedEvents>,
    /// `limits.events-per-minute`.
    pub rate: &'a PerMinute,
    pub health: &'a Health,
}

/// Most events one install or upgrade hook may publish.
pub const MAX_STAGED_EVENTS: usize = 1000;

/// Events published by an install or upgrade hook, held until the switch publishes them in its
/// transaction: a hook that fails, or a process killed before the switch, publishes nothing.
#[derive(Debug, Default)]
pub struct StagedEvents(std::sync::Mutex<Vec<NewEvent>>);

impl StagedEvents {
    fn push(&self, event: NewEvent) -> Result<(), PublishError> {
        let mut events = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() >= MAX_STAGED_EVENTS {
            return Err(PublishError::Invalid(format!(
                "an install or upgrade hook may publish at most {MAX_STAGED_EVENTS} events"
            )));
        }
        events.push(event);
        Ok(())
    }

    /// Takes the staged events, in publishing order.
    pub fn take(&self) -> Vec<NewEvent> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Events;

impl HasData for Events {
    type Data<'a> = EventsCtx<'a>;
}

/// Store data that can give the `ucms:host/events` host functions their view of the invocation.
pub trait EventsView: Send {
    fn events(&mut self) -> EventsCtx<'_>;
}

/// Links `ucms:host/events`.
pub fn add_to_linker<T: EventsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, Events>(linker, T::events)
}

/// A publish error as one sentence, for messages that wrap it.
pub fn describe(error: &PublishError) -> String {
    match error {
        PublishError::NotPermitted(m) | PublishError::Invalid(m) | PublishError::Unavailable(m) => {
            m.clone()
        }
    }
}

impl EventsCtx<'_> {
    /// Checks an event the plugin wants to publish and gives it an id: the rules of `publish`.
    pub fn prepare(
        &self,
        topic: String,
        key: Option<String>,
        payload: Vec<u8>,
    ) -> Result<NewEvent, PublishError> {
        if !ucms_manifest::is_valid_topic(&topic) {
            return Err(PublishError::Invalid(format!(
                "'{topic}' is not a topic: use dot-separated lower-case segments such as 'orders.placed'"
            )));
        }
        if !self.grant.is_some_and(|g| g.may_publish(&topic)) {
            let message = format!(
                "the manifest does not grant publishing to '{topic}'; add it to [capabilities.events] publish"
            );
            self.health.refused("events", &message);
            return Err(PublishError::NotPermitted(message));
        }
        if key.as_ref().is_some_and(|k| k.len() > MAX_KEY_BYTES) {
            return Err(PublishError::Invalid(format!(
                "ordering keys are at most {MAX_KEY_BYTES} bytes"
            )));
        }
        if payload.len() > self.max_payload {
            return Err(PublishError::Invalid(format!(
                "the payload is {} bytes; events carry at most {} bytes",
                payload.len(),
                self.max_payload
            )));
        }
        if let Admission::Refused { first } = self.rate.admit() {
            let message = format!(
                "the plugin publishes more than its {} events per minute (limits.events-per-minute); try again later",
                self.rate.rate()
            );
            // One log line and breach per run of refusals, not one per refused event.
            if first {
                self.health
                    .breach("events-per-minute", "event_rate_exceeded", &message);
            }
            return Err(PublishError::Unavailable(message));
        }
        Ok(NewEvent {
            id: uuid::Uuid::now_v7().to_string(),
            topic,
            key,
            payload,
            source: self.plugin.to_string(),
            published_at: crate::db::now_ms(),
        })
    }

    /// Events to write into the outbox inside another capability's transaction (a documents
    /// batch), with their subscribers resolved now.
    pub fn in_transaction(&self, events: Vec<NewEvent>) -> outbox::InTransaction {
        let events = events
            .into_iter()
            .map(|e| {
                let subscribers = self.bus.subscriptions.subscribers(&e.topic);
                (e, subscribers)
            })
            .collect();
        outbox::InTransaction::new(events)
    }

    /// After the transaction holding `published` events committed: count them and wake the
    /// dispatcher.
    pub fn after_commit(&self, published: usize) {
        if published > 0 {
            for _ in 0..published {
                self.metrics.event_published(self.plugin, 0);
            }
            self.bus.published();
        }
    }
}

impl wit::Host for EventsCtx<'_> {
    #[tracing::instrument(
        name = "events.publish",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn publish(
        &mut self,
        topic: String,
        key: Option<String>,
        payload: Vec<u8>,
    ) -> wasmtime::Result<Result<String, PublishError>> {
        let event = match self.prepare(topic, key, payload) {
            Ok(event) => event,
            Err(e) => return Ok(Err(e)),
        };
        let now = event.published_at;
        if let Some(staged) = self.staged {
            let id = event.id.clone();
            return Ok(staged.push(event).map(|()| id));
        }
        let subscribers = self.bus.subscriptions.subscribers(&event.topic);
        if !subscribers.is_empty() {
            if let Err(e) = self.bus.outbox.publish(&event, &subscribers, now).await {
                tracing::warn!(plugin = self.plugin, error = %e, "cannot publish an event");
                return Ok(Err(PublishError::Unavailable(
                    "the event outbox is unavailable; try again later".into(),
                )));
            }
            self.bus.published();
        }
        self.metrics.event_published(self.plugin, subscribers.len());
        Ok(Ok(event.id))
    }
}
