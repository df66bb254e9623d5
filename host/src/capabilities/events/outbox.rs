//! The durable event outbox: events and their pending deliveries, in the site database.
//!
//! Publishing writes the event and one delivery row per subscriber in one transaction. The
//! dispatcher claims due deliveries with a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several
//! nodes never claim the same row; SQLite: the single writer connection), and completes, retries
//! or parks each one. A node that dies mid-delivery leaves a lease that expires, and the delivery
//! is claimed again: delivery is at least once.

use async_trait::async_trait;
use serde::Serialize;

use crate::db::{Db, on_db};

#[derive(Debug, thiserror::Error)]
#[error("event outbox failed: {0}")]
pub struct StoreError(#[from] sqlx::Error);

// The statements of a publish, shared with the install switch (which publishes what a hook staged
// in its own transaction). Both databases accept them.
pub(crate) const INSERT_EVENT: &str = "INSERT INTO events (id, topic, key, payload, source, published_at) \
                                       VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq";
pub(crate) const INSERT_DELIVERY: &str = "INSERT INTO deliveries (event_seq, subscriber, next_attempt_at, updated_at) \
                                          VALUES ($1, $2, $3, $3)";

/// An event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub topic: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub source: String,
    pub published_at: i64,
}

/// A claimed delivery: one event for one subscriber.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event_seq: i64,
    pub subscriber: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub event: NewEvent,
}

/// An event that could not be delivered.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub event_id: String,
    pub topic: String,
    pub subscriber: String,
    pub source: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub published_at: String,
    pub failed_at: String,
    /// The payload as text when it is UTF-8 (JSON usually), else base64.
    pub payload: String,
}

