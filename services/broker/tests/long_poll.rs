//! The embedded broker answers a waiting fetch as soon as a record arrives (Kafka's long poll),
//! not when the fetch's `fetch.wait.max.ms` runs out: tansu 0.6 slept out the whole wait even
//! with records there, so every hop cost a consumer's full wait.

mod support;

use std::time::Duration;

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};

/// Far longer than the test may take: only a fetch woken by the produce answers in time.
const FETCH_WAIT_MS: &str = "120000";
const ANSWERED_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn a_waiting_fetch_is_answered_when_a_record_arrives() {
    let broker = support::Broker::start().await;
    let bootstrap = broker.addr.to_string();
    support::create_topic(&bootstrap, "long-poll", 1).await;

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "long-poll")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", FETCH_WAIT_MS)
        .set("socket.timeout.ms", "180000")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("long-poll", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();

    for round in 0..3 {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
        let payload = format!("record {round}");
        producer
            .send(
                FutureRecord::<str, str>::to("long-poll").payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        // Each round after the first finds the consumer's next fetch already waiting.
        let message = tokio::time::timeout(ANSWERED_WITHIN, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the fetch was not woken by the produce"))
            .unwrap();
        assert_eq!(message.payload(), Some(payload.as_bytes()));
    }
    // Closed while the broker is there to answer, or closing waits on it.
    drop(consumer);
    broker.stop().await;
}
