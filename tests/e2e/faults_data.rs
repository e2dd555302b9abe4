//! Failure-injection rows about data: the database going away under the consumers, orders and
//! idempotency keys raced by many clients, and poison messages of every kind. Each scenario ends
//! with the invariants checked through the public APIs.

use std::{collections::BTreeMap, rc::Rc, time::Duration};

use orderly_common::kafka::{envelope, topics};
use orderly_proto::{
    events::v1::{OrderPlaced, order_event},
    order::v1::{OrderStatus, order_service_client::OrderServiceClient},
};
use prost::Message;
use tonic::Code;

use crate::support::{
    Options, System, channel, invariants,
    orders::{find, one_more_confirms, order_request, place, seed},
    postgres::Postgres,
    prometheus::scrape,
    quiet, topic,
};

/// How long the database stays down: long enough for every consumer to hit it, retry and back off.
const OUTAGE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn row_5_postgres_stopped_for_20_seconds_then_restarted_loses_and_dead_letters_nothing() {
    let postgres = Rc::new(Postgres::start());
    let databases = postgres.clone();
    let mut system = System::start(Options {
        database_url: Box::new(move |_| Some(databases.fresh_database())),
        ..Options::default()
    })
    .await;
    let initial = seed(
        &system,
        &[("mug", 1_299, 20), ("laptop", 149_900, 2)],
        &[("alice", 100_000), ("bob", 2_000)],
    )
    .await;
    // Outcomes that do not depend on timing: alice's mugs fit, bob cannot pay a laptop, and
    // nobody gets five laptops.
    let wanted = [
        ("alice", "mug", 1, OrderStatus::Confirmed),
        ("bob", "laptop", 1, OrderStatus::Rejected),
        ("alice", "mug", 2, OrderStatus::Confirmed),
        ("alice", "laptop", 5, OrderStatus::Rejected),
        ("bob", "mug", 1, OrderStatus::Confirmed),
        ("alice", "mug", 3, OrderStatus::Confirmed),
    ];
    let placing = wanted.iter().map(|(customer, sku, quantity, _)| {
        place(&system, order_request(customer, sku, *quantity, ""))
    });
    let placed = futures::future::join_all(placing).await;
    // Their sagas are in flight when every database goes away at once.
    postgres.stop_immediately();
    let mut orders = OrderServiceClient::new(channel(system.addr("order")));
    let refused = orders
        .place_order(order_request("alice", "mug", 1, ""))
        .await
        .expect_err("no database, no order");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    // A replica restarted while the database is away waits for it instead of exiting.
    system.kill("payment");
    system.start_again("payment");
    tokio::time::sleep(OUTAGE).await; // the fault itself: the outage lasts this long
    system.assert_running("payment");
    postgres.start_again();
    system.serving("payment").await;

    let settled = quiet::settle(&system).await;
    assert_eq!(
        settled.len(),
        wanted.len(),
        "the refused order was not written"
    );
    for (order, (_, _, _, status)) in placed.iter().zip(wanted) {
        assert_eq!(
            find(&settled, &order.order_id).status(),
            status,
            "{order:?}"
        );
    }
    invariants::check(&system, &initial, &settled).await;
    for topic_name in topics::DOMAIN {
        let letters = topic::read_all(&system.kafka, &topics::dead_letter(topic_name)).await;
        assert!(
            letters.is_empty(),
            "a transient failure was dead-lettered: {letters:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn row_9_one_idempotency_key_raced_by_twenty_clients_places_one_order() {
    let system = System::start(Options::default()).await;
    let initial = seed(&system, &[("mug", 1_299, 10)], &[("alice", 100_000)]).await;
    let racing = (0..20).map(|_| {
        let mut orders = OrderServiceClient::new(channel(system.addr("order")));
        async move {
            orders
                .place_order(order_request("alice", "mug", 2, "raced-key"))
                .await
                .map(|reply| reply.into_inner().order.expect("order").order_id)
        }
    });
    let answers = futures::future::join_all(racing).await;
    let ids: Vec<&String> = answers
        .iter()
        .map(|answer| {
            answer
                .as_ref()
                .expect("same key, same payload: the same answer")
        })
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one order for one key: {ids:?}"
    );

    // The same key with another payload, raced too: each is refused, naming the key.
    let conflicting = (0..10).map(|quantity| {
        let mut orders = OrderServiceClient::new(channel(system.addr("order")));
        async move {
            orders
                .place_order(order_request("alice", "mug", 3 + quantity, "raced-key"))
                .await
        }
    });
    for answer in futures::future::join_all(conflicting).await {
        let refused = answer.expect_err("key reused with another payload");
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains("idempotency_key"), "{refused:?}");
    }
    let orders = quiet::settle(&system).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].order_id, *ids[0]);
    invariants::check(&system, &initial, &orders).await;
}

