//! The projection: applies the event topics to the read model. It keeps its own position in
//! each partition, in the read model's database and in the transaction that applies the events
//! (as a Kafka Connect sink does), rather than in a consumer group's committed offsets: the
//! read model and its position never disagree, applying is exactly once without an inbox, and
//! a fresh database starts every partition from the beginning, which is how the read model is
//! rebuilt from the log.
//!
//! One replica projects at a time: the holder of the component's lease, fenced in every
//! transaction. It takes every partition itself (no group rebalancing: the lease already says
//! who works). An operator may pause it; reads go on answering from what was applied.
//!
//! A rebuild is a second projection, into a new generation of the read model from the
//! beginning of every topic, beside the one reads use; when it has caught up with the topics'
//! ends, one fenced transaction makes it current, and the old generation's rows are deleted.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use orderly_common::{
    Shutdown,
    config::KafkaArgs,
    kafka::{EventProducer, KafkaError, client_config, envelope, topics},
    lease::{self, Fence, Lease},
};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    message::{BorrowedMessage, Headers},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, TransactionTrait};
use tokio::sync::watch;

use crate::{
    generations,
    log::{End, Log},
    positions, views,
};

/// The topics the read model is made of.
pub const TOPICS: &[&str] = &[
    topics::ORDERS,
    topics::INVENTORY,
    topics::PAYMENTS,
    topics::SAGAS,
];

/// The consumer group the projection's client names (it commits nothing: see the module).
const GROUP: &str = "query";

/// Most events applied in one transaction.
const MAX_BATCH: usize = 512;

/// How long a batch waits for more events after its first. An order's four events arrive
/// milliseconds apart, so without it the projection committed once per event, four commits
/// an order at low load (on PostgreSQL some 13 ms of CPU per order at one client). It adds at
/// most this much to the read model's lag, which EVENTUAL reads report and STRICT ones wait
/// out.
const LINGER: Duration = Duration::from_millis(20);

/// How often the projecting replica looks for a rebuild another replica was asked to start,
/// and how often a rebuild compares itself with the topics' ends while no events come.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// Shared by the projection and the API: whether an operator paused it, a count of the
/// batches it applied (a STRICT read waits on it), and a wake-up for a rebuild asked of this
/// replica.
#[derive(Clone)]
pub struct Control {
    paused: watch::Sender<bool>,
    applied: watch::Sender<u64>,
    rebuild_asked: watch::Sender<u64>,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            paused: watch::Sender::new(false),
            applied: watch::Sender::new(0),
            rebuild_asked: watch::Sender::new(0),
        }
    }
}

impl Control {
    pub fn set_paused(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Changes once per batch applied in this process.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Tells this replica's projection that a rebuild was started (others find it within
    /// [`LOOK_AGAIN`]).
    pub fn rebuild_asked(&self) {
        self.rebuild_asked.send_modify(|count| *count += 1);
    }
}

#[derive(Debug, thiserror::Error)]
enum ProjectionError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// What the projection works with.
pub struct Projection {
    pub db: DatabaseConnection,
    pub kafka: KafkaArgs,
    pub log: Log,
    pub lease: Lease,
    pub control: Control,
    /// Its keys check events' signatures, when events are signed.
    pub producer: EventProducer,
    pub shutdown: Shutdown,
}

/// When a projection of one generation stops by itself.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    /// The current generation's, alone: when a rebuild is started, to run beside it.
    RebuildStarted,
    /// The current generation's, beside a rebuild: never (the rebuild's ends the pair). It
    /// stops applying once the rebuild has replayed the log, so the rebuild can draw level.
    RebuildEnds,
    /// The rebuild's: when it has caught up and is switched to.
    Switched,
}

/// How far a rebuild is.
#[derive(Debug, PartialEq, Eq)]
enum Rebuilt {
    /// Short of where the topics ended when it started.
    Replaying,
    /// Past that, and behind the current generation in some partition.
    Replayed,
    /// Past both: switching takes nothing from reads.
    CaughtUp,
}

