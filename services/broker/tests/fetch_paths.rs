//! Every record reaches its consumers through the broker's shortcuts: fetches skip partitions
//! already read to their end (learned from produces and from earlier fetches), and storage
//! reuses prepared statements across requests. A stale snapshot left by a reused statement, or
//! an end learned wrong, would show here as a record never delivered.

mod support;

use std::{collections::BTreeMap, time::Duration};

use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
    producer::{FutureProducer, FutureRecord},
};

const TOPIC: &str = "fetch-paths";
const PARTITIONS: i32 = 3;
const ROUNDS: usize = 40;
const DELIVERED_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn every_record_reaches_consumers_in_order_per_partition() {
    let broker = support::Broker::start().await;
    let bootstrap = broker.addr.to_string();
    support::create_topic(&bootstrap, TOPIC, PARTITIONS).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let live = consumer(&bootstrap, "live");

    // Rounds of one to three records on varying partitions; partition 2 only from round 10 on,
    // so it starts out unknown to the broker while the others are read to their end.
    let mut sent: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for round in 0..ROUNDS {
        let records = 1 + round % 3;
        for i in 0..records {
            let partition = if round < 10 {
                (i % 2) as i32
            } else {
                ((round + i) % 3) as i32
            };
            let payload = format!("round {round} record {i}");
            producer
                .send(
                    FutureRecord::<str, str>::to(TOPIC)
                        .partition(partition)
                        .payload(&payload),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
            sent.entry(partition).or_default().push(payload);
        }
        let received = receive(&live, records).await;
        for (partition, payload) in received {
            let expected = &sent[&partition];
            assert!(
                expected.contains(&payload),
                "round {round}: {payload:?} on partition {partition} was never sent there"
            );
        }
    }

    // A new group reads everything from the beginning, in the order sent per partition.
    let total = sent.values().map(Vec::len).sum();
    let replay = consumer(&bootstrap, "replay");
    let mut replayed: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for (partition, payload) in receive(&replay, total).await {
        replayed.entry(partition).or_default().push(payload);
    }
    assert_eq!(replayed, sent);

    // The ends storage reports agree with what was produced.
    for (partition, records) in &sent {
        let (low, high) = replay
            .fetch_watermarks(TOPIC, *partition, Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            (low, high),
            (0, records.len() as i64),
            "partition {partition}"
        );
    }
    drop((live, replay));
    broker.stop().await;
}

fn consumer(bootstrap: &str, group: &str) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "500")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    consumer
}

/// The next `count` records, as (partition, payload).
async fn receive(consumer: &StreamConsumer, count: usize) -> Vec<(i32, String)> {
    let mut received = Vec::with_capacity(count);
    while received.len() < count {
        let message = tokio::time::timeout(DELIVERED_WITHIN, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("{} of {count} records delivered", received.len()))
            .expect("a record");
        let payload = message
            .payload_view::<str>()
            .expect("a payload")
            .expect("UTF-8");
        received.push((message.partition(), payload.to_owned()));
    }
    received
}
