//! Consumers in a consumer group that commit only offsets the application has stored, and store
//! them only after the event's effect is committed to the database (at-least-once delivery).

use rdkafka::consumer::{Consumer, StreamConsumer};

use super::{KafkaError, client_config};
use crate::config::KafkaArgs;

pub fn consumer(
    args: &KafkaArgs,
    group_id: &str,
    topics: &[&str],
) -> Result<StreamConsumer, KafkaError> {
    let consumer: StreamConsumer = client_config(args)
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
        .set("session.timeout.ms", "10000")
        // Topics created after subscribing (by another component) are noticed within seconds.
        .set("topic.metadata.refresh.interval.ms", "5000")
        // Stored offsets reach the broker within a second, so a restart redelivers little.
        .set("auto.commit.interval.ms", "1000")
        .create()?;
    consumer.subscribe(topics)?;
    Ok(consumer)
}
