//! Frames larger than the broker decodes and encodes in place (64 KiB, see the tansu-service
//! patch) go through the blocking pool instead; both ways must carry every byte. A produce of
//! many large records in one request, then a fetch from the beginning whose response carries them
//! all, interleaved with small records that take the in-place path.

mod support;

use std::time::Duration;

use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};

const TOPIC: &str = "large-frames";
const LARGE_RECORDS: usize = 40;
/// Forty of these make a produce request and a fetch response of over 300 KiB.
const LARGE_RECORD_BYTES: usize = 8 * 1024;
const DELIVERED_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn large_produce_requests_and_fetch_responses_carry_every_byte() {
    let broker = support::Broker::start().await;
    let bootstrap = broker.addr.to_string();
    support::create_topic(&bootstrap, TOPIC, 1).await;
    // A long linger so that the large records leave in one produce request.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "200")
        .create()
        .unwrap();

    let mut sent = vec!["small before".to_owned()];
    sent.extend((0..LARGE_RECORDS).map(large_payload));
    sent.push("small after".to_owned());
    send(&producer, &sent[..1]).await;
    send(&producer, &sent[1..=LARGE_RECORDS]).await;
    send(&producer, &sent[LARGE_RECORDS + 1..]).await;

    // A group that starts after everything was produced fetches it in large responses.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let mut received = Vec::with_capacity(sent.len());
    while received.len() < sent.len() {
        let message = tokio::time::timeout(DELIVERED_WITHIN, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {} records delivered", received.len(), sent.len()))
            .expect("a record");
        let payload = message
            .payload_view::<str>()
            .expect("a payload")
            .expect("UTF-8");
        received.push(payload.to_owned());
    }
    assert!(
        received == sent,
        "records came back different: {} sent, {} received, first difference at {:?}",
        sent.len(),
        received.len(),
        sent.iter().zip(&received).position(|(a, b)| a != b)
    );
    drop(consumer);
    broker.stop().await;
}

/// Record `i`: its number repeated to `LARGE_RECORD_BYTES`, so a shifted or truncated copy shows.
fn large_payload(i: usize) -> String {
    let unit = format!("record {i:04};");
    unit.repeat(LARGE_RECORD_BYTES / unit.len())
}

/// Sends `payloads` at once and waits for every acknowledgement.
async fn send(producer: &FutureProducer, payloads: &[String]) {
    let deliveries: Vec<_> = payloads
        .iter()
        .map(|payload| {
            producer.send(
                FutureRecord::<str, str>::to(TOPIC)
                    .partition(0)
                    .payload(payload),
                Duration::from_secs(10),
            )
        })
        .collect();
    for delivery in deliveries {
        delivery.await.expect("acknowledged");
    }
}
