//! The outbox relay: publishes committed outbox rows with the idempotent producer, oldest first,
//! in batches, and deletes them once the broker acknowledged. It sleeps until woken by a commit
//! (with a slow tick as a safety net), so an event leaves right after its transaction commits.
//! On SQLite acknowledged rows are deleted together rather than after each publish (see
//! `Acknowledged`).
//! With several replicas on one database, one relay publishes: the holder of the outbox's lease
//! (a row published by two replicas would reach every consumer twice). On PostgreSQL every
//! commit that adds rows notifies it (LISTEN/NOTIFY), so rows another replica wrote leave as
//! fast as its own.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use orderly_proto::events::v1::EventEnvelope;
use prost::Message;
use sea_orm::{DatabaseConnection, DbBackend};
use tokio::{sync::Notify, task::JoinHandle, time::Instant};

use super::{notifications, outbox};
use crate::{Shutdown, kafka::EventProducer, lease::Lease};

const BATCH: u64 = 500;
/// Catches rows whose wake-up was missed (written by another process, or before a crash).
const SAFETY_TICK: Duration = Duration::from_secs(1);
/// The lease of the outbox: its holder's relay publishes.
const LEASE: &str = "outbox.relay";
/// Longest an acknowledged row waits to be deleted with others, on SQLite.
const DELETE_AFTER: Duration = Duration::from_millis(500);

/// A handle to wake the relay after committing outbox rows.
#[derive(Clone, Debug, Default)]
pub struct Relay {
    wake: Arc<Notify>,
    acknowledged: Arc<Mutex<Acknowledged>>,
}

/// Rows the broker acknowledged and that are not deleted yet. A delete is a commit, and with
/// durable commits a disk sync: one after every publish was a third of the commits of
/// `orderly dev` (at one order in flight a publish is one or two rows). So on SQLite they are
/// deleted together, once [`DELETE_AFTER`] has passed since the first of them or a [`BATCH`]
/// of them waits, and the drains meanwhile skip them. A crash before the delete publishes
/// them again, as a crash between an acknowledgement and its delete always could: consumers'
/// inboxes skip the copies. On PostgreSQL they are deleted after each publish, as the rows of
/// a relay whose lease moved to another replica (a renewal late under load) are published
/// again by the new holder: there the window stays as short as it can be.
#[derive(Debug, Default)]
struct Acknowledged {
    seqs: HashSet<i64>,
    since: Option<Instant>,
    delete_after: Duration,
}

impl Acknowledged {
    fn add(&mut self, seqs: impl IntoIterator<Item = i64>) {
        self.seqs.extend(seqs);
        if !self.seqs.is_empty() {
            self.since.get_or_insert_with(Instant::now);
        }
    }

    /// When the rows should be deleted, if there are any.
    fn due(&self) -> Option<Instant> {
        let since = self.since?;
        if self.seqs.len() as u64 >= BATCH {
            Some(since)
        } else {
            Some(since + self.delete_after)
        }
    }

    fn deleted(&mut self) {
        self.seqs.clear();
        self.since = None;
    }
}

impl Relay {
    /// Starts publishing `component`'s outbox in `db` while `holder` (this process, see
    /// [`crate::lease::holder_id`]) holds the outbox's lease; the task ends after a last drain
    /// once `shutdown` fires, and then lets the lease go. The lease is returned too: the
    /// database's other housekeeping follows it.
    pub fn start(
        component: &'static str,
        db: DatabaseConnection,
        producer: EventProducer,
        holder: String,
        shutdown: Shutdown,
    ) -> (Self, Lease, JoinHandle<()>) {
        let relay = Self::default();
        if db.get_database_backend() == DbBackend::Sqlite {
            relay.acknowledged().delete_after = DELETE_AFTER;
        }
        let relaying_with = relay.clone();
        // Released once the last drain is done, not as soon as shutdown is requested.
        let drained = Shutdown::new();
        let (lease, keeper) = Lease::keep(db.clone(), LEASE, holder, drained.clone());
        // On PostgreSQL every commit that adds rows notifies, in whichever replica; elsewhere
        // there is one process per database and its own commits wake the relay.
        let notified = relay.wake.clone();
        let listening = notifications::listen(
            db.clone(),
            outbox::NOTIFY_CHANNEL,
            "outbox",
            move |_| notified.notify_one(),
            shutdown.clone(),
        );
        let relay_lease = lease.clone();
        let task = tokio::spawn(async move {
            let relaying = async {
                run(
                    component,
                    db,
                    producer,
                    relaying_with,
                    relay_lease,
                    shutdown,
                )
                .await;
                drained.trigger();
            };
            tokio::join!(keeper, relaying, listening);
        });
        (relay, lease, task)
    }

    /// Tells the relay that new rows were committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// How many outbox rows are published and not deleted yet: the backlog leaves them out.
    pub fn published_not_deleted(&self) -> u64 {
        self.acknowledged().seqs.len() as u64
    }

