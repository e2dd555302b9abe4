//! WatchOrder over real processes: one stream carries an order from PENDING to its decision and
//! ends, woken by the consumer (no polling) and living past the request timeout; a replica that
//! does not apply outcomes still ends its streams (it reads the order again) and ends them at
//! shutdown; unknown and malformed ids are refused. A customer's orders are followed on one
//! stream.

use std::time::Duration;

use orderly_proto::order::v1::{
    Order, OrderStatus, WatchCustomerOrdersRequest, WatchOrderRequest,
    order_service_client::OrderServiceClient,
};
use tonic::Code;

use crate::support::{
    Options, System, channel, free_port, invariants, loopback,
    orders::{find, next_update, order_request, place, rest_of_watch, seed, watch, watch_decided},
    process::Orderly,
    quiet, wait_serving,
};

/// Well inside the 30 s saga deadline, so a stream that missed the decision cannot pass for a
/// slow saga.
const DECISION: Duration = Duration::from_secs(20);

fn statuses(orders: &[Order]) -> Vec<OrderStatus> {
    orders.iter().map(Order::status).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_order_streams_pending_then_the_decision_and_ends() {
    let system = System::start(Options {
        env: vec![
            ("order", "ORDERLY_REQUEST_TIMEOUT_MS", "1500".into()),
            // No re-reading within the test: only the consumer's notification can end a stream.
            ("order", "ORDERLY_WATCH_RECHECK_MS", "600000".into()),
        ],
        ..Options::default()
    })
    .await;
    let initial = seed(
        &system,
        &[("mug", 1_299, 10), ("laptop", 149_900, 5)],
        &[("alice", 100_000), ("bob", 2_000)],
    )
    .await;
    // Nothing is decided while the orchestrator is frozen, so each stream starts PENDING.
    system.pause("orchestrator");
    let fits = place(&system, order_request("alice", "mug", 2, "")).await;
    let too_dear = place(&system, order_request("bob", "laptop", 1, "")).await;
    let mut orders = OrderServiceClient::new(channel(system.addr("order")));
    let mut confirming = watch(&mut orders, &fits.order_id).await;
    let mut rejecting = watch(&mut orders, &too_dear.order_id).await;
    for stream in [&mut confirming, &mut rejecting] {
        let now = next_update(stream, DECISION)
            .await
            .expect("the order as it is now");
        assert_eq!(now.status(), OrderStatus::Pending);
    }
    // Twice the request timeout: a timeout that cut streams short would end them here.
    tokio::time::sleep(Duration::from_secs(3)).await;
    system.resume("orchestrator");

    let confirmed = rest_of_watch(&mut confirming, DECISION).await;
    assert_eq!(statuses(&confirmed), [OrderStatus::Confirmed]);
    let rejected = rest_of_watch(&mut rejecting, DECISION).await;
    assert_eq!(statuses(&rejected), [OrderStatus::Rejected]);
    assert!(
        rejected[0].reason.contains("insufficient funds"),
        "{}",
        rejected[0].reason
    );

    // What the streams ended with is the order as GetOrder and ListOrders show it.
    let settled = quiet::settle(&system).await;
    assert_eq!(find(&settled, &fits.order_id), &confirmed[0]);
    assert_eq!(find(&settled, &too_dear.order_id), &rejected[0]);
    invariants::check(&system, &initial, &settled).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_order_refuses_unknown_and_malformed_ids() {
    // Refusals need no Kafka.
    let system = System::start(Options {
        broker: false,
        ..Options::default()
    })
    .await;
    let mut orders = OrderServiceClient::new(channel(system.addr("order")));
    let unknown = uuid::Uuid::new_v4().to_string();
    let refused = orders
        .watch_order(WatchOrderRequest {
            order_id: unknown.clone(),
        })
        .await
        .expect_err("an unknown id is refused");
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    assert!(refused.message().contains(&unknown), "{refused:?}");
    for malformed in ["not-a-uuid", ""] {
        let refused = orders
            .watch_order(WatchOrderRequest {
                order_id: malformed.into(),
            })
            .await
            .expect_err("a malformed id is refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains("order_id"), "{refused:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_applies_no_outcome_still_ends_its_streams_and_ends_them_at_shutdown() {
    let system = System::start(Options::default()).await;
    let initial = seed(&system, &[("mug", 1_299, 10)], &[("alice", 100_000)]).await;
    // A second order replica on the same database whose broker address has no listener: its
    // consumer never sees an outcome, so only re-reading can tell its streams.
    let replica_addr = loopback(free_port());
    let envs = [
        ("ORDERLY_LISTEN_ADDR", replica_addr.to_string()),
        ("ORDERLY_KAFKA_BOOTSTRAP", loopback(free_port()).to_string()),
        ("ORDERLY_WATCH_RECHECK_MS", "200".to_owned()),
        (
            "ORDERLY_INVENTORY_ENDPOINT",
            format!("http://{}", system.addr("inventory")),
        ),
        (
            "ORDERLY_PAYMENT_ENDPOINT",
            format!("http://{}", system.addr("payment")),
        ),
    ];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let replica = Orderly::spawn(&["order"], &envs, system.dir.path());
    wait_serving(replica_addr).await;
    let mut on_replica = OrderServiceClient::new(channel(replica_addr));

    system.pause("orchestrator");
    let order = place(&system, order_request("alice", "mug", 1, "")).await;
    let mut stream = watch(&mut on_replica, &order.order_id).await;
    let now = next_update(&mut stream, DECISION).await.expect("the order");
    assert_eq!(now.status(), OrderStatus::Pending);
    system.resume("orchestrator");
    let decided = rest_of_watch(&mut stream, DECISION).await;
    assert_eq!(statuses(&decided), [OrderStatus::Confirmed]);

    // Shutdown ends a waiting stream at once, so it does not hold the drain open for the grace
    // period (20 s); the client can watch again elsewhere.
    system.pause("orchestrator");
    let waiting = place(&system, order_request("alice", "mug", 1, "")).await;
    let mut stream = watch(&mut on_replica, &waiting.order_id).await;
    let now = next_update(&mut stream, DECISION).await.expect("the order");
    assert_eq!(now.status(), OrderStatus::Pending);
    replica.signal("-TERM");
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the stream ends when shutdown starts")
        .expect_err("ended by the shutdown");
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert!(ended.message().contains("shutting down"), "{ended:?}");
    system.resume("orchestrator");

    let settled = quiet::settle(&system).await;
    assert_eq!(
        find(&settled, &waiting.order_id).status(),
        OrderStatus::Confirmed
    );
    invariants::check(&system, &initial, &settled).await;
}

/// Two order replicas on PostgreSQL, each with a watch recheck far beyond the test's patience:
/// every order is watched on both, and every stream ends with the decision within seconds,
/// whichever replica consumed it (the other learns of it by LISTEN/NOTIFY).
#[tokio::test(flavor = "multi_thread")]
async fn watch_order_learns_decisions_applied_by_another_replica() {
    let postgres = std::rc::Rc::new(crate::support::postgres::Postgres::start());
    let mut system = System::start(Options {
        database_url: postgres.databases(),
        env: vec![("order", "ORDERLY_WATCH_RECHECK_MS", "600000".to_owned())],
        ..Options::default()
    })
    .await;
    seed(&system, &[("mug", 1_299, 100)], &[("alice", 1_000_000)]).await;
    let second = system.add_replica("order").await;
    let mut replicas = [
        OrderServiceClient::new(channel(system.addr("order"))),
        OrderServiceClient::new(channel(system.addr(&second))),
    ];
    // Three partitions shared by two consumers: among twelve orders, each replica decides some.
    for _ in 0..12 {
        let order = place(&system, order_request("alice", "mug", 1, "")).await;
        let [first, other] = &mut replicas;
        let (on_first, on_other) = tokio::join!(
            watch_decided(first, &order.order_id, Duration::from_secs(15)),
            watch_decided(other, &order.order_id, Duration::from_secs(15)),
        );
        for updates in [on_first, on_other] {
            assert_eq!(
                updates.last().map(Order::status),
                Some(OrderStatus::Confirmed)
            );
        }
    }
    drop(postgres);
}

/// A client following a customer: one WatchCustomerOrders stream sends the customer's pending
/// order as it is now, then every order of theirs as it is placed and decided (another
/// customer's orders never), each state once, and stays open for the next. The re-check is off,
/// so only PlaceOrder's and the consumer's notifications wake it.
#[tokio::test(flavor = "multi_thread")]
async fn watch_customer_orders_streams_each_order_placed_and_decided() {
    let system = System::start(Options {
        env: vec![("order", "ORDERLY_WATCH_RECHECK_MS", "600000".into())],
        ..Options::default()
    })
    .await;
    let initial = seed(
        &system,
        &[("mug", 1_299, 10), ("laptop", 149_900, 5)],
        &[("bob", 2_000), ("alice", 100_000)],
    )
    .await;
    let mut orders = OrderServiceClient::new(channel(system.addr("order")));
    let request = WatchCustomerOrdersRequest {
        customer_id: "bob".into(),
    };
    let mut stream = orders
        .watch_customer_orders(request)
        .await
        .expect("bob's orders watched")
        .into_inner();
    let mug = place(&system, order_request("bob", "mug", 1, "")).await;
    let laptop = place(&system, order_request("bob", "laptop", 1, "")).await;
    place(&system, order_request("alice", "mug", 1, "")).await;

    // Each of bob's orders is sent as placed (unless it was decided before the stream read it)
    // and then as decided, nothing twice; alice's never.
    let mut sent: Vec<(String, OrderStatus)> = Vec::new();
    let decided = |sent: &[(String, OrderStatus)], id: &str| {
        sent.iter()
            .any(|(order, status)| order == id && *status != OrderStatus::Pending)
    };
    while !(decided(&sent, &mug.order_id) && decided(&sent, &laptop.order_id)) {
        let order = next_update(&mut stream, DECISION)
            .await
            .expect("the stream stays open");
        assert_eq!(order.customer_id, "bob", "{order:?}");
        let state = (order.order_id.clone(), order.status());
        assert!(!sent.contains(&state), "{state:?} sent twice");
        sent.push(state);
    }
    assert!(
        sent.contains(&(mug.order_id.clone(), OrderStatus::Confirmed)),
        "{sent:?}"
    );
    assert!(
        sent.contains(&(laptop.order_id.clone(), OrderStatus::Rejected)),
        "{sent:?}"
    );

    // Still open: the next order comes down the same stream.
    let another = place(&system, order_request("bob", "mug", 1, "")).await;
    let next = next_update(&mut stream, DECISION)
        .await
        .expect("still open");
    assert_eq!(next.order_id, another.order_id);

    let orders = quiet::settle(&system).await;
    invariants::check(&system, &initial, &orders).await;
}