impl Projection {
    /// Projects while this replica holds the lease and nobody paused it, until shutdown.
    pub async fn run(self) {
        // Every partition is assigned once, at the start: wait until the topics exist (another
        // component may still be creating them).
        if !topics::ensure_with_retry(&self.kafka, &topics::all(), &self.shutdown).await {
            return;
        }
        let mut lease = self.lease.clone();
        let mut paused = self.control.paused.subscribe();
        loop {
            let fence = match (lease.fence(), *paused.borrow_and_update()) {
                (Some(fence), false) => Some(fence),
                _ => None,
            };
            if let Some(fence) = fence {
                if let Err(error) = self.pass(&fence).await {
                    tracing::warn!(%error, "projection stopped, starting again from its position");
                    tokio::select! {
                        () = self.shutdown.requested() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
                if self.shutdown.is_triggered() {
                    return;
                }
                continue;
            }
            tokio::select! {
                () = self.shutdown.requested() => return,
                () = lease.changed() => {}
                _ = paused.changed() => {}
            }
        }
    }

    /// Projects the current generation, and the one being rebuilt if any, until shutdown, a
    /// pause, a lease change, a rebuild started or a rebuild switched to.
    async fn pass(&self, fence: &Fence) -> Result<(), ProjectionError> {
        let current = generations::current(&self.db).await?;
        let Some(building) = generations::building(&self.db).await? else {
            return (self.project(
                fence,
                current,
                Until::RebuildStarted,
                &watch::Sender::new(false),
            ))
            .await;
        };
        tracing::info!(
            generation = building.generation,
            "rebuilding the read model"
        );
        // Set when the rebuild has replayed the log: the current generation's projection then
        // holds still, for the rebuild to draw level with it (under steady load both move on,
        // and one rarely sees the other behind it in every partition at once).
        let hold_still = watch::Sender::new(false);
        tokio::select! {
            projected = self.project(fence, current, Until::RebuildEnds, &hold_still) => projected,
            rebuilt = self.project(fence, building.generation, Until::Switched, &hold_still) => {
                rebuilt?;
                generations::purge_retired(&self.db).await?;
                Ok(())
            }
        }
    }

    /// Applies batches to `generation` from its stored positions on, until shutdown, a pause, a
    /// lease change or what `until` says.
    async fn project(
        &self,
        fence: &Fence,
        generation: i64,
        until: Until,
        hold_still: &watch::Sender<bool>,
    ) -> Result<(), ProjectionError> {
        let mut lease = self.lease.clone();
        let mut held = hold_still.subscribe();
        let mut paused = self.control.paused.subscribe();
        let mut rebuild_asked = self.control.rebuild_asked.subscribe();
        if *paused.borrow_and_update() || lease.fence().as_ref() != Some(fence) {
            return Ok(());
        }
        let consumer: StreamConsumer = client_config(&self.kafka)
            .set("group.id", GROUP)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "fetch.wait.max.ms",
                self.kafka.kafka_fetch_wait_max_ms.to_string(),
            )
            .create()?;
        let stored = positions::all(&self.db, generation).await?;
        let mut assignment = TopicPartitionList::new();
        // A rebuild replays at least this far before it is switched to.
        let ends_now = self.log.ends(TOPICS).await?;
        for end in &ends_now {
            let from = positions::next_offset(&stored, &end.topic, end.partition)
                .map_or(Offset::Beginning, Offset::Offset);
            assignment.add_partition_offset(&end.topic, end.partition, from)?;
        }
        consumer.assign(&assignment)?;
        tracing::info!(generation, partitions = assignment.count(), "projecting");
        let mut look_again = tokio::time::interval(LOOK_AGAIN);
        loop {
            let first = tokio::select! {
                () = self.shutdown.requested() => return Ok(()),
                // A clone of the lease may tell of a change it saw before: only a fence that
                // is no longer this one stops the projection.
                () = lease.changed() => {
                    if lease.fence().as_ref() != Some(fence) {
                        return Ok(());
                    }
                    continue;
                }
                _ = paused.changed() => return Ok(()),
                _ = rebuild_asked.changed(), if until == Until::RebuildStarted => return Ok(()),
                _ = look_again.tick(), if until != Until::RebuildEnds => {
                    if self.stop_looking(fence, generation, until, &ends_now, hold_still).await? {
                        return Ok(());
                    }
                    continue;
                }
                () = set(&mut held), if until == Until::RebuildEnds => {
                    tracing::info!(generation, "holding still for the rebuild to draw level");
                    std::future::pending().await
                }
                message = consumer.recv() => message?,
            };
            let mut batch = vec![first];
            let lingering = tokio::time::sleep(LINGER);
            tokio::pin!(lingering);
            while batch.len() < MAX_BATCH {
                tokio::select! {
                    biased;
                    received = consumer.recv() => match received {
                        Ok(message) => batch.push(message),
                        Err(_) => break,
                    },
                    () = &mut lingering => break,
                }
            }
            self.apply(fence, generation, &batch).await?;
            self.control.applied.send_modify(|count| *count += 1);
        }
    }

    /// Whether the projection of `generation` should stop for what `until` says: a rebuild
    /// started elsewhere, or this rebuild caught up (and then switched to, in a fenced
    /// transaction).
    async fn stop_looking(
        &self,
        fence: &Fence,
        generation: i64,
        until: Until,
        ends_at_start: &[End],
        hold_still: &watch::Sender<bool>,
    ) -> Result<bool, ProjectionError> {
        match until {
            Until::RebuildEnds => Ok(false),
            Until::RebuildStarted => Ok(generations::building(&self.db).await?.is_some()),
            Until::Switched => {
                match rebuilt(&self.db, generation, ends_at_start).await? {
                    Rebuilt::Replaying => return Ok(false),
                    Rebuilt::Replayed => {
                        hold_still.send_replace(true);
                        return Ok(false);
                    }
                    Rebuilt::CaughtUp => {}
                }
                let txn = self.db.begin().await?;
                lease::fence(&txn, fence).await?;
                generations::switch(&txn, generation).await?;
                txn.commit().await?;
                tracing::info!(
                    generation,
                    "the rebuilt read model is caught up: reads use it"
                );
                Ok(true)
            }
        }
    }

    /// Applies `batch` to `generation`, and the positions after it, in one fenced transaction.
    async fn apply(
        &self,
        fence: &Fence,
        generation: i64,
        batch: &[BorrowedMessage<'_>],
    ) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            // The read model is made again from the log: a commit lost to a crash only moves
            // its position back with its rows, and the events are applied again. So its commits
            // need not wait for their fsync (PostgreSQL writes them out within a fraction of a
            // second), which the orders' own transactions do.
            txn.execute_unprepared("SET LOCAL synchronous_commit = off")
                .await?;
        }
        lease::fence(&txn, fence).await?;
        let applied_at = orderly_common::time::now();
        let mut after: BTreeMap<(String, i32), positions::Model> = BTreeMap::new();
        for message in batch {
            let event_at = match self.open(message) {
                Some(event) => {
                    let at = occurred_at(&event).unwrap_or(applied_at);
                    views::apply(&txn, generation, &event, at).await?;
                    Some(at)
                }
                None => None,
            };
            let key = (message.topic().to_owned(), message.partition());
            let previous = after.get(&key).and_then(|position| position.event_at);
            after.insert(
                key,
                positions::Model {
                    generation,
                    topic: message.topic().to_owned(),
                    partition: message.partition(),
                    next_offset: message.offset() + 1,
                    event_at: event_at.or(previous),
                    applied_at,
                },
            );
        }
        for position in after.into_values() {
            positions::advance(&txn, position).await?;
        }
        txn.commit().await
    }