    fn acknowledged(&self) -> MutexGuard<'_, Acknowledged> {
        // Nothing panics while holding the lock, and the set stays consistent if something did.
        self.acknowledged
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

async fn run(
    component: &'static str,
    db: DatabaseConnection,
    producer: EventProducer,
    relay: Relay,
    mut lease: Lease,
    shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let drained = if lease.fence().is_some() {
            drain(component, &db, &producer, &relay).await
        } else {
            Ok(()) // another replica publishes
        };
        // Without the lease too: what this replica published is deleted all the same.
        let deleted = if shutdown.is_triggered() {
            delete_acknowledged(&db, &relay).await
        } else {
            delete_acknowledged_when_due(&db, &relay).await
        };
        match drained.and(deleted) {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "outbox relay cannot publish");
                backoff = (backoff * 2).min(Duration::from_secs(5));
                tokio::select! {
                    () = shutdown.requested() => return,
                    () = tokio::time::sleep(backoff) => continue,
                }
            }
        }
        if shutdown.is_triggered() {
            return;
        }
        let look_again = Instant::now() + SAFETY_TICK;
        let until = relay
            .acknowledged()
            .due()
            .map_or(look_again, |due| due.min(look_again));
        tokio::select! {
            () = relay.wake.notified() => {}
            () = lease.changed() => {}
            () = tokio::time::sleep_until(until) => {}
            () = shutdown.requested() => {}
        }
    }
}

/// Deletes the acknowledged rows if they have waited long enough, or are many.
async fn delete_acknowledged_when_due(
    db: &DatabaseConnection,
    relay: &Relay,
) -> Result<(), RelayError> {
    match relay.acknowledged().due() {
        Some(due) if due <= Instant::now() => {}
        _ => return Ok(()),
    }
    delete_acknowledged(db, relay).await
}

/// Deletes the acknowledged rows now; on failure they stay acknowledged, for the next try.
async fn delete_acknowledged(db: &DatabaseConnection, relay: &Relay) -> Result<(), RelayError> {
    // Copied out: the lock is not held across the delete.
    let seqs: Vec<i64> = relay.acknowledged().seqs.iter().copied().collect();
    if seqs.is_empty() {
        return Ok(());
    }
    outbox::remove(db, seqs).await?;
    // Only this task adds to the set, so nothing was added meanwhile.
    relay.acknowledged().deleted();
    Ok(())
}

/// Publishes batches until the outbox is empty.
async fn drain(
    component: &'static str,
    db: &DatabaseConnection,
    producer: &EventProducer,
    relay: &Relay,
) -> Result<(), RelayError> {
    loop {
        let skipped = relay.acknowledged().seqs.clone();
        // The rows acknowledged are among the oldest: read past them.
        let limit = BATCH + skipped.len() as u64;
        let rows = outbox::oldest(db, limit).await?;
        let full = rows.len() as u64 == limit;
        let rows: Vec<outbox::Model> = (rows.into_iter())
            .filter(|row| !skipped.contains(&row.seq))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        publish(component, producer, relay, rows).await?;
        delete_acknowledged_when_due(db, relay).await?;
        if !full {
            return Ok(());
        }
    }
}

/// Enqueues every row at once, awaits the acknowledgements, and marks what was acknowledged for
/// deletion.
async fn publish(
    component: &'static str,
    producer: &EventProducer,
    relay: &Relay,
    rows: Vec<outbox::Model>,
) -> Result<(), RelayError> {
    // Crash point for the failure tests: the rows are committed, none is published yet.
    crate::crash_point!("relay.before_publish");
    let mut deliveries = Vec::with_capacity(rows.len());
    for row in &rows {
        let envelope =
            EventEnvelope::decode(row.payload.as_slice()).map_err(|error| RelayError::Corrupt {
                seq: row.seq,
                reason: error.to_string(),
            })?;
        deliveries.push((row, producer.send(&row.topic, &envelope)?));
    }
    let mut published = Vec::with_capacity(deliveries.len());
    let mut failure = None;
    for (row, delivery) in deliveries {
        match delivery.await {
            Ok(()) => {
                let waited = crate::time::since(row.created_at);
                crate::metrics::outbox_published(component, waited);
                published.push(row.seq);
            }
            Err(error) => failure = Some(RelayError::Kafka(error)),
        }
    }
    // A crash between the acknowledgement and the delete republishes the rows: consumers'
    // inboxes skip the duplicates.
    crate::crash_point!("relay.after_ack");
    if !published.is_empty() {
        tracing::debug!(count = published.len(), "outbox rows published");
        relay.acknowledged().add(published);
    }
    failure.map_or(Ok(()), Err)
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("outbox: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Kafka(#[from] crate::kafka::KafkaError),
    #[error("outbox row {seq} does not hold an event envelope: {reason}")]
    Corrupt { seq: i64, reason: String },
}
