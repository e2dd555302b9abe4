//! Consumer-group lag from the broker: per partition of the group's topics, the high watermark
//! minus the group's committed offset.

use std::time::Duration;

use rdkafka::{Offset, TopicPartitionList, consumer::Consumer};

use super::KafkaError;

/// One partition's standing for a consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset (the low watermark when it committed nothing yet).
    pub committed: i64,
    pub lag: i64,
}

/// Lag of `consumer`'s group on the partitions of `topics` that `wanted` accepts. Blocking:
/// several broker round trips, each bounded by `timeout`.
pub fn partition_lags<C: Consumer>(
    consumer: &C,
    topics: &[&str],
    wanted: impl Fn(&str, i32) -> bool,
    timeout: Duration,
) -> Result<Vec<PartitionLag>, KafkaError> {
    let metadata = consumer.fetch_metadata(None, timeout)?;
    let mut partitions = TopicPartitionList::new();
    for topic in metadata
        .topics()
        .iter()
        .filter(|topic| topics.contains(&topic.name()))
    {
        for partition in topic.partitions() {
            if wanted(topic.name(), partition.id()) {
                partitions.add_partition(topic.name(), partition.id());
            }
        }
    }
    if partitions.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = consumer.committed_offsets(partitions, timeout)?;
    committed
        .elements()
        .iter()
        .map(|element| {
            let (low, high) =
                consumer.fetch_watermarks(element.topic(), element.partition(), timeout)?;
            let committed = match element.offset() {
                Offset::Offset(offset) => offset,
                _ => low,
            };
            Ok(PartitionLag {
                topic: element.topic().to_owned(),
                partition: element.partition(),
                committed,
                lag: (high - committed).max(0),
            })
        })
        .collect()
}

/// Lag of `consumer`'s group on every topic it has committed an offset on (any partition),
/// dead-letter topics left out: what a group consumes, as the broker knows it, without knowing
/// its topics beforehand. Blocking, like [`partition_lags`].
pub fn committed_lags<C: Consumer>(
    consumer: &C,
    timeout: Duration,
) -> Result<Vec<PartitionLag>, KafkaError> {
    let metadata = consumer.fetch_metadata(None, timeout)?;
    let mut every = TopicPartitionList::new();
    for topic in (metadata.topics().iter()).filter(|topic| {
        !topic.name().starts_with("__") && !super::topics::is_dead_letter(topic.name())
    }) {
        for partition in topic.partitions() {
            every.add_partition(topic.name(), partition.id());
        }
    }
    if every.count() == 0 {
        return Ok(Vec::new());
    }
    let committed = consumer.committed_offsets(every, timeout)?;
    let mut consumed: Vec<String> = (committed.elements().iter())
        .filter(|element| matches!(element.offset(), Offset::Offset(_)))
        .map(|element| element.topic().to_owned())
        .collect();
    consumed.sort_unstable();
    consumed.dedup();
    let consumed: Vec<&str> = consumed.iter().map(String::as_str).collect();
    partition_lags(consumer, &consumed, |_, _| true, timeout)
}
