//! The durable event outbox: events and their pending deliveries, in the site database.
//!
//! Publishing writes the event and one delivery row per subscriber in one transaction. The
//! dispatcher claims due deliveries with a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so several
//! nodes never claim the same row; SQLite: the single writer connection), and completes, retries
//! or parks each one. A node that dies mid-delivery leaves a lease that expires, and the delivery
//! is claimed again: delivery is at least once.
//!
//! Ordering: deliveries of one (subscriber, topic, key) are claimed one at a time in publishing
//! order — a delivery is not claimed while an earlier one of its group is pending, even when that
//! one waits for a retry. A dead letter no longer blocks its group; replaying it delivers it after
//! its successors. Events without a key are unordered.
//!
//! Every claim has an id (`NODE/UUID`, kept in `claimed_by`); completing, failing or postponing a
//! delivery only takes effect while the row still carries that claim, so a handler that outlived
//! its lease can't settle the delivery another claim took over.

use async_trait::async_trait;
use serde::Serialize;

use crate::db::{Db, on_db};

#[derive(Debug, thiserror::Error)]
#[error("event outbox failed: {0}")]
pub struct StoreError(#[from] sqlx::Error);

// The statements of a publish, shared with the install switch (which publishes what a hook staged
// in its own transaction). Both databases accept them. A delivery copies its event's topic and
// key, which the claim's ordering check reads.
pub(crate) const INSERT_EVENT: &str = "INSERT INTO events (id, topic, key, payload, source, published_at) \
                                       VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq";
pub(crate) const INSERT_DELIVERY: &str = "INSERT INTO deliveries (event_seq, subscriber, next_attempt_at, updated_at, topic, key) \
                                          SELECT $1, $2, $3, $3, topic, key FROM events WHERE seq = $1";

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
    /// Attempts started before this one (a lease that ran out counts as one).
    pub attempts: u32,
    /// The claim that leased it (`NODE/UUID`).
    pub claim: String,
    pub event: NewEvent,
}

/// An event that could not be delivered.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub event_id: String,
    pub topic: String,
    pub key: Option<String>,
    pub subscriber: String,
    pub source: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub published_at: String,
    pub failed_at: String,
    /// The payload as text when it is UTF-8 (JSON usually), else base64.
    pub payload: String,
    /// Pass as `before` to list the letters after this one.
    pub cursor: String,
}

/// Which dead letters to list.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterQuery {
    pub subscriber: Option<String>,
    pub topic: Option<String>,
    /// A [`DeadLetter::cursor`]: list the letters after it (older events).
    pub before: Option<Cursor>,
    pub limit: u32,
}

/// A position in the dead-letter list: newest event first, then by subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub event_seq: i64,
    pub subscriber: String,
}

impl Cursor {
    pub fn parse(s: &str) -> Option<Self> {
        let (seq, subscriber) = s.split_once(':')?;
        Some(Self {
            event_seq: seq.parse().ok()?,
            subscriber: subscriber.to_string(),
        })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.event_seq, self.subscriber)
    }
}

/// Which dead letters to replay or discard.
#[derive(Debug, Clone)]
pub enum Selection {
    /// One event's letter for one subscriber.
    One {
        event_id: String,
        subscriber: String,
    },
    /// Every letter of a subscriber and/or a topic (at least one is set).
    Matching {
        subscriber: Option<String>,
        topic: Option<String>,
    },
}