    /// The event `message` carries, if it is one this build reads and, when events are signed,
    /// signed. Anything else changes nothing in the read model (its consumers dead-letter it).
    fn open(&self, message: &BorrowedMessage<'_>) -> Option<envelope::Event> {
        let value = message.payload().unwrap_or_default();
        if let Some(keys) = self.producer.keys() {
            let signature = (message.headers()?.iter())
                .find(|header| header.key == orderly_common::kafka::signing::SIGNATURE)
                .and_then(|header| header.value);
            if let Err(error) = keys.verify(value, signature) {
                tracing::debug!(
                    topic = message.topic(),
                    offset = message.offset(),
                    error,
                    "not applied"
                );
                return None;
            }
        }
        match envelope::open(message.topic(), value) {
            Ok(event) => Some(event),
            Err(error) => {
                tracing::debug!(topic = message.topic(), offset = message.offset(), %error, "not applied");
                None
            }
        }
    }
}

/// How far the rebuilt `generation` is: whether it has applied every partition up to where the
/// topics ended when it started projecting (`ends_at_start`), and as far as the current
/// generation has, so that switching takes nothing from reads. (The topics' ends now would not
/// do: under steady load they move on before a rebuild that keeps up is seen at them.) A
/// partition the rebuild has no position in is where the log started then: retention may have
/// deleted all of it.
async fn rebuilt(
    db: &DatabaseConnection,
    generation: i64,
    ends_at_start: &[End],
) -> Result<Rebuilt, DbErr> {
    let rebuilt = positions::all(db, generation).await?;
    let current = positions::current(db).await?;
    let rebuilt_to = |topic: &str, partition: i32| {
        positions::next_offset(&rebuilt, topic, partition)
            .or_else(|| {
                (ends_at_start.iter())
                    .find(|end| end.topic == topic && end.partition == partition)
                    .map(|end| end.start)
            })
            .unwrap_or(0)
    };
    let replayed =
        (ends_at_start.iter()).all(|end| rebuilt_to(&end.topic, end.partition) >= end.offset);
    let level =
        (current.iter()).all(|live| rebuilt_to(&live.topic, live.partition) >= live.next_offset);
    Ok(match (replayed, level) {
        (false, _) => Rebuilt::Replaying,
        (true, false) => Rebuilt::Replayed,
        (true, true) => Rebuilt::CaughtUp,
    })
}

/// Returns once `flag` is set (never if its sender is gone unset).
async fn set(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|set| *set).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn occurred_at(event: &envelope::Event) -> Option<DateTime<Utc>> {
    let at = event.envelope.occurred_at.as_ref()?;
    DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).ok()?)
}
