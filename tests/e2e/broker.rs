//! The embedded broker, run alone as `orderly broker`, carries protobuf events end to end through
//! rdkafka, and keeps topics and messages across a SIGKILL.

use std::{collections::BTreeSet, path::Path, time::Duration};

use orderly_common::{
    config::KafkaArgs,
    kafka::{self, EventProducer, envelope, topics},
};
use orderly_proto::{
    common::v1::Money,
    events::v1::{EventEnvelope, OrderLine, OrderPlaced, TraceContext, order_event},
};
use rdkafka::{Message, consumer::Consumer, message::Headers};
use uuid::Uuid;

use crate::support::{STARTUP, free_port, process::Orderly};

fn start_broker(data_dir: &Path, port: u16) -> Orderly {
    let listen = format!("127.0.0.1:{port}");
    Orderly::spawn(&["broker", "--listen-addr", &listen], &[], data_dir)
}

/// Creates Orderly's topics, retrying until the broker answers.
async fn ensure_topics(kafka: &KafkaArgs) {
    let deadline = tokio::time::Instant::now() + STARTUP;
    while let Err(error) = topics::ensure(kafka, &topics::all()).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker not reachable: {error}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn placed() -> envelope::Payload {
    envelope::Payload::Order(order_event::Event::OrderPlaced(OrderPlaced {
        customer_id: "alice".into(),
        lines: vec![OrderLine {
            sku: "mug".into(),
            quantity: 2,
            unit_price: Some(Money {
                amount_minor: 1_299,
                currency: "USD".into(),
            }),
        }],
        total: Some(Money {
            amount_minor: 2_598,
            currency: "USD".into(),
        }),
    }))
}

fn order_placed(order_id: Uuid) -> EventEnvelope {
    let trace = TraceContext {
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        tracestate: String::new(),
    };
    EventEnvelope {
        trace_context: Some(trace),
        ..envelope::wrap(order_id, placed())
    }
}

/// Sends every envelope concurrently and waits for all acknowledgements.
async fn publish(producer: &EventProducer, envelopes: &[EventEnvelope]) {
    let deliveries: Vec<_> = envelopes
        .iter()
        .map(|envelope| producer.send(topics::ORDERS, envelope).expect("enqueued"))
        .collect();
    for delivery in deliveries {
        delivery.await.expect("broker acknowledged");
    }
}

/// Reads `count` messages from the start of the orders topic with a fresh consumer group.
async fn consume(kafka: &KafkaArgs, count: usize) -> Vec<(envelope::Event, Vec<(String, String)>)> {
    let group = format!("test-{}", Uuid::new_v4());
    let consumer: kafka::GroupConsumer =
        kafka::consumer(kafka, &group, &[topics::ORDERS]).expect("consumer");
    let mut received = Vec::new();
    while received.len() < count {
        let message = tokio::time::timeout(STARTUP, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} messages arrived", received.len()))
            .expect("message");
        let event = envelope::open(topics::ORDERS, message.payload().expect("payload"))
            .expect("a valid envelope");
        let headers = message
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
            .unwrap_or_default();
        assert_eq!(
            message.key(),
            Some(event.order_id.to_string().as_bytes()),
            "keyed by order id"
        );
        consumer
            .store_offset_from_message(&message)
            .expect("offset stored");
        received.push((event, headers));
    }
    received
}

#[tokio::test(flavor = "multi_thread")]
async fn protobuf_event_round_trips_through_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = start_broker(dir.path(), port);
    let kafka = KafkaArgs::at(format!("127.0.0.1:{port}"));
    ensure_topics(&kafka).await;

    let sent = order_placed(Uuid::new_v4());
    publish(
        &EventProducer::new(&kafka).unwrap(),
        std::slice::from_ref(&sent),
    )
    .await;

    let (event, headers) = consume(&kafka, 1).await.pop().unwrap();
    let mut expected = sent.clone();
    // `open` moves the event out of the envelope.
    (expected.body, expected.legacy) = (Vec::new(), None);
    assert_eq!(event.envelope, expected);
    assert_eq!(event.payload, Some(placed()));
    for (key, value) in [
        ("event_id", sent.event_id.as_str()),
        ("event_type", "OrderPlaced"),
        ("schema_version", "2"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ] {
        assert!(
            headers.contains(&(key.to_owned(), value.to_owned())),
            "header {key}={value} in {headers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_restart_after_sigkill_keeps_topics_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = start_broker(dir.path(), port);
    let kafka = KafkaArgs::at(format!("127.0.0.1:{port}"));
    ensure_topics(&kafka).await;

    let sent: Vec<EventEnvelope> = (0..50).map(|_| order_placed(Uuid::new_v4())).collect();
    publish(&EventProducer::new(&kafka).unwrap(), &sent).await;

    broker.kill();
    let _broker = start_broker(dir.path(), port);

    let metadata_topics = tokio::task::spawn_blocking({
        let kafka = kafka.clone();
        move || -> BTreeSet<String> {
            let consumer: rdkafka::consumer::BaseConsumer =
                kafka::client_config(&kafka).create().unwrap();
            let metadata = consumer
                .fetch_metadata(None, STARTUP)
                .expect("metadata after restart");
            metadata
                .topics()
                .iter()
                .map(|topic| topic.name().to_owned())
                .collect()
        }
    })
    .await
    .unwrap();
    for topic in topics::all() {
        assert!(
            metadata_topics.contains(&topic),
            "{topic} lost in restart: {metadata_topics:?}"
        );
    }

    let received: BTreeSet<Uuid> = consume(&kafka, sent.len())
        .await
        .into_iter()
        .map(|(event, _)| event.event_id)
        .collect();
    let expected: BTreeSet<Uuid> = sent
        .iter()
        .map(|envelope| envelope.event_id.parse().unwrap())
        .collect();
    assert_eq!(received, expected);
}

/// Topics are created with the partitions their settings give them: one topic its own count,
/// the others the common one, every dead-letter topic one.
#[tokio::test(flavor = "multi_thread")]
async fn topics_are_created_with_their_own_partition_counts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = start_broker(dir.path(), port);
    let mut kafka = KafkaArgs::at(format!("127.0.0.1:{port}"));
    kafka.kafka_partitions = 2;
    kafka.kafka_topic_partitions = vec![orderly_common::config::TopicPartitions {
        topic: topics::ORDERS.to_owned(),
        partitions: 5,
    }];
    ensure_topics(&kafka).await;
    let config = kafka::client_config(&kafka);
    let counts = tokio::task::spawn_blocking(move || {
        let client: rdkafka::consumer::BaseConsumer = config.create().unwrap();
        let metadata = client
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap();
        metadata
            .topics()
            .iter()
            .map(|topic| (topic.name().to_owned(), topic.partitions().len()))
            .collect::<std::collections::BTreeMap<_, _>>()
    })
    .await
    .unwrap();
    for topic in topics::all() {
        let expected = if topic == topics::ORDERS {
            5
        } else if topic.ends_with(".dlq") {
            1
        } else {
            2
        };
        assert_eq!(
            counts.get(&topic),
            Some(&expected),
            "partitions of {topic}: {counts:?}"
        );
    }
}
