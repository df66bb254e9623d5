//! Delivers outbox events to subscriber plugins: at least once, retried with exponential backoff
//! and jitter, parked as dead letters after the last attempt.

use std::sync::Arc;
use std::time::Duration;

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
}

impl Dispatcher {
    pub fn new(
        bus: Arc<EventBus>,
        subscribers: Arc<dyn Subscribers>,
        config: EventsConfig,
        metrics: Metrics,
        max_handler_time: Duration,
    ) -> Self {
        Self {
            bus,
            subscribers,
            config,
            metrics,
            lease: max_handler_time + Duration::from_secs(30),
        }
    }

    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let poll = Duration::from_millis(self.config.poll_interval_ms.max(10));
        loop {
            let worked = match self.run_once().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "event dispatch failed; retrying");
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

    /// Claims and handles one batch of due deliveries; returns how many were handled.
    pub async fn run_once(&self) -> anyhow::Result<usize> {
        let now = now_ms();
        let batch = self.config.concurrency.clamp(1, 256) as u32;
        let claimed = self
            .bus
            .outbox
            .claim(now, now + self.lease.as_millis() as i64, batch)
            .await?;
        let n = claimed.len();
        futures::stream::iter(claimed)
            .for_each_concurrent(self.config.concurrency.max(1), |d| self.handle(d))
            .await;
        Ok(n)
    }

    async fn handle(&self, delivery: Delivery) {
        let attempt = delivery.attempts + 1;
        let event = EventDelivery {
            id: delivery.event.id.clone(),
            topic: delivery.event.topic.clone(),
            key: delivery.event.key.clone(),
            payload: delivery.event.payload.clone(),
            source: delivery.event.source.clone(),
            published_at_ms: delivery.event.published_at.max(0) as u64,
            attempt,
        };
        let outcome = self.subscribers.deliver(&delivery.subscriber, event).await;
        let (seq, sub) = (delivery.event_seq, delivery.subscriber.as_str());
        let result = match &outcome {
            DeliveryOutcome::Delivered | DeliveryOutcome::Gone => {
                self.bus.outbox.complete(seq, sub).await
            }
            DeliveryOutcome::NotNow => {
                let until = now_ms() + self.config.poll_interval_ms.max(1000) as i64;
                self.bus.outbox.postpone(seq, sub, until).await
            }
            DeliveryOutcome::Failed(error) => {
                let retry_at = (attempt < self.config.max_attempts)
                    .then(|| now_ms() + self.backoff(attempt).as_millis() as i64);
                if retry_at.is_none() {
                    tracing::warn!(
                        subscriber = sub,
                        event = %delivery.event.id,
                        topic = %delivery.event.topic,
                        attempts = attempt,
                        error = %error,
                        "event parked as a dead letter after its last attempt"
                    );
                }
                self.bus
                    .outbox
                    .fail(seq, sub, error, retry_at, now_ms())
                    .await
            }
        };
        let dead =
            matches!(outcome, DeliveryOutcome::Failed(_)) && attempt >= self.config.max_attempts;
        self.metrics.event_delivery(sub, outcome.label(), dead);
        if let Err(e) = result {
            // The lease runs out and the delivery is claimed again: at least once.
            tracing::warn!(subscriber = sub, error = %e, "cannot record an event delivery");
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
