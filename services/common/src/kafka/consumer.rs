//! Consumers in a consumer group that commit only offsets the application has stored, and store
//! them only after the event's effect is committed to the database (at-least-once delivery).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use rdkafka::{
    ClientContext, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer},
};

use super::{KafkaError, client_config};
use crate::config::KafkaArgs;

/// A member of a consumer group that counts the rebalances that took its partitions away.
pub type GroupConsumer = StreamConsumer<Revocations>;

/// Counts revocations: a message received before the latest one may belong to a partition that
/// is now another member's, or that starts again from its committed offset, so whoever holds
/// such a message drops it instead of applying it (it is delivered again).
pub struct Revocations {
    group: String,
    count: AtomicU64,
}

impl Revocations {
    fn new(group: &str) -> Self {
        Self {
            group: group.to_owned(),
            count: AtomicU64::new(0),
        }
    }

    /// How many revocations there have been so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }
}

impl ClientContext for Revocations {}

impl ConsumerContext for Revocations {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            self.count.fetch_add(1, Ordering::AcqRel);
            // Every rebalance redelivers what was in flight: worth seeing when duplicates rise.
            tracing::info!(group = self.group, partitions = %listed(partitions), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(group = self.group, partitions = %listed(partitions), "partitions assigned");
        }
    }
}

pub fn consumer(
    args: &KafkaArgs,
    group_id: &str,
    topics: &[&str],
) -> Result<GroupConsumer, KafkaError> {
    let consumer: GroupConsumer = client_config(args)
        .set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Kafka's long poll: the broker answers as soon as data arrives (the embedded one too,
        // patched), so a long wait costs no latency and keeps idle consumers quiet.
        .set(
            "fetch.wait.max.ms",
            args.kafka_fetch_wait_max_ms.to_string(),
        )
        .set("session.timeout.ms", "6000")
        // A member learns of a rebalance at its next heartbeat: once a second, so the group
        // reforms within about a second of a dead member's session expiring.
        .set("heartbeat.interval.ms", "1000")
        // Topics created after subscribing (by another component) are noticed within seconds.
        .set("topic.metadata.refresh.interval.ms", "5000")
        // Stored offsets reach the broker within a second, so a restart redelivers little.
        .set("auto.commit.interval.ms", "1000")
        .create_with_context(Revocations::new(group_id))?;
    consumer.subscribe(topics)?;
    Ok(consumer)
}

/// `topic[partition]`, comma-separated.
fn listed(partitions: &TopicPartitionList) -> String {
    partitions
        .elements()
        .iter()
        .map(|element| format!("{}[{}]", element.topic(), element.partition()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The consumer a group member runs now, so that its lag watcher can ask which partitions it
/// holds: each replica then watches and reports only its own partitions, so lag sums over
/// replicas count each partition once, and only the replica that is stuck rejoins.
#[derive(Clone, Default)]
pub struct Member(Arc<Mutex<Option<Arc<GroupConsumer>>>>);

impl Member {
    /// The partitions held now, each with the offset its consumer has taken up to (`None`
    /// before it took any), or `None` while there is no consumer (between a leave and a join)
    /// or it cannot say.
    pub fn held(&self) -> Option<HashMap<(String, i32), Option<i64>>> {
        // The lock is held for the call, and the consumer never cloned out of it: whoever
        // clears the member holds the last reference and decides where it is closed.
        let current = self.0.lock().ok()?;
        let positions = current.as_ref()?.position().ok()?;
        Some(
            positions
                .elements()
                .iter()
                .map(|element| {
                    let key = (element.topic().to_owned(), element.partition());
                    (key, element.offset().to_raw())
                })
                .collect(),
        )
    }

    /// Runs `ask` with the consumer running now, if there is one, and keeps it from being
    /// closed meanwhile. Blocking: call it off the async threads.
    pub fn ask<T>(&self, ask: impl FnOnce(&GroupConsumer) -> T) -> Option<T> {
        let current = self.0.lock().ok()?;
        current.as_deref().map(ask)
    }

    /// Sets the consumer running now (`None` before closing it; blocking while [`Self::ask`]
    /// uses it).
    pub fn set(&self, consumer: Option<Arc<GroupConsumer>>) {
        if let Ok(mut current) = self.0.lock() {
            *current = consumer;
        }
    }
}