/// Pending and dead deliveries of one subscriber.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    pub subscriber: String,
    pub pending: i64,
    pub dead: i64,
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
    /// Leases up to `limit` due deliveries until `lease_until` for `claimer` (a node id), at most
    /// the earliest pending one of each (subscriber, topic, key), and counts an attempt for each.
    async fn claim(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
        claimer: &str,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Removes a delivered delivery, and its event once no delivery is left. `false` when the
    /// delivery is no longer held by this claim (the lease ran out and another claim took it).
    async fn complete(&self, delivery: &Delivery) -> Result<bool, StoreError>;
    /// Records a failed attempt: retried at `retry_at`, or parked as a dead letter when `None`.
    /// `false` when the delivery is no longer held by this claim.
    async fn fail(
        &self,
        delivery: &Delivery,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Puts a claimed delivery back without counting the attempt (its subscriber can't take it
    /// now). `false` when the delivery is no longer held by this claim.
    async fn postpone(&self, delivery: &Delivery, until: i64) -> Result<bool, StoreError>;
    /// Makes `subscriber`'s pending deliveries due at `now` (they were parked while it was
    /// quarantined); returns how many.
    async fn resume(&self, subscriber: &str, now: i64) -> Result<u64, StoreError>;
    /// Dead letters, newest event first.
    async fn list_dead(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>, StoreError>;
    /// Makes the selected dead letters pending again, due at `now`, with no attempts counted;
    /// returns how many.
    async fn replay(&self, selection: &Selection, now: i64) -> Result<u64, StoreError>;
    /// Deletes the selected dead letters (and their events once nothing refers to them); returns
    /// how many.
    async fn discard(&self, selection: &Selection) -> Result<u64, StoreError>;
    /// Pending and dead deliveries per subscriber.
    async fn backlog(&self) -> Result<Vec<Backlog>, StoreError>;

    /// The newest `limit` dead letters.
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        self.list_dead(&DeadLetterQuery {
            limit,
            ..Default::default()
        })
        .await
    }
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

/// The deliveries a claim may take: due, not leased, and the earliest pending one of their
/// (subscriber, topic, key); longest due first, which `deliveries_due` gives without sorting.
/// `$3` is now, `$4` the batch size.
macro_rules! claimable {
    ($lock:literal) => {
        concat!(
            "SELECT d.event_seq, d.subscriber FROM deliveries d \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $3 \
             AND (d.locked_until IS NULL OR d.locked_until <= $3) \
             AND (d.key IS NULL OR NOT EXISTS (SELECT 1 FROM deliveries p \
                WHERE p.subscriber = d.subscriber AND p.topic = d.topic AND p.key = d.key \
                AND p.state = 'pending' AND p.key IS NOT NULL AND p.event_seq < d.event_seq)) \
             ORDER BY d.next_attempt_at, d.event_seq LIMIT $4",
            $lock
        )
    };
}

/// The claim of a batch (the tests run `EXPLAIN` on it).
pub const CLAIM_SQLITE: &str = concat!(
    "UPDATE deliveries SET locked_until = $1, claimed_by = $2, attempts = attempts + 1 \
     WHERE (event_seq, subscriber) IN (",
    claimable!(""),
    ")"
);
pub const CLAIM_POSTGRES: &str = concat!(
    "UPDATE deliveries SET locked_until = $1, claimed_by = $2, attempts = attempts + 1 \
     WHERE (event_seq, subscriber) IN (",
    claimable!(" FOR UPDATE SKIP LOCKED"),
    ")"
);
const CLAIMED: &str = "SELECT d.event_seq, d.subscriber, d.attempts, e.id, e.topic, e.key, e.payload, e.source, e.published_at \
     FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.claimed_by = $1 ORDER BY d.event_seq";

/// Dead letters matching a selection: `$1` event id, `$2` subscriber, `$3` topic (each `NULL`
/// for any).
const SELECTED: &str = "state = 'dead' \
     AND ($1 IS NULL OR event_seq = (SELECT seq FROM events WHERE id = $1)) \
     AND ($2 IS NULL OR subscriber = $2) AND ($3 IS NULL OR topic = $3)";

fn selection_binds(selection: &Selection) -> (Option<&str>, Option<&str>, Option<&str>) {
    match selection {
        Selection::One {
            event_id,
            subscriber,
        } => (Some(event_id), Some(subscriber), None),
        Selection::Matching { subscriber, topic } => {
            (None, subscriber.as_deref(), topic.as_deref())
        }
    }
}

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
        claimer: &str,
    ) -> Result<Vec<Delivery>, StoreError> {
        let claim_id = format!("{claimer}/{}", uuid::Uuid::new_v4().simple());
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
                        // The claim counted this attempt already.
                        attempts: (attempts - 1).max(0) as u32,
                        claim: claim_id.clone(),
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

    async fn complete(&self, delivery: &Delivery) -> Result<bool, StoreError> {
        if let Db::Postgres(pool) = &self.db {
            // One statement, one round trip. The statement's snapshot still sees the delivery it
            // deletes, so "no other delivery left" excludes this subscriber.
            let (deleted,): (i64,) = sqlx::query_as(
                "WITH done AS (DELETE FROM deliveries WHERE event_seq = $1 AND subscriber = $2 AND claimed_by = $3 \
                 RETURNING event_seq), \
                 gone AS (DELETE FROM events WHERE seq IN (SELECT event_seq FROM done) AND NOT EXISTS \
                 (SELECT 1 FROM deliveries WHERE event_seq = $1 AND subscriber <> $2)) \
                 SELECT COUNT(*) FROM done",
            )
            .bind(delivery.event_seq)
            .bind(&delivery.subscriber)
            .bind(&delivery.claim)
            .fetch_one(pool)
            .await?;
            return Ok(deleted > 0);
        }
        on_db!(&self.db, write, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "DELETE FROM deliveries WHERE event_seq = $1 AND subscriber = $2 AND claimed_by = $3",
            )
            .bind(delivery.event_seq)
            .bind(&delivery.subscriber)
            .bind(&delivery.claim)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM events WHERE seq = $1 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = $1)")
                .bind(delivery.event_seq)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    async fn fail(
        &self,
        delivery: &Delivery,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (state, next) = match retry_at {
            Some(at) => ("pending", at),
            None => ("dead", now),
        };
        let changed = on_db!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE deliveries SET state = $1, next_attempt_at = $2, locked_until = NULL, \
                 claimed_by = NULL, last_error = $3, updated_at = $4 \
                 WHERE event_seq = $5 AND subscriber = $6 AND claimed_by = $7",
            )
            .bind(state)
            .bind(next)
            .bind(error)
            .bind(now)
            .bind(delivery.event_seq)
            .bind(&delivery.subscriber)
            .bind(&delivery.claim)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(changed > 0)
    }

    async fn postpone(&self, delivery: &Delivery, until: i64) -> Result<bool, StoreError> {
        let changed = on_db!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE deliveries SET next_attempt_at = $1, locked_until = NULL, claimed_by = NULL, \
                 attempts = attempts - 1 WHERE event_seq = $2 AND subscriber = $3 AND claimed_by = $4",
            )
            .bind(until)
            .bind(delivery.event_seq)
            .bind(&delivery.subscriber)
            .bind(&delivery.claim)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(changed > 0)
    }

    async fn resume(&self, subscriber: &str, now: i64) -> Result<u64, StoreError> {
        Ok(on_db!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE deliveries SET next_attempt_at = $1 \
                 WHERE subscriber = $2 AND state = 'pending' AND next_attempt_at > $1 AND claimed_by IS NULL",
            )
            .bind(now)
            .bind(subscriber)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?)
    }

    async fn list_dead(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>, StoreError> {
        type Row = (
            i64,
            String,
            String,
            Option<String>,
            String,
            String,
            i32,
            Option<String>,
            i64,
            i64,
            Vec<u8>,
        );
        let (before_seq, before_sub) = match &query.before {
            Some(c) => (Some(c.event_seq), Some(c.subscriber.as_str())),
            None => (None, None),
        };
        let rows: Vec<Row> = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT d.event_seq, e.id, e.topic, e.key, d.subscriber, e.source, d.attempts, d.last_error, \
                 e.published_at, d.updated_at, e.payload \
                 FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.state = 'dead' \
                 AND ($1 IS NULL OR d.subscriber = $1) AND ($2 IS NULL OR d.topic = $2) \
                 AND ($3 IS NULL OR d.event_seq < $3 OR (d.event_seq = $3 AND d.subscriber > $4)) \
                 ORDER BY d.event_seq DESC, d.subscriber LIMIT $5",
            )
            .bind(query.subscriber.as_deref())
            .bind(query.topic.as_deref())
            .bind(before_seq)
            .bind(before_sub)
            .bind(i64::from(query.limit.clamp(1, 1000)))
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    seq,
                    event_id,
                    topic,
                    key,
                    subscriber,
                    source,
                    attempts,
                    last_error,
                    published_at,
                    failed_at,
                    payload,
                )| DeadLetter {
                    cursor: Cursor {
                        event_seq: seq,
                        subscriber: subscriber.clone(),
                    }
                    .to_string(),
                    event_id,
                    topic,
                    key,
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

    async fn replay(&self, selection: &Selection, now: i64) -> Result<u64, StoreError> {
        let (event_id, subscriber, topic) = selection_binds(selection);
        let sql = format!(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $4, locked_until = NULL, \
             claimed_by = NULL, last_error = NULL, updated_at = $4 WHERE {SELECTED}"
        );
        let changed = on_db!(&self.db, write, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(event_id)
                .bind(subscriber)
                .bind(topic)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(changed)
    }

    async fn discard(&self, selection: &Selection) -> Result<u64, StoreError> {
        let (event_id, subscriber, topic) = selection_binds(selection);
        let select = format!("SELECT DISTINCT event_seq FROM deliveries WHERE {SELECTED}");
        let delete = format!("DELETE FROM deliveries WHERE {SELECTED}");
        on_db!(&self.db, write, |pool| {
            let mut tx = pool.begin().await?;
            let seqs: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(select))
                .bind(event_id)
                .bind(subscriber)
                .bind(topic)
                .fetch_all(&mut *tx)
                .await?;
            let deleted = sqlx::query(sqlx::AssertSqlSafe(delete))
                .bind(event_id)
                .bind(subscriber)
                .bind(topic)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for seq in seqs {
                sqlx::query("DELETE FROM events WHERE seq = $1 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_seq = $1)")
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(deleted)
        })
    }

    async fn backlog(&self) -> Result<Vec<Backlog>, StoreError> {
        let rows: Vec<(String, i64, i64)> = on_db!(&self.db, read, |pool| {
            sqlx::query_as(
                "SELECT subscriber, \
                 CAST(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END) AS BIGINT), \
                 CAST(SUM(CASE WHEN state = 'dead' THEN 1 ELSE 0 END) AS BIGINT) \
                 FROM deliveries GROUP BY subscriber ORDER BY subscriber",
            )
            .fetch_all(pool)
            .await
        })?;
        Ok(rows
            .into_iter()
            .map(|(subscriber, pending, dead)| Backlog {
                subscriber,
                pending,
                dead,
            })
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