#[async_trait]
pub trait OutboxBackend: Send + Sync + 'static {
    /// Stores `event` with a pending delivery for each subscriber, atomically.
    async fn publish(
        &self,
        event: &NewEvent,
        subscribers: &[String],
        now: i64,
    ) -> Result<(), StoreError>;
    /// Leases up to `limit` due deliveries until `lease_until`.
    async fn claim(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Removes a delivered delivery, and its event once no delivery is left.
    async fn complete(&self, event_seq: i64, subscriber: &str) -> Result<(), StoreError>;
    /// Records a failed attempt: retried at `retry_at`, or parked as a dead letter when `None`.
    async fn fail(
        &self,
        event_seq: i64,
        subscriber: &str,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Puts a claimed delivery back without counting an attempt (its subscriber can't take it now).
    async fn postpone(
        &self,
        event_seq: i64,
        subscriber: &str,
        until: i64,
    ) -> Result<(), StoreError>;
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError>;
}

/// The outbox for a database.
pub fn for_db(db: &Db) -> std::sync::Arc<dyn OutboxBackend> {
    std::sync::Arc::new(SqlOutbox { db: db.clone() })
}

#[derive(Debug)]
struct SqlOutbox {
    db: Db,
}

type ClaimRow = (
    i64,
    String,
    i32,
    String,
    String,
    Option<String>,
    Vec<u8>,
    String,
    i64,
);

const CLAIM_SQLITE: &str = "UPDATE deliveries SET locked_until = $1, claimed_by = $2 \
     WHERE (event_seq, subscriber) IN (\
        SELECT event_seq, subscriber FROM deliveries \
        WHERE state = 'pending' AND next_attempt_at <= $3 AND (locked_until IS NULL OR locked_until <= $3) \
        ORDER BY event_seq LIMIT $4)";
const CLAIM_POSTGRES: &str = "UPDATE deliveries SET locked_until = $1, claimed_by = $2 \
     WHERE (event_seq, subscriber) IN (\
        SELECT event_seq, subscriber FROM deliveries \
        WHERE state = 'pending' AND next_attempt_at <= $3 AND (locked_until IS NULL OR locked_until <= $3) \
        ORDER BY event_seq LIMIT $4 FOR UPDATE SKIP LOCKED)";
const CLAIMED: &str = "SELECT d.event_seq, d.subscriber, d.attempts, e.id, e.topic, e.key, e.payload, e.source, e.published_at \
     FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.claimed_by = $1 ORDER BY d.event_seq";

#[async_trait]
impl OutboxBackend for SqlOutbox {
    async fn publish(
        &self,
        event: &NewEvent,
        subscribers: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        on_db!(&self.db, write, |pool| {
            let mut tx = pool.begin().await?;
            let (seq,): (i64,) = sqlx::query_as(INSERT_EVENT)
                .bind(&event.id)
                .bind(&event.topic)
                .bind(&event.key)
                .bind(&event.payload)
                .bind(&event.source)
                .bind(event.published_at)
                .fetch_one(&mut *tx)
                .await?;
            for subscriber in subscribers {
                sqlx::query(INSERT_DELIVERY)
                    .bind(seq)
                    .bind(subscriber)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    async fn claim(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let claim_id = uuid::Uuid::new_v4().simple().to_string();
        let claim_sql = match &self.db {
            Db::Sqlite { .. } => CLAIM_SQLITE,
            Db::Postgres(_) => CLAIM_POSTGRES,
        };
        let rows: Vec<ClaimRow> = on_db!(&self.db, write, |pool| {
            let done = sqlx::query(claim_sql)
                .bind(lease_until)
                .bind(&claim_id)
                .bind(now)
                .bind(i64::from(limit))
                .execute(pool)
                .await?;
            if done.rows_affected() == 0 {
                Ok::<_, sqlx::Error>(Vec::new())
            } else {
                sqlx::query_as(CLAIMED)
                    .bind(&claim_id)
                    .fetch_all(pool)
                    .await
            }
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(seq, subscriber, attempts, id, topic, key, payload, source, published_at)| {
                    Delivery {
                        event_seq: seq,
                        subscriber,
                        attempts: attempts.max(0) as u32,
                        event: NewEvent {
                            id,
                            topic,
                            key,
                            payload,
                            source,
                            published_at,
                        },
                    }
                },
            )
            .collect())
    }

    async fn complete(&self, event_seq: i64, subscriber: &str) -> Result<(), StoreError> {
        on_db!(&self.db, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM deliveries WHERE event_seq = $1 AND subscriber = $2")
                .bind(event_seq)
                .bind(subscriber)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM events WHERE seq = $1 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = $1)")
                .bind(event_seq)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    async fn fail(
        &self,
        event_seq: i64,
        subscriber: &str,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        let (state, next) = match retry_at {
            Some(at) => ("pending", at),
            None => ("dead", now),
        };
        on_db!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = $2, locked_until = NULL, \
                 claimed_by = NULL, last_error = $3, updated_at = $4 WHERE event_seq = $5 AND subscriber = $6",
            )
            .bind(state)
            .bind(next)
            .bind(error)
            .bind(now)
            .bind(event_seq)
            .bind(subscriber)
            .execute(pool)
            .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    async fn postpone(
        &self,
        event_seq: i64,
        subscriber: &str,
        until: i64,
    ) -> Result<(), StoreError> {
        on_db!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE deliveries SET next_attempt_at = $1, locked_until = NULL, claimed_by = NULL \
                 WHERE event_seq = $2 AND subscriber = $3",
            )
            .bind(until)
            .bind(event_seq)
            .bind(subscriber)
            .execute(pool)
            .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        type Row = (
            String,
            String,
            String,
            String,
            i32,
            Option<String>,
            i64,
            i64,
            Vec<u8>,
        );
        let rows: Vec<Row> = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT e.id, e.topic, d.subscriber, e.source, d.attempts, d.last_error, e.published_at, d.updated_at, e.payload \
                 FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.state = 'dead' \
                 ORDER BY d.updated_at DESC LIMIT $1",
            )
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    event_id,
                    topic,
                    subscriber,
                    source,
                    attempts,
                    last_error,
                    published_at,
                    failed_at,
                    payload,
                )| DeadLetter {
                    event_id,
                    topic,
                    subscriber,
                    source,
                    attempts: attempts.max(0) as u32,
                    last_error,
                    published_at: crate::db::rfc3339(published_at),
                    failed_at: crate::db::rfc3339(failed_at),
                    payload: String::from_utf8(payload).unwrap_or_else(|e| {
                        use base64::Engine as _;
                        base64::engine::general_purpose::STANDARD.encode(e.into_bytes())
                    }),
                },
            )
            .collect())
    }
}

/// Events (with their subscribers) to write inside another capability's transaction: a
/// documents batch commits its writes and these events together, or neither.
#[derive(Debug, Default)]
pub struct InTransaction {
    events: Vec<(NewEvent, Vec<String>)>,
}

impl InTransaction {
    pub fn new(events: Vec<(NewEvent, Vec<String>)>) -> Self {
        Self { events }
    }

    /// Events that will be published.
    pub fn count(&self) -> usize {
        self.events.len()
    }

    /// The statements to run in the transaction; none when there is nothing to store (an event
    /// nobody subscribes to is published without being stored, as by `events.publish`).
    pub fn into_hook(self) -> Option<ucms_documents::AlsoInTx> {
        let events: Vec<_> = self
            .events
            .into_iter()
            .filter(|(_, subscribers)| !subscribers.is_empty())
            .collect();
        if events.is_empty() {
            return None;
        }
        Some(Box::new(move |tx: &mut ucms_db::Tx| {
            Box::pin(async move {
                for (event, subscribers) in &events {
                    let seq: i64 =
                        ucms_db::on_tx!(&mut *tx, |conn| sqlx::query_scalar(INSERT_EVENT)
                            .bind(&event.id)
                            .bind(&event.topic)
                            .bind(&event.key)
                            .bind(&event.payload)
                            .bind(&event.source)
                            .bind(event.published_at)
                            .fetch_one(conn)
                            .await)?;
                    for subscriber in subscribers {
                        ucms_db::on_tx!(&mut *tx, |conn| sqlx::query(INSERT_DELIVERY)
                            .bind(seq)
                            .bind(subscriber)
                            .bind(event.published_at)
                            .execute(conn)
                            .await
                            .map(|_| ()))?;
                    }
                }
                Ok(())
            })
        }))
    }
}
