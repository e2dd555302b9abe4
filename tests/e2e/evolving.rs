//! Events that evolve: during a rolling upgrade a newer producer writes event types and schema
//! versions an older consumer does not know. Those are skipped and counted, never dead-lettered,
//! and orders keep flowing.

use orderly_common::kafka::{envelope, topics};
use orderly_proto::events::v1::SagaFacts;
use prost::Message;

use crate::support::{
    Options, System,
    orders::{one_more_confirms, seed},
    prometheus::scrape,
    topic,
};

/// Who consumes each topic (as the services declare it).
const CONSUMERS: [(&str, &[&str]); 4] = [
    (topics::ORDERS, &["inventory", "orchestrator"]),
    (topics::INVENTORY, &["payment", "orchestrator"]),
    (topics::PAYMENTS, &["orchestrator"]),
    (
        topics::SAGAS,
        &["order", "inventory", "payment", "notification"],
    ),
];

/// An event from a newer producer: a type this build has no message for (a member of its
/// topic's oneof it does not know), a newer schema version, and a field this build has never
/// heard of.
fn from_the_future(topic: &str) -> Vec<u8> {
    let event_type = format!("GiftWrapped{}", topic.len());
    let mut newer = envelope::wrap_foreign(uuid::Uuid::new_v4(), &event_type, SagaFacts::default());
    // Field 9 of the topic's message, an empty message: no member of this build's oneof.
    newer.body = vec![0x4a, 0x00];
    newer.schema_version = envelope::SCHEMA_VERSION + 1;
    let mut bytes = newer.encode_to_vec();
    // Field 99, varint 1: unknown to this build's envelope, skipped when decoding.
    bytes.extend_from_slice(&[0x98, 0x06, 0x01]);
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_event_types_and_newer_schemas_are_skipped_and_counted_not_dead_lettered() {
    let system = System::start(Options::default()).await;
    let initial = seed(&system, &[("mug", 1_299, 10)], &[("alice", 100_000)]).await;
    for (topic, _) in CONSUMERS {
        let headers = rdkafka::message::OwnedHeaders::new();
        let record = (b"newer".to_vec(), from_the_future(topic), headers);
        topic::produce(&system.kafka, topic, vec![record]).await;
    }
    one_more_confirms(&system, &initial).await;

    for (topic, consumers) in CONSUMERS {
        let letters = topic::read_all(&system.kafka, &topics::dead_letter(topic)).await;
        assert!(letters.is_empty(), "nothing dead-lettered from {topic}");
        for consumer in consumers {
            let metrics = scrape(system.metrics_addr(consumer)).await;
            let labels = [
                ("consumer", *consumer),
                ("topic", topic),
                ("outcome", "skipped"),
            ];
            assert_eq!(
                metrics.sum("orderly_events_consumed_total", &labels),
                1.0,
                "{consumer} skipped the newer event on {topic} once"
            );
        }
    }
}
