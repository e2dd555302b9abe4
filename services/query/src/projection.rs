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

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use futures::FutureExt;
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
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tokio::sync::watch;

use crate::{log::Log, positions, views};

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

/// Shared by the projection and the API: whether an operator paused it, and a count of the
/// batches it applied (a STRICT read waits on it).
#[derive(Clone)]
pub struct Control {
    paused: watch::Sender<bool>,
    applied: watch::Sender<u64>,
}

impl Default for Control {
    fn default() -> Self {
        Self {
            paused: watch::Sender::new(false),
            applied: watch::Sender::new(0),
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

impl Projection {
    /// Projects while this replica holds the lease and nobody paused it, until shutdown.
    pub async fn run(mut self) {
        // Every partition is assigned once, at the start: wait until the topics exist (another
        // component may still be creating them).
        if !topics::ensure_with_retry(&self.kafka, &topics::all(), &self.shutdown).await {
            return;
        }
        let mut paused = self.control.paused.subscribe();
        loop {
            let fence = match (self.lease.fence(), *paused.borrow_and_update()) {
                (Some(fence), false) => Some(fence),
                _ => None,
            };
            if let Some(fence) = fence {
                match self.project(&fence, &mut paused).await {
                    Ok(()) => {}
                    Err(error) => {
                        tracing::warn!(%error, "projection stopped, starting again from its position");
                        tokio::select! {
                            () = self.shutdown.requested() => return,
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
                continue;
            }
            tokio::select! {
                () = self.shutdown.requested() => return,
                () = self.lease.changed() => {}
                _ = paused.changed() => {}
            }
        }
    }

    /// Applies batches from the stored positions on, until shutdown, a pause or a lease change.
    async fn project(
        &mut self,
        fence: &Fence,
        paused: &mut watch::Receiver<bool>,
    ) -> Result<(), ProjectionError> {
        let consumer: StreamConsumer = client_config(&self.kafka)
            .set("group.id", GROUP)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "fetch.wait.max.ms",
                self.kafka.kafka_fetch_wait_max_ms.to_string(),
            )
            .create()?;
        let stored = positions::all(&self.db).await?;
        let mut assignment = TopicPartitionList::new();
        for end in self.log.ends(TOPICS).await? {
            let from = (stored.iter())
                .find(|at| at.topic == end.topic && at.partition == end.partition)
                .map_or(Offset::Beginning, |at| Offset::Offset(at.next_offset));
            assignment.add_partition_offset(&end.topic, end.partition, from)?;
        }
        consumer.assign(&assignment)?;
        tracing::info!(partitions = assignment.count(), "projecting");
        loop {
            let first = tokio::select! {
                () = self.shutdown.requested() => return Ok(()),
                () = self.lease.changed() => return Ok(()),
                _ = paused.changed() => return Ok(()),
                message = consumer.recv() => message?,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match consumer.recv().now_or_never() {
                    Some(Ok(message)) => batch.push(message),
                    _ => break,
                }
            }
            self.apply(fence, &batch).await?;
            self.control.applied.send_modify(|count| *count += 1);
        }
    }

    /// Applies `batch` and the positions after it in one fenced transaction.
    async fn apply(&self, fence: &Fence, batch: &[BorrowedMessage<'_>]) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        lease::fence(&txn, fence).await?;
        let applied_at = orderly_common::time::now();
        let mut after: BTreeMap<(String, i32), positions::Model> = BTreeMap::new();
        for message in batch {
            let event_at = match self.open(message) {
                Some(event) => {
                    let at = occurred_at(&event).unwrap_or(applied_at);
                    views::apply(&txn, &event, at).await?;
                    Some(at)
                }
                None => None,
            };
            let key = (message.topic().to_owned(), message.partition());
            let previous = after.get(&key).and_then(|position| position.event_at);
            after.insert(
                key,
                positions::Model {
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

fn occurred_at(event: &envelope::Event) -> Option<DateTime<Utc>> {
    let at = event.envelope.occurred_at.as_ref()?;
    DateTime::from_timestamp(at.seconds, u32::try_from(at.nanos).ok()?)
}
