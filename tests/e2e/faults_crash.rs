//! Crash failure injection (issue 4): each component SIGKILLed at a seeded random moment under
//! load (row 1), precise crash points armed through fail points (row 2), and the broker
//! SIGKILLed under load (row 3). After each heal the invariants of DESIGN.md hold, nothing
//! happened twice, and every order ended as it would have without faults (I10).

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    os::unix::process::ExitStatusExt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use orderly_common::kafka::{envelope::headers, topics};
use orderly_proto::order::v1::{
    Order, OrderStatus, PlaceOrderRequest, order_service_client::OrderServiceClient,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rdkafka::Message;
use tonic::Code;

use crate::support::{
    Options, STARTUP, System, channel,
    invariants::{self, Initial},
    orders::{order_request, seed},
    prometheus, quiet, topic,
};

/// What an order of the workload ends as whatever the faults: the catalogue and balances make
/// each outcome independent of timing and interleaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Confirmed,
    /// More than the product's whole stock.
    NoStock,
    /// More than the customer's whole balance.
    NoMoney,
}

/// The workload cycles through these: (customer, sku, quantity, outcome). Stock and money cover
/// every order that should be confirmed plus every reservation a doomed order holds meanwhile.
const KINDS: [(&str, &str, u32, Outcome); 5] = [
    ("alice", "mug", 1, Outcome::Confirmed),
    ("bob", "laptop", 1, Outcome::NoMoney),
    ("alice", "laptop", 1, Outcome::Confirmed),
    ("alice", "laptop", 500, Outcome::NoStock),
    ("alice", "mug", 3, Outcome::Confirmed),
];
const PRODUCTS: [(&str, i64, u32); 2] = [("mug", 1_299, 1_000), ("laptop", 149_900, 100)];
const CUSTOMERS: [(&str, i64); 2] = [("alice", 100_000_000), ("bob", 2_000)];
/// The load never places more than this, so stock and money above always suffice.
const MAX_ORDERS: usize = 80;
/// Orders in flight at once.
const CONCURRENCY: usize = 3;

/// A seeded generator whose seed reaches the failure output: `ORDERLY_FAULT_SEED=<seed>` replays a run.
struct Seeded {
    seed: u64,
    rng: StdRng,
}

impl Seeded {
    fn new() -> Self {
        let seed = std::env::var("ORDERLY_FAULT_SEED")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(rand::random);
        eprintln!("fault seed {seed} (ORDERLY_FAULT_SEED={seed} replays this run)");
        Self {
            seed,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.rng.random_range(0..bound)
    }
}

impl Drop for Seeded {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("failed with ORDERLY_FAULT_SEED={}", self.seed);
        }
    }
}

/// A client placing orders, a few at a time, until told to stop. Each has an idempotency key
/// and is retried with it until the order service answers, as a real client does across a
/// crash, so a lost answer never becomes a second order (I9).
struct Load {
    placed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Order, Outcome)>>,
}

