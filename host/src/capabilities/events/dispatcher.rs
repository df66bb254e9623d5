//! Delivers outbox events to subscriber plugins: at least once, retried with exponential backoff
//! and jitter, parked as dead letters after the last attempt. Each node runs one dispatcher; their
//! claims carry the node id, and the outbox keeps them from taking the same delivery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::EventBus;
use super::outbox::Delivery;
use crate::config::EventsConfig;
use crate::db::now_ms;
use crate::metrics::Metrics;

/// One event on its way to one subscriber.
#[derive(Debug, Clone)]
pub struct EventDelivery {
    pub id: String,
    pub topic: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub source: String,
    pub published_at_ms: u64,
    /// 1 on the first attempt.
    pub attempt: u32,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// The handler failed or trapped; retry later.
    Failed(String),
    /// The subscriber can't take events right now (disabled, busy); try again without counting.
    NotNow,
    /// The subscriber is quarantined: park the delivery, uncounted, until it is released.
    Parked,
    /// The subscriber is no longer installed; drop the delivery.
    Gone,
}

impl DeliveryOutcome {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed(_) => "failed",
            Self::NotNow => "postponed",
            Self::Parked => "parked",
            Self::Gone => "dropped",
        }
    }
}

/// Whoever runs subscriber plugins (the plugin manager).
#[async_trait]
pub trait Subscribers: Send + Sync + 'static {
    async fn deliver(&self, subscriber: &str, event: EventDelivery) -> DeliveryOutcome;
}

/// The delivery loop.
pub struct Dispatcher {
    bus: Arc<EventBus>,
    subscribers: Arc<dyn Subscribers>,
    config: EventsConfig,
    metrics: Metrics,
    /// How long a claimed delivery stays leased: longer than any handler may run.
    lease: Duration,
    /// This node's name in claims and logs.
    node: String,
}

/// How often the backlog gauges are refreshed from the outbox.
const BACKLOG_EVERY: Duration = Duration::from_secs(2);

impl Dispatcher {
    /// A dispatcher whose lease is `[events] lease-ms`, or `max_handler_time` plus 30 s.
    pub fn new(
        bus: Arc<EventBus>,
        subscribers: Arc<dyn Subscribers>,
        config: EventsConfig,
        metrics: Metrics,
        max_handler_time: Duration,
    ) -> Self {
        let lease = config
            .lease_ms
            .map(Duration::from_millis)
            .unwrap_or(max_handler_time + Duration::from_secs(30));
        Self {
            bus,
            subscribers,
            config,
            metrics,
            lease,
            node: crate::cluster::default_node_id(),
        }
    }

    /// Names this node in claims and logs.
    pub fn with_node(mut self, node: impl Into<String>) -> Self {
        self.node = node.into();
        self
    }

