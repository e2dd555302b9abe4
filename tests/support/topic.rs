//! Reading and writing topics directly, as a test needs to: everything currently in a topic,
//! and raw records (duplicates, poison) produced onto it.

use std::time::Duration;

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    message::{Header, Headers, OwnedHeaders, OwnedMessage},
    producer::{FutureProducer, FutureRecord},
};

/// Every record in `topic` now, from the start of each partition to its high watermark.
pub async fn read_all(kafka: &str, topic: &str) -> Vec<OwnedMessage> {
    let (kafka, topic) = (kafka.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(10);
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &kafka)
            .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "5")
            .create()
            .expect("reader");
        let metadata = consumer
            .fetch_metadata(Some(&topic), timeout)
            .expect("metadata");
        let mut assignment = TopicPartitionList::new();
        let mut remaining = 0;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition.id(), timeout)
                .expect("watermarks");
            remaining += high - low;
            assignment
                .add_partition_offset(&topic, partition.id(), Offset::Offset(low))
                .expect("offset");
        }
        consumer.assign(&assignment).expect("assign");
        let mut records = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while remaining > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "{remaining} records of {topic} never arrived"
            );
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                records.push(message.expect("record").detach());
                remaining -= 1;
            }
        }
        records
    })
    .await
    .expect("reader thread")
}

/// Produces `records` (key, payload, headers) onto `topic` and waits for every acknowledgement.
pub async fn produce(kafka: &str, topic: &str, records: Vec<(Vec<u8>, Vec<u8>, OwnedHeaders)>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let deliveries: Vec<_> = records
        .iter()
        .map(|(key, payload, headers)| {
            let record = FutureRecord::to(topic)
                .key(key)
                .payload(payload)
                .headers(headers.clone());
            producer
                .send_result(record)
                .map_err(|(error, _)| error)
                .expect("enqueued")
        })
        .collect();
    for delivery in deliveries {
        delivery.await.expect("delivery").expect("acknowledged");
    }
}

/// A record's headers as (name, text) pairs.
pub fn headers(message: &OwnedMessage) -> Vec<(String, String)> {
    message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A copy of a record's headers, to produce it again unchanged.
pub fn copy_headers(message: &OwnedMessage) -> OwnedHeaders {
    let mut copy = OwnedHeaders::new();
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            copy = copy.insert(Header {
                key: header.key,
                value: header.value,
            });
        }
    }
    copy
}