/// Poison of every kind, each as it would reach a consumer.
fn poison_kinds() -> Vec<(&'static str, Vec<u8>)> {
    let order_id = uuid::Uuid::new_v4();
    let placed =
        || envelope::Payload::Order(order_event::Event::OrderPlaced(OrderPlaced::default()));
    // Newer versions and unknown types are not poison (see `evolving.rs`); an unset version
    // and an envelope naming no type at all are.
    let mut wrong_version = envelope::wrap(order_id, placed());
    wrong_version.schema_version = 0;
    let mut untyped = envelope::wrap(order_id, placed());
    untyped.event_type = String::new();
    (untyped.body, untyped.legacy) = (Vec::new(), None);
    let mut mislabelled = envelope::wrap(order_id, placed());
    mislabelled.event_type = "PaymentDeclined".into();
    vec![
        ("undecodable", vec![0xff, 0x00, 0x13, 0x37]),
        (
            "neither a payload nor an event type",
            untyped.encode_to_vec(),
        ),
        ("does not match", mislabelled.encode_to_vec()),
        (
            "unsupported schema version 0",
            wrong_version.encode_to_vec(),
        ),
        ("oversized", vec![b'x'; envelope::MAX_ENVELOPE_BYTES * 3]),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn row_10_poison_messages_of_every_kind_are_dead_lettered_and_counted() {
    use orderly_common::messaging::dead_letter::headers as dlq;
    let system = System::start(Options::default()).await;
    let initial = seed(&system, &[("mug", 1_299, 10)], &[("alice", 100_000)]).await;
    let kinds = poison_kinds();
    let records = kinds
        .iter()
        .map(|(_, bytes)| {
            let headers = rdkafka::message::OwnedHeaders::new();
            (b"poison".to_vec(), bytes.clone(), headers)
        })
        .collect();
    topic::produce(&system.kafka, topics::ORDERS, records).await;
    one_more_confirms(&system, &initial).await;

    // Each kind is dead-lettered once by each consumer of the topic, with origin and error.
    let letters = topic::read_all(&system.kafka, &topics::dead_letter(topics::ORDERS)).await;
    let mut seen: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for letter in &letters {
        let headers: BTreeMap<String, String> = topic::headers(letter).into_iter().collect();
        assert_eq!(
            headers.get(dlq::TOPIC).map(String::as_str),
            Some(topics::ORDERS)
        );
        assert!(headers.contains_key(dlq::PARTITION) && headers.contains_key(dlq::OFFSET));
        let error = headers.get(dlq::ERROR).cloned().unwrap_or_default();
        let kind = kinds
            .iter()
            .find(|(says, _)| error.contains(says))
            .map(|(says, _)| *says)
            .unwrap_or_else(|| panic!("an error naming what is wrong: {error:?}"));
        let consumer = headers.get(dlq::CONSUMER).cloned().unwrap_or_default();
        *seen.entry((consumer, kind)).or_default() += 1;
    }
    let expected: BTreeMap<(String, &str), usize> = ["inventory", "orchestrator"]
        .iter()
        .flat_map(|consumer| {
            kinds
                .iter()
                .map(|(kind, _)| (((*consumer).to_owned(), *kind), 1))
        })
        .collect();
    assert_eq!(seen, expected);

    // I8 as a count: consumed = applied + dead-lettered, by each consumer of the topic.
    let in_topic = topic::read_all(&system.kafka, topics::ORDERS).await.len() as f64;
    for consumer in ["inventory", "orchestrator"] {
        let metrics = scrape(system.metrics_addr(consumer)).await;
        let consumed = |outcome| {
            metrics.sum(
                "orderly_events_consumed_total",
                &[
                    ("consumer", consumer),
                    ("topic", topics::ORDERS),
                    ("outcome", outcome),
                ],
            )
        };
        assert_eq!(consumed("applied"), 1.0);
        assert_eq!(consumed("dead_lettered"), kinds.len() as f64);
        assert_eq!(consumed("applied") + consumed("dead_lettered"), in_topic);
    }
}