impl Load {
    fn start(system: &System, test: &'static str, limit: usize) -> Self {
        let (placed, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let addr = system.addr("order");
        let (counter, stopping) = (placed.clone(), stop.clone());
        let task = tokio::spawn(async move {
            futures::stream::iter(0..limit.min(MAX_ORDERS))
                .take_while(|_| std::future::ready(!stopping.load(Ordering::SeqCst)))
                .map(|i| {
                    let (customer, sku, quantity, outcome) = KINDS[i % KINDS.len()];
                    let key = format!("{test}-{i}");
                    let request = order_request(customer, sku, quantity, &key);
                    let counter = counter.clone();
                    async move {
                        let order = place_retrying(addr, request).await;
                        counter.fetch_add(1, Ordering::SeqCst);
                        (order, outcome)
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await
        });
        Self { placed, stop, task }
    }

    fn placed(&self) -> usize {
        self.placed.load(Ordering::SeqCst)
    }

    /// Polls until at least `count` orders were placed.
    async fn wait_placed(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + STARTUP;
        while self.placed() < count {
            assert!(
                tokio::time::Instant::now() < deadline && !self.task.is_finished(),
                "only {} of {count} orders placed",
                self.placed()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops placing and returns every placed order with the outcome it must reach.
    async fn finish(self) -> Vec<(Order, Outcome)> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the load never panics")
    }
}

/// PlaceOrder until the order service answers; only unavailability is retried.
async fn place_retrying(addr: SocketAddr, request: PlaceOrderRequest) -> Order {
    let mut client = OrderServiceClient::new(channel(addr));
    let deadline = tokio::time::Instant::now() + STARTUP;
    loop {
        match client.place_order(request.clone()).await {
            Ok(reply) => return reply.into_inner().order.expect("an order"),
            Err(status) => {
                // A crashed or restarting service (or one it calls) answers with these.
                assert!(
                    matches!(
                        status.code(),
                        Code::Unavailable
                            | Code::Unknown
                            | Code::Internal
                            | Code::Cancelled
                            | Code::DeadlineExceeded
                            | Code::ResourceExhausted
                    ),
                    "PlaceOrder {} refused: {status:?}",
                    request.idempotency_key
                );
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "PlaceOrder {} unanswered for {STARTUP:?}: {status:?}",
                    request.idempotency_key
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// I10: the orders are exactly the placed ones (one per key), each ended as the workload says.
fn assert_outcomes(orders: &[Order], placed: &[(Order, Outcome)]) {
    assert_eq!(
        orders.len(),
        placed.len(),
        "one order per idempotency key, no more"
    );
    for (order, outcome) in placed {
        let end = orders
            .iter()
            .find(|o| o.order_id == order.order_id)
            .unwrap_or_else(|| panic!("placed order {} is listed", order.order_id));
        let (status, reason) = match outcome {
            Outcome::Confirmed => (OrderStatus::Confirmed, ""),
            Outcome::NoStock => (OrderStatus::Rejected, "insufficient stock"),
            Outcome::NoMoney => (OrderStatus::Rejected, "insufficient funds"),
        };
        assert_eq!(end.status(), status, "{outcome:?} order {end:?}");
        assert!(end.reason.contains(reason), "{outcome:?} order {end:?}");
    }
}

/// Settles the system and checks I1-I7 and I10; returns the orders.
async fn settle_and_check(
    system: &System,
    initial: &Initial,
    placed: &[(Order, Outcome)],
) -> Vec<Order> {
    let orders = quiet::settle(system).await;
    invariants::check(system, initial, &orders).await;
    assert_outcomes(&orders, placed);
    orders
}

// Row 1: each service SIGKILLed at a random moment under load, then restarted.

/// Five more orders, one of each kind, placed once `restarted` is back: orders keep coming
/// after a restart. Placed here rather than awaited from the load, which may have placed its
/// last order while `restarted` was starting.
async fn place_after_restart(system: &System, restarted: &str) -> Vec<(Order, Outcome)> {
    let mut placed = Vec::new();
    for i in 0..5 {
        let (customer, sku, quantity, outcome) = KINDS[i % KINDS.len()];
        let request = order_request(customer, sku, quantity, &format!("{restarted}-after-{i}"));
        placed.push((place_retrying(system.addr("order"), request).await, outcome));
    }
    placed
}

/// Kills `component` after a seeded random number of placed orders plus a seeded random delay,
/// keeps it down while orders keep coming, restarts it, and places more.
async fn killed_at_a_random_moment_under_load(component: &'static str) {
    let mut seeded = Seeded::new();
    let mut system = System::start(Options::default()).await;
    let initial = seed(&system, &PRODUCTS, &CUSTOMERS).await;
    let load = Load::start(&system, component, MAX_ORDERS);

    load.wait_placed(3 + seeded.below(15) as usize).await;
    tokio::time::sleep(Duration::from_millis(seeded.below(100))).await;
    system.kill(component);
    let killed_at = load.placed();
    // Orders keep coming while it is down. PlaceOrder needs only the order service (prices and
    // accounts come from its own copies), so with it down the client retries until the
    // restart; with any other component down orders are still accepted.
    if component == "order" {
        tokio::time::sleep(Duration::from_millis(100 + seeded.below(300))).await;
    } else {
        load.wait_placed(killed_at + 2 + seeded.below(4) as usize)
            .await;
    }
    system.restart(component).await;
    let mut placed = load.finish().await;
    placed.extend(place_after_restart(&system, component).await);
    settle_and_check(&system, &initial, &placed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row_1_order_sigkilled_at_a_random_moment_under_load() {
    killed_at_a_random_moment_under_load("order").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row_1_inventory_sigkilled_at_a_random_moment_under_load() {
    killed_at_a_random_moment_under_load("inventory").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row_1_payment_sigkilled_at_a_random_moment_under_load() {
    killed_at_a_random_moment_under_load("payment").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row_1_notification_sigkilled_at_a_random_moment_under_load() {
    killed_at_a_random_moment_under_load("notification").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row_1_orchestrator_sigkilled_at_a_random_moment_under_load() {
    killed_at_a_random_moment_under_load("orchestrator").await;
}

// Row 2: precise crash points, armed through FAILPOINTS in one component.

/// Orders each crash-point run places (the crash comes at the first that reaches the point).
const CRASH_RUN_ORDERS: usize = 10;

/// A system whose `component` crashed at `point` while orders were being placed.
struct Crashed {
    system: System,
    initial: Initial,
    load: Load,
    component: &'static str,
}

impl Crashed {
    /// Starts the system, seeds it, restarts `component` with `point` armed once, places
    /// orders, and waits until the component aborted there. Fails if it never does: the
    /// `orderly` binary the tests spawn must carry the fail points (the `failpoints` feature, on
    /// for tests only). Armed after the seeding, so the crash comes with the orders' events,
    /// not the catalogue's or the accounts'.
    async fn at(component: &'static str, point: &str, test: &'static str) -> Self {
        let mut system = System::start(Options::default()).await;
        let initial = seed(&system, &PRODUCTS, &CUSTOMERS).await;
        quiet::settle(&system).await;
        system.stop(component);
        let stopped = system.wait_exit(component, STARTUP).await;
        assert!(stopped.is_some(), "{component} did not stop");
        system.restart_with_env(component, "FAILPOINTS", &format!("{point}=1*return"));
        system.serving(component).await;
        let load = Load::start(&system, test, CRASH_RUN_ORDERS);
        let status = system
            .wait_exit(component, STARTUP)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{component} never crashed at fail point {point}: \
                 was `orderly` built without the `failpoints` feature?"
                )
            });
        assert_eq!(
            status.signal(),
            Some(6),
            "{component} ended by the fail point's abort (SIGABRT), not {status}"
        );
        Self {
            system,
            initial,
            load,
            component,
        }
    }

    /// Restarts the component without the fail point, lets the load finish, settles, and
    /// checks I1-I7 and I10; returns the system and its orders for further checks.
    async fn heal(mut self) -> (System, Vec<Order>) {
        self.system
            .restart_without_env(self.component, "FAILPOINTS")
            .await;
        let placed = self.load.finish().await;
        let orders = settle_and_check(&self.system, &self.initial, &placed).await;
        (self.system, orders)
    }
}

/// How many records of `topic` carry each event id (and each order id, their key).
async fn records_by_event_and_order(
    kafka: &str,
    topic_name: &str,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let (mut events, mut orders) = (BTreeMap::new(), BTreeMap::new());
    for record in topic::read_all(kafka, topic_name).await {
        let event_id = topic::headers(&record)
            .into_iter()
            .find(|(name, _)| name == headers::EVENT_ID)
            .map(|(_, id)| id)
            .expect("every event carries its id in a header");
        *events.entry(event_id).or_default() += 1;
        let key = String::from_utf8_lossy(record.key().unwrap_or_default()).into_owned();
        *orders.entry(key).or_default() += 1;
    }
    (events, orders)
}

/// a. The order is committed with its OrderPlaced outbox row; the order service dies before its
/// relay publishes anything; the restarted relay publishes it and every saga completes.
#[tokio::test(flavor = "multi_thread")]
async fn row_2_after_the_db_commit_and_before_the_relay_publishes() {
    let test = "after_commit_before_publish";
    let crashed = Crashed::at("order", "relay.before_publish", test).await;
    let published = topic::read_all(&crashed.system.kafka, topics::ORDERS).await;
    assert!(published.is_empty(), "nothing left before the crash");
    let (system, orders) = crashed.heal().await;
    let (events, _) = records_by_event_and_order(&system.kafka, topics::ORDERS).await;
    assert_eq!(events.len(), orders.len(), "one OrderPlaced per order");
}

/// b. The broker acknowledged inventory's events but the rows were not yet deleted: the
/// restarted relay publishes them again, and the consumers' inboxes absorb the duplicates (I5:
/// one payment per order, each balance charged once, checked by the invariants).
#[tokio::test(flavor = "multi_thread")]
async fn row_2_after_the_broker_acked_and_before_the_row_is_marked_sent() {
    let test = "after_ack_before_mark_sent";
    let crashed = Crashed::at("inventory", "relay.after_ack", test).await;
    let acked = topic::read_all(&crashed.system.kafka, topics::INVENTORY).await;
    assert!(
        !acked.is_empty(),
        "the broker holds the acknowledged events"
    );
    let (system, _) = crashed.heal().await;
    let (events, _) = records_by_event_and_order(&system.kafka, topics::INVENTORY).await;
    assert!(
        events.values().any(|copies| *copies > 1),
        "the restart published an acknowledged event again: {events:?}"
    );
}

/// c. Payment committed an event's effect, then died before storing the offset: the restarted
/// consumer gets the event again and its inbox skips it (counted as a duplicate, charged once).
#[tokio::test(flavor = "multi_thread")]
async fn row_2_after_a_consumers_commit_and_before_its_offset_is_stored() {
    let test = "after_consumer_commit_before_offset";
    let crashed = Crashed::at("payment", "consumer.after_commit", test).await;
    let (system, _) = crashed.heal().await;
    let scrape = prometheus::scrape(system.metrics_addr("payment")).await;
    let duplicates = scrape.sum(
        "orderly_events_consumed_total",
        &[("consumer", "payment"), ("outcome", "duplicate")],
    );
    assert!(
        duplicates >= 1.0,
        "the redelivered event was skipped by the inbox:\n{}",
        scrape.text()
    );
}

/// d. The orchestrator committed a decision with its outbox row (its only outbox events are
/// SagaConfirmed and SagaRejected) and died before emitting it: the restart emits each decision
/// exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn row_2_orchestrator_between_saving_a_decision_and_emitting_it() {
    let test = "between_decision_and_emit";
    let crashed = Crashed::at("orchestrator", "relay.before_publish", test).await;
    let emitted = topic::read_all(&crashed.system.kafka, topics::SAGAS).await;
    assert!(emitted.is_empty(), "no decision left before the crash");
    let (system, orders) = crashed.heal().await;
    let (events, by_order) = records_by_event_and_order(&system.kafka, topics::SAGAS).await;
    assert_eq!(events.len(), orders.len(), "one decision per order");
    assert!(
        by_order.values().all(|count| *count == 1),
        "each order's decision emitted once: {by_order:?}"
    );
}

/// e. The orchestrator released a reservation through inventory's RPC and died before recording
/// the compensation: the restart compensates again (idempotent), so stock is released once.
#[tokio::test(flavor = "multi_thread")]
async fn row_2_during_compensation_after_the_rpc_and_before_the_result_is_recorded() {
    let test = "during_compensation";
    let crashed = Crashed::at("orchestrator", "compensator.after_rpc", test).await;
    let (_, orders) = crashed.heal().await;
    assert!(
        orders
            .iter()
            .any(|o| o.reason.contains("insufficient funds")),
        "a compensated order is among them"
    );
}

/// f. Notification, down while the orders were decided, comes back to a backlog and dies
/// half-way through its first batch: two outcomes applied in the batch's transaction, nothing
/// committed, no offset stored. A batch is all or nothing: its database holds no notification
/// and no inbox record of any of them, and after the restart each is applied once (I7). One
/// partition per topic, so the whole backlog arrives in the first fetch and is one batch.
#[tokio::test(flavor = "multi_thread")]
async fn row_2_in_the_middle_of_a_consumer_batch() {
    let one_partition = [
        "order",
        "inventory",
        "payment",
        "notification",
        "orchestrator",
    ]
    .map(|component| (component, "ORDERLY_KAFKA_PARTITIONS", "1".to_owned()));
    let options = Options {
        env: one_partition.to_vec(),
        ..Options::default()
    };
    let mut system = System::start(options).await;
    let initial = seed(&system, &PRODUCTS, &CUSTOMERS).await;
    system.kill("notification");
    let load = Load::start(&system, "mid_batch", CRASH_RUN_ORDERS);
    load.wait_placed(CRASH_RUN_ORDERS).await;
    wait_records(&system.kafka, topics::SAGAS, CRASH_RUN_ORDERS).await;
    system.restart_with_env("notification", "FAILPOINTS", "consumer.mid_batch=1*return");
    let status = system
        .wait_exit("notification", STARTUP)
        .await
        .expect("notification crashed in the middle of its first batch");
    assert_eq!(
        status.signal(),
        Some(6),
        "ended by the fail point, not {status}"
    );
    let db = orderly_common::db::connect(
        &orderly_common::db::sqlite_url(&system.dir.path().join("notification.db")),
        orderly_common::db::Pool::default(),
    )
    .await
    .unwrap();
    for table in ["inbox", "notifications"] {
        assert_eq!(
            rows(&db, table).await,
            0,
            "{table}: nothing of the batch committed"
        );
    }

    system
        .restart_without_env("notification", "FAILPOINTS")
        .await;
    let placed = load.finish().await;
    settle_and_check(&system, &initial, &placed).await;
    assert_eq!(
        rows(&db, "inbox").await,
        i64::try_from(CRASH_RUN_ORDERS).unwrap(),
        "every outcome of the batch applied once after the restart"
    );
}

/// How many rows `table` of a component's database holds (read beside the component, which
/// has no API while it is down).
async fn rows(db: &sea_orm::DatabaseConnection, table: &str) -> i64 {
    use sea_orm::ConnectionTrait;
    let statement = sea_orm::Statement::from_string(
        db.get_database_backend(),
        format!("select count(*) as n from {table}"),
    );
    let row = db.query_one_raw(statement).await.unwrap().unwrap();
    row.try_get("", "n").unwrap()
}

/// Polls until `topic` holds at least `count` records.
async fn wait_records(kafka: &str, topic_name: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + STARTUP;
    loop {
        let records = topic::read_all(kafka, topic_name).await.len();
        if records >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{topic_name} holds {records} of {count} records"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// Row 3: the broker SIGKILLed and restarted under load; its storage is durable.

/// Producers and consumers reconnect by themselves; the orders placed while the broker was
/// down wait in the outboxes and complete once it is back.
#[tokio::test(flavor = "multi_thread")]
async fn row_3_broker_sigkilled_and_restarted_under_load() {
    let mut seeded = Seeded::new();
    let mut system = System::start(Options::default()).await;
    let initial = seed(&system, &PRODUCTS, &CUSTOMERS).await;
    let load = Load::start(&system, "broker", MAX_ORDERS);

    load.wait_placed(3 + seeded.below(15) as usize).await;
    tokio::time::sleep(Duration::from_millis(seeded.below(100))).await;
    system.kill_broker();
    let killed_at = load.placed();
    load.wait_placed(killed_at + 3 + seeded.below(5) as usize)
        .await;
    let placed_while_down = load.placed() - killed_at;
    system.restart_broker().await;
    let mut placed = load.finish().await;
    placed.extend(place_after_restart(&system, "broker").await);
    assert!(
        placed_while_down >= 3,
        "orders were placed while it was down"
    );
    settle_and_check(&system, &initial, &placed).await;
}
