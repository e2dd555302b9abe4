//! The outbox relay: publishes committed outbox rows with the idempotent producer, oldest first,
//! in batches, and deletes them once the broker acknowledged. It sleeps until woken by a commit
//! (with a slow tick as a safety net), so an event leaves right after its transaction commits.
//! With several replicas on one database, one relay publishes: the holder of the outbox's lease
//! (a row published by two replicas would reach every consumer twice). On PostgreSQL every
//! commit that adds rows notifies it (LISTEN/NOTIFY), so rows another replica wrote leave as
//! fast as its own.

use std::{sync::Arc, time::Duration};

use orderly_proto::events::v1::EventEnvelope;
use prost::Message;
use sea_orm::DatabaseConnection;
use tokio::{sync::Notify, task::JoinHandle};

use super::{notifications, outbox};
use crate::{Shutdown, kafka::EventProducer, lease::Lease};

const BATCH: u64 = 500;
/// Catches rows whose wake-up was missed (written by another process, or before a crash).
const SAFETY_TICK: Duration = Duration::from_secs(1);
/// The lease of the outbox: its holder's relay publishes.
const LEASE: &str = "outbox.relay";

/// A handle to wake the relay after committing outbox rows.
#[derive(Clone, Debug, Default)]
pub struct Relay {
    wake: Arc<Notify>,
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
        let wake = relay.wake.clone();
        // Released once the last drain is done, not as soon as shutdown is requested.
        let drained = Shutdown::new();
        let (lease, keeper) = Lease::keep(db.clone(), LEASE, holder, drained.clone());
        // On PostgreSQL every commit that adds rows notifies, in whichever replica; elsewhere
        // there is one process per database and its own commits wake the relay.
        let notified = wake.clone();
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
                run(component, db, producer, wake, relay_lease, shutdown).await;
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
}

async fn run(
    component: &'static str,
    db: DatabaseConnection,
    producer: EventProducer,
    wake: Arc<Notify>,
    mut lease: Lease,
    shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let drained = if lease.fence().is_some() {
            drain(component, &db, &producer).await
        } else {
            Ok(()) // another replica publishes
        };
        match drained {
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
        tokio::select! {
            () = wake.notified() => {}
            () = lease.changed() => {}
            () = tokio::time::sleep(SAFETY_TICK) => {}
            () = shutdown.requested() => {}
        }
    }
}

/// Publishes batches until the outbox is empty.
async fn drain(
    component: &'static str,
    db: &DatabaseConnection,
    producer: &EventProducer,
) -> Result<(), RelayError> {
    loop {
        let rows = outbox::oldest(db, BATCH).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let full = rows.len() as u64 == BATCH;
        publish(component, db, producer, rows).await?;
        if !full {
            return Ok(());
        }
    }
}

/// Enqueues every row at once, awaits the acknowledgements, deletes what was acknowledged.
async fn publish(
    component: &'static str,
    db: &DatabaseConnection,
    producer: &EventProducer,
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
    // A crash between the acknowledgement and this delete republishes the rows: consumers'
    // inboxes skip the duplicates.
    crate::crash_point!("relay.after_ack");
    if !published.is_empty() {
        tracing::debug!(count = published.len(), "outbox rows published");
        outbox::remove(db, published).await?;
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
