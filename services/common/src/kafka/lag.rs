//! Consumer-group lag from the broker: per partition of the group's topics, the high watermark
//! minus the group's committed offset.

use std::{collections::HashMap, time::Duration};

use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{Consumer, ConsumerContext},
};

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
pub fn partition_lags<X: ConsumerContext, C: Consumer<X>>(
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
    lags_of(consumer, partitions, timeout)
}

/// Lag of `consumer`'s group on `partitions`. Blocking: two broker round trips, each bounded by
/// `timeout`.
pub fn lags_of<X: ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    partitions: TopicPartitionList,
    timeout: Duration,
) -> Result<Vec<PartitionLag>, KafkaError> {
    if partitions.count() == 0 {
        return Ok(Vec::new());
    }
    let ends = watermarks(consumer, &partitions, timeout)?;
    let committed = consumer.committed_offsets(partitions, timeout)?;
    committed
        .elements()
        .iter()
        .map(|element| {
            let key = (element.topic().to_owned(), element.partition());
            let Some(&(low, high)) = ends.get(&key) else {
                return Err(no_offset(element.topic(), element.partition()));
            };
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
pub fn committed_lags<X: ConsumerContext, C: Consumer<X>>(
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

/// A partition's low and high watermarks: the offset of its oldest record, and the offset its
/// next record will get.
pub type Watermarks = (i64, i64);

/// Where each of `partitions` starts and ends (its low and high watermarks), keyed by topic and
/// partition. Two requests to each broker, earliest and latest offsets of every partition at
/// once: librdkafka's `fetch_watermarks` asks twice per partition, which for the watchers that
/// sample every few seconds was most of what an idle `orderly dev` asked its broker. Blocking.
pub fn watermarks<X: ConsumerContext, C: Consumer<X>>(
    client: &C,
    partitions: &TopicPartitionList,
    timeout: Duration,
) -> Result<HashMap<(String, i32), Watermarks>, KafkaError> {
    // ListOffsets takes -2 for a partition's earliest offset and -1 for its latest.
    let ask = |at: Offset| -> Result<TopicPartitionList, KafkaError> {
        let mut asked = partitions.clone();
        asked.set_all_offsets(at)?;
        Ok(client.offsets_for_times(asked, timeout)?)
    };
    let (starts, ends) = (ask(Offset::Beginning)?, ask(Offset::End)?);
    let offset = |list: &TopicPartitionList, topic: &str, partition: i32| {
        let element = list.find_partition(topic, partition);
        match element
            .as_ref()
            .map(|element| (element.error(), element.offset()))
        {
            Some((Ok(()), Offset::Offset(offset))) => Ok(offset),
            Some((Err(error), _)) => Err(KafkaError::Client(error)),
            _ => Err(no_offset(topic, partition)),
        }
    };
    (partitions.elements().iter())
        .map(|element| {
            let (topic, partition) = (element.topic(), element.partition());
            let low = offset(&starts, topic, partition)?;
            let high = offset(&ends, topic, partition)?;
            Ok(((topic.to_owned(), partition), (low, high)))
        })
        .collect()
}

fn no_offset(topic: &str, partition: i32) -> KafkaError {
    KafkaError::NoOffset {
        topic: topic.to_owned(),
        partition,
    }
}