    /// The lease of a claimed delivery.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(10));
        let mut backlog_at: Option<Instant> = None;
        loop {
            if backlog_at.is_none_or(|at| at.elapsed() >= BACKLOG_EVERY) {
                self.refresh_backlog().await;
                backlog_at = Some(Instant::now());
            }
            let worked = match self.run_once().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(node = %self.node, error = %e, "event dispatch failed; retrying");
                    false
                }
            };
            if worked {
                // More may be due: look again at once, but let shutdown in.
                if stop.is_cancelled() {
                    return;
                }
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.bus.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Sets the backlog gauges from the outbox.
    pub async fn refresh_backlog(&self) {
        match self.bus.outbox.backlog().await {
            Ok(rows) => self.metrics.event_backlog(
                rows.iter()
                    .map(|b| (b.subscriber.as_str(), b.pending, b.dead)),
            ),
            Err(e) => tracing::debug!(error = %e, "cannot count the event backlog"),
        }
    }

    /// Claims and handles one batch of due deliveries; returns how many were handled.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let now = now_ms();
        let batch = self.config.concurrency.clamp(1, 256) as u32;
        let claimed = self
            .bus
            .outbox
            .claim(now, now + self.lease.as_millis() as i64, batch, &self.node)
            .await?;
        let n = claimed.len();
        futures::stream::iter(claimed)
            .for_each_concurrent(self.config.concurrency.max(1), |d| self.handle(d))
            .await;
        Ok(n)
    }

    async fn handle(&self, delivery: Delivery) {
        let attempt = delivery.attempts + 1;
        let sub = delivery.subscriber.as_str();
        if attempt > self.config.max_attempts {
            // Every attempt so far outlived its lease (a handler that hangs, nodes that died).
            let error = format!(
                "{} attempts ran out of their lease ({} ms) without an outcome",
                delivery.attempts,
                self.lease.as_millis()
            );
            tracing::warn!(node = %self.node, subscriber = sub, event = %delivery.event.id, "event parked as a dead letter: {error}");
            self.metrics.event_delivery(sub, "failed", true);
            if let Err(e) = self
                .bus
                .outbox
                .fail(&delivery, &error, None, now_ms())
                .await
            {
                tracing::warn!(subscriber = sub, error = %e, "cannot record an event delivery");
            }
            return;
        }
        let event = EventDelivery {
            id: delivery.event.id.clone(),
            topic: delivery.event.topic.clone(),
            key: delivery.event.key.clone(),
            payload: delivery.event.payload.clone(),
            source: delivery.event.source.clone(),
            published_at_ms: delivery.event.published_at.max(0) as u64,
            attempt,
        };
        let outcome = self.subscribers.deliver(sub, event).await;
        let mut dead = false;
        let result = match &outcome {
            DeliveryOutcome::Delivered | DeliveryOutcome::Gone => {
                self.bus.outbox.complete(&delivery).await
            }
            DeliveryOutcome::NotNow => {
                let until = now_ms() + self.config.poll_interval_ms.max(1000) as i64;
                self.bus.outbox.postpone(&delivery, until).await
            }
            DeliveryOutcome::Parked => {
                // Released plugins get theirs back at once (`EventBus::resume`); the hour is
                // only a fallback should that wake-up be missed.
                let until = now_ms() + 3_600_000;
                self.bus.outbox.postpone(&delivery, until).await
            }
            DeliveryOutcome::Failed(error) => {
                let retry_at = (attempt < self.config.max_attempts)
                    .then(|| now_ms() + self.backoff(attempt).as_millis() as i64);
                dead = retry_at.is_none();
                self.bus
                    .outbox
                    .fail(&delivery, error, retry_at, now_ms())
                    .await
            }
        };
        match result {
            Ok(true) => {
                if outcome == DeliveryOutcome::Delivered {
                    let latency = now_ms().saturating_sub(delivery.event.published_at);
                    self.metrics
                        .event_delivered(sub, Duration::from_millis(latency.max(0) as u64));
                }
                if let DeliveryOutcome::Failed(error) = &outcome {
                    if dead {
                        tracing::warn!(
                            node = %self.node,
                            subscriber = sub,
                            event = %delivery.event.id,
                            topic = %delivery.event.topic,
                            attempts = attempt,
                            error = %error,
                            "event parked as a dead letter after its last attempt"
                        );
                    } else {
                        self.metrics.event_retry(sub);
                    }
                }
                self.metrics.event_delivery(sub, outcome.label(), dead);
            }
            Ok(false) => {
                // The lease ran out while the handler ran, and another claim (maybe another
                // node) has the delivery now: its outcome counts, not this one.
                tracing::warn!(
                    node = %self.node,
                    subscriber = sub,
                    event = %delivery.event.id,
                    outcome = outcome.label(),
                    lease_ms = self.lease.as_millis() as u64,
                    "the handler outlived its lease; its outcome is dropped"
                );
                self.metrics.event_delivery(sub, "lease_lost", false);
            }
            Err(e) => {
                // The lease runs out and the delivery is claimed again: at least once.
                self.metrics.event_delivery(sub, outcome.label(), false);
                tracing::warn!(subscriber = sub, error = %e, "cannot record an event delivery");
            }
        }
    }

    /// `base * 2^(attempt-1)`, capped, with ±20% jitter so retries of many events spread out.
    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.base_backoff_ms.max(1) as f64;
        let raw = (base * 2f64.powi(attempt.saturating_sub(1).min(30) as i32))
            .min(self.config.max_backoff_ms as f64);
        let mut byte = [0u8; 1];
        let _ = getrandom::fill(&mut byte);
        let jitter = 0.8 + 0.4 * (f64::from(byte[0]) / 255.0);
        Duration::from_millis((raw * jitter) as u64)
    }
}
