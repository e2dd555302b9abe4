//! The order saga end to end over real processes: choreography through the embedded broker,
//! outbox and inbox, the orchestrator deciding and compensating. Every scenario ends with the
//! invariants of DESIGN.md checked through the public APIs.

use std::{collections::BTreeMap, rc::Rc, time::Duration};

use orderly_common::kafka::topics;
use orderly_proto::{
    inventory::v1::{
        GetProductRequest, UpsertProductRequest, inventory_service_client::InventoryServiceClient,
    },
    order::v1::{Order, OrderStatus, order_service_client::OrderServiceClient},
    payment::v1::{GetAccountRequest, payment_service_client::PaymentServiceClient},
};
use tonic::Code;

use crate::support::{
    Options, System, channel,
    invariants::{self, Initial},
    orders::{find, one_more_confirms, order_request, place, seed, usd},
    postgres::Postgres,
    prometheus, quiet, topic, webhook,
};

/// CONFIRMED; REJECTED for stock; REJECTED for money with the reservation released.
async fn three_paths(system: &System) -> Initial {
    let initial = seed(
        system,
        &[("mug", 1_299, 10), ("laptop", 149_900, 5)],
        &[("alice", 100_000), ("bob", 2_000)],
    )
    .await;
    let fits = place(system, order_request("alice", "mug", 2, "alice-1")).await;
    let too_many = place(system, order_request("alice", "laptop", 10, "")).await;
    let too_dear = place(system, order_request("bob", "laptop", 1, "")).await;

    let orders = quiet::settle(system).await;
    assert_eq!(
        find(&orders, &fits.order_id).status(),
        OrderStatus::Confirmed
    );
    let stock = find(&orders, &too_many.order_id);
    assert_eq!(stock.status(), OrderStatus::Rejected);
    // How many were available depends on whether bob's laptop was reserved first.
    assert!(
        stock.reason.contains("laptop (requested 10, available"),
        "{}",
        stock.reason
    );
    let money = find(&orders, &too_dear.order_id);
    assert_eq!(money.status(), OrderStatus::Rejected);
    assert!(
        money.reason.contains("insufficient funds"),
        "{}",
        money.reason
    );

    // The declined order's reservation was released and nothing was charged.
    let mut inventory = InventoryServiceClient::new(channel(system.addr("inventory")));
    let laptop = inventory
        .get_product(GetProductRequest {
            sku: "laptop".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!((laptop.available, laptop.reserved, laptop.sold), (5, 0, 0));
    let mut payment = PaymentServiceClient::new(channel(system.addr("payment")));
    let bob = payment
        .get_account(GetAccountRequest {
            customer_id: "bob".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(
        (bob.balance, bob.held.map(|h| h.amount_minor)),
        (usd(2_000), Some(0))
    );

    invariants::check(system, &initial, &orders).await;
    idempotent_api(system, &fits).await;
    initial
}

/// I9: the same key and payload answer the same order; the same key with another payload is
/// refused; neither creates an order.
async fn idempotent_api(system: &System, first: &Order) {
    let count = quiet::all_orders(system).await.len();
    let mut orders = OrderServiceClient::new(channel(system.addr("order")));
    let again = orders
        .place_order(order_request("alice", "mug", 2, "alice-1"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(again.order_id, first.order_id);
    let other = orders
        .place_order(order_request("alice", "mug", 3, "alice-1"))
        .await
        .expect_err("key reused");
    assert_eq!(other.code(), Code::InvalidArgument);
    assert!(
        other.message().contains("idempotency_key"),
        "{}",
        other.message()
    );
    assert_eq!(quiet::all_orders(system).await.len(), count);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_paths_on_sqlite() {
    let system = System::start(Options::default()).await;
    three_paths(&system).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_paths_on_postgres() {
    let postgres = Rc::new(Postgres::start());
    let system = System::start(Options {
        database_url: postgres.databases(),
        ..Options::default()
    })
    .await;
    three_paths(&system).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row_9_a_hundred_concurrent_orders_on_ten_units() {
    let system = System::start(Options::default()).await;
    let initial = seed(&system, &[("hot", 500, 10)], &[("alice", 1_000_000)]).await;
    let placing = (0..100).map(|_| place(&system, order_request("alice", "hot", 1, "")));
    futures::future::join_all(placing).await;
    let orders = quiet::settle(&system).await;
    let confirmed = orders
        .iter()
        .filter(|o| o.status() == OrderStatus::Confirmed)
        .count();
    assert_eq!((orders.len(), confirmed), (100, 10));
    invariants::check(&system, &initial, &orders).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row_6_every_event_delivered_two_or_three_times_changes_nothing() {
    let system = System::start(Options::default()).await;
    let initial = three_paths(&system).await;
    let before = quiet::all_orders(&system).await;
    let mut copies_by_topic = BTreeMap::new();
    for topic_name in topics::DOMAIN {
        let records = topic::read_all(&system.kafka, topic_name).await;
        assert!(!records.is_empty(), "{topic_name} carried events");
        // Every other event twice more: each is delivered two or three times in all.
        let copies: Vec<_> = records
            .iter()
            .enumerate()
            .flat_map(|(n, r)| {
                use rdkafka::Message;
                let copy = (
                    r.key().unwrap_or_default().to_vec(),
                    r.payload().unwrap_or_default().to_vec(),
                    topic::copy_headers(r),
                );
                std::iter::repeat_n(copy, 1 + n % 2)
            })
            .collect();
        copies_by_topic.insert(topic_name, copies.len());
        topic::produce(&system.kafka, topic_name, copies).await;
    }
    let after = quiet::settle(&system).await;
    assert_eq!(after, before, "redelivered events changed the orders");
    invariants::check(&system, &initial, &after).await;
    // Every copy was seen, and skipped by the inbox, by every consumer of its topic.
    for (consumer, topic_names) in quiet::GROUPS {
        let metrics = prometheus::scrape(system.metrics_addr(consumer)).await;
        for topic_name in topic_names {
            let skipped = metrics.sum(
                "orderly_inbox_duplicates_total",
                &[("consumer", consumer), ("topic", topic_name)],
            );
            assert_eq!(
                skipped, copies_by_topic[topic_name] as f64,
                "{consumer} on {topic_name}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_messages_are_dead_lettered_and_the_partition_keeps_flowing() {
    use orderly_common::messaging::dead_letter::headers as dlq;
    let system = System::start(Options::default()).await;
    let initial = seed(&system, &[("mug", 1_299, 10)], &[("alice", 100_000)]).await;
    for topic_name in topics::DOMAIN {
        let poison = vec![(
            b"poison".to_vec(),
            vec![0xff, 0x00, 0x13, 0x37],
            rdkafka::message::OwnedHeaders::new(),
        )];
        topic::produce(&system.kafka, topic_name, poison).await;
    }
    one_more_confirms(&system, &initial).await;

    // Every consumer of a topic dead-letters its poison once, with origin and error.
    for (topic_name, consumers) in [
        (topics::ORDERS, vec!["inventory", "orchestrator"]),
        (topics::INVENTORY, vec!["orchestrator", "payment"]),
        (topics::PAYMENTS, vec!["orchestrator"]),
        (
            topics::SAGAS,
            vec!["inventory", "notification", "order", "payment"],
        ),
    ] {
        let letters = topic::read_all(&system.kafka, &topics::dead_letter(topic_name)).await;
        let mut by_consumer: BTreeMap<String, usize> = BTreeMap::new();
        for letter in &letters {
            let headers = topic::headers(letter);
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(header(dlq::TOPIC).as_deref(), Some(topic_name));
            assert!(header(dlq::OFFSET).is_some() && header(dlq::PARTITION).is_some());
            assert!(
                header(dlq::ERROR).is_some_and(|e| e.contains("undecodable")),
                "{headers:?}"
            );
            *by_consumer
                .entry(header(dlq::CONSUMER).unwrap_or_default())
                .or_default() += 1;
        }
        let expected: BTreeMap<String, usize> =
            consumers.into_iter().map(|c| (c.to_owned(), 1)).collect();
        assert_eq!(by_consumer, expected, "dead letters of {topic_name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn orchestrator_killed_mid_saga_recovers_every_saga() {
    let mut system = System::start(Options::default()).await;
    let initial = seed(
        &system,
        &[("mug", 1_299, 12), ("laptop", 149_900, 2)],
        &[("alice", 200_000), ("bob", 2_000)],
    )
    .await;
    let first = [
        ("alice", "mug", 1),
        ("bob", "mug", 1),
        ("alice", "laptop", 1),
        ("bob", "laptop", 1),
    ];
    let placing = first
        .iter()
        .cycle()
        .take(20)
        .map(|(c, s, q)| place(&system, order_request(c, s, *q, "")));
    futures::future::join_all(placing).await;
    system.kill("orchestrator");
    // Orders keep coming while it is down; their events wait in Kafka.
    let placing = first
        .iter()
        .cycle()
        .take(8)
        .map(|(c, s, q)| place(&system, order_request(c, s, *q, "")));
    futures::future::join_all(placing).await;
    system.restart("orchestrator").await;
    let orders = quiet::settle(&system).await;
    assert_eq!(orders.len(), 28);
    invariants::check(&system, &initial, &orders).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn notifications_reach_a_flaky_webhook_once_per_outcome() {
    // A flaky endpoint: 503 to the first request (retried), 200 afterwards.
    let (url, mut received) =
        webhook::receiver(|request| if request == 0 { 503 } else { 200 }).await;
    let env = vec![("notification", "ORDERLY_NOTIFICATIONS_WEBHOOK", url)];
    let system = System::start(Options {
        env,
        ..Options::default()
    })
    .await;
    let initial = seed(&system, &[("mug", 1_299, 1)], &[("alice", 100_000)]).await;
    let confirmed = place(&system, order_request("alice", "mug", 1, "")).await;
    let rejected = place(&system, order_request("alice", "mug", 1, "")).await;
    let orders = quiet::settle(&system).await;
    invariants::check(&system, &initial, &orders).await;

    let mut told = BTreeMap::new();
    while let Ok(body) = received.try_recv() {
        for order in [&confirmed, &rejected] {
            if body.contains(&order.order_id) {
                *told.entry(order.order_id.clone()).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(
        told.len(),
        2,
        "both outcomes reached the webhook despite its first failure: {told:?}"
    );
}

/// Payment freezes as the order is placed, so the deadline rejects the saga and releases the
/// reservation. When payment thaws it authorizes the order anyway: that late success is
/// refunded, never confirmed.
#[tokio::test(flavor = "multi_thread")]
async fn row_7_late_payment_after_the_deadline_is_refunded_not_confirmed() {
    use orderly_proto::payment::v1::{ListPaymentsRequest, PaymentStatus};
    let system = System::start(Options {
        saga_deadline_ms: 1_000,
        ..Options::default()
    })
    .await;
    let initial = seed(&system, &[("mug", 1_299, 5)], &[("alice", 100_000)]).await;
    let order = place(&system, order_request("alice", "mug", 2, "")).await;
    // Payment needs two broker hops after PlaceOrder answers (each at least the 5 ms fetch
    // wait) before it sees this order; the signal arrives well before.
    system.pause("payment");

    let orders = quiet::settle_orders(&system).await;
    let decided = find(&orders, &order.order_id);
    assert_eq!(decided.status(), OrderStatus::Rejected);
    assert!(decided.reason.contains("deadline"), "{}", decided.reason);

    system.resume("payment");
    let mut payment = PaymentServiceClient::new(channel(system.addr("payment")));
    let deadline = tokio::time::Instant::now() + quiet::SETTLE;
    loop {
        let request = ListPaymentsRequest {
            order_id: order.order_id.clone(),
            ..Default::default()
        };
        let payments = payment
            .list_payments(request)
            .await
            .unwrap()
            .into_inner()
            .payments;
        if payments
            .first()
            .is_some_and(|paid| paid.status() == PaymentStatus::Refunded)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "late payment not refunded: {payments:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let orders = quiet::settle(&system).await;
    assert_eq!(
        find(&orders, &order.order_id).status(),
        OrderStatus::Rejected,
        "never confirmed"
    );
    invariants::check(&system, &initial, &orders).await;
}

/// PlaceOrder prices items and checks customers from the order service's projections of the
/// catalogue and the accounts, fed by inventory's and payment's events: with both stopped, orders
/// are still taken (PENDING), at the latest price, and decided once both are back. What the
/// projections never learnt (a sku or a customer that does not exist) cannot be told apart from
/// what was created a moment ago, so it is refused as UNAVAILABLE, naming whom it needs, and
/// nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn orders_are_taken_while_inventory_and_payment_are_down() {
    let mut system = System::start(Options::default()).await;
    let initial = seed(
        &system,
        &[("mug", 1_299, 10), ("laptop", 149_900, 2)],
        &[("alice", 100_000), ("bob", 2_000)],
    )
    .await;
    let mut inventory = InventoryServiceClient::new(channel(system.addr("inventory")));
    let repriced = UpsertProductRequest {
        sku: "mug".into(),
        name: "mug".into(),
        unit_price: usd(1_499),
    };
    inventory.upsert_product(repriced).await.unwrap();
    // Every consumer group, the order service's projections among them, has caught up.
    quiet::settle(&system).await;
    for participant in ["inventory", "payment"] {
        system.stop(participant);
        let stopped = system.wait_exit(participant, Duration::from_secs(30)).await;
        assert!(stopped.is_some(), "{participant} did not stop");
    }

    let fits = place(&system, order_request("alice", "mug", 2, "")).await;
    assert_eq!(fits.total, usd(2 * 1_499), "priced at the latest price");
    let too_dear = place(&system, order_request("bob", "laptop", 1, "")).await;
    let mut orders = OrderServiceClient::new(channel(system.addr("order")));
    for (request, needed) in [
        (order_request("alice", "teapot", 1, ""), "inventory"),
        (order_request("carol", "mug", 1, ""), "payment"),
    ] {
        let refused = orders
            .place_order(request)
            .await
            .expect_err("not learnt, and its owner is down");
        assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
        assert!(refused.message().contains(needed), "{refused:?}");
    }

    system.restart("inventory").await;
    system.restart("payment").await;
    let settled = quiet::settle(&system).await;
    assert_eq!(settled.len(), 2, "the refused orders were not written");
    assert_eq!(
        find(&settled, &fits.order_id).status(),
        OrderStatus::Confirmed
    );
    let declined = find(&settled, &too_dear.order_id);
    assert_eq!(declined.status(), OrderStatus::Rejected);
    assert!(
        declined.reason.contains("insufficient funds"),
        "{declined:?}"
    );
    invariants::check(&system, &initial, &settled).await;
}
