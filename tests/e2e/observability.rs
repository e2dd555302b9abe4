//! Observability end to end: one trace per order across every component (exported over OTLP to
//! an in-test collector by `orderly dev`, so five service names come out of one process),
//! Prometheus metrics that move as orders flow, and health that reports stuck work and recovers.

use std::{collections::BTreeSet, time::Duration};

use orderly_common::kafka::topics;
use orderly_proto::order::v1::{OrderStatus, order_service_client::OrderServiceClient};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{
    dev::{Dev, wait_for_seed},
    support::{
        Options, SERVICES, System, channel, invariants,
        orders::{self, find, order_request, place, seed},
        otlp::{Collector, Received},
        prometheus::{Scrape, scrape},
        quiet, topic, wait_health,
    },
};

const PLACE_ORDER: &str = "orderly.order.v1.OrderService/PlaceOrder";
const GET_PRODUCTS: &str = "orderly.inventory.v1.InventoryService/BatchGetProducts";
const RELEASE: &str = "orderly.inventory.v1.InventoryService/ReleaseReservation";
const WAIT: Duration = Duration::from_secs(60);

/// The spans of every order's trace, as (service, span name).
const CHOREOGRAPHY: [(&str, &str); 12] = [
    ("orderly-order", PLACE_ORDER),
    ("orderly-order", GET_PRODUCTS),
    ("orderly-inventory", GET_PRODUCTS),
    ("orderly-inventory", "orderly.orders.v1 process"),
    ("orderly-payment", "orderly.inventory.v1 process"),
    ("orderly-orchestrator", "orderly.orders.v1 process"),
    ("orderly-orchestrator", "orderly.inventory.v1 process"),
    ("orderly-orchestrator", "orderly.payments.v1 process"),
    ("orderly-order", "orderly.sagas.v1 process"),
    ("orderly-notification", "orderly.sagas.v1 process"),
    ("orderly-inventory", "orderly.sagas.v1 process"),
    ("orderly-payment", "orderly.sagas.v1 process"),
];

#[tokio::test]
async fn one_order_is_one_trace_across_all_five_components_compensations_included() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = collector.endpoint();
    let mut dev = Dev::start_with_env(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
        None,
    )
    .await;
    wait_for_seed(&mut dev).await;
    let mut orders = OrderServiceClient::new(channel(dev.addr("order")));
    let confirmed = place_one(&mut orders, "mug").await;
    // alice's 1,000.00 cannot pay a 1,499.00 laptop: its reservation is released.
    let compensated = place_one(&mut orders, "laptop").await;
    assert_eq!(
        decided(&mut orders, &confirmed).await,
        OrderStatus::Confirmed
    );
    assert_eq!(
        decided(&mut orders, &compensated).await,
        OrderStatus::Rejected
    );

    let trace = wait_for_trace(&collector, &confirmed, &[]).await;
    check_choreography(&trace);

    let compensation = [
        ("orderly-orchestrator", "compensate reserve_inventory"),
        ("orderly-orchestrator", RELEASE),
        ("orderly-inventory", RELEASE),
    ];
    let trace = wait_for_trace(&collector, &compensated, &compensation).await;
    check_choreography(&trace);
    let compensate = one(
        &trace,
        "orderly-orchestrator",
        "compensate reserve_inventory",
    );
    let call = one(&trace, "orderly-orchestrator", RELEASE);
    assert_eq!(call.parent_span_id(), Some(compensate.span_id()));
    let release = one(&trace, "orderly-inventory", RELEASE);
    assert_eq!(release.parent_span_id(), Some(call.span_id()));
}

// Two threads: the collector must keep answering while the test blocks waiting for dev to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_buffered_at_shutdown_are_flushed_and_json_logs_carry_order_and_trace_ids() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dev.log");
    let endpoint = collector.endpoint();
    // The batch would wait ten minutes: only the shutdown flush can deliver these spans.
    let mut dev = Dev::start_with_env(
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
            ("ORDERLY_LOG_FORMAT", "json"),
        ],
        Some(&log),
    )
    .await;
    wait_for_seed(&mut dev).await;
    let mut orders = OrderServiceClient::new(channel(dev.addr("order")));
    let order_id = place_one(&mut orders, "mug").await;
    assert_eq!(
        decided(&mut orders, &order_id).await,
        OrderStatus::Confirmed
    );
    assert!(
        collector.spans().is_empty(),
        "nothing is exported before the batch is due"
    );
    drop(orders); // an open client connection would hold the drain for the whole grace period
    assert!(dev.process.terminate(), "dev exits cleanly on SIGTERM");

    let placed = collector
        .spans()
        .into_iter()
        .find(|span| {
            span.span.name == PLACE_ORDER
                && span.attribute("order_id").as_deref() == Some(&order_id)
        })
        .expect("the PlaceOrder span was flushed on shutdown");
    let logged = std::fs::read_to_string(&log).unwrap();
    let line = logged
        .lines()
        .find(|line| line.contains("\"order placed\""))
        .unwrap_or_else(|| panic!("no JSON 'order placed' line in:\n{logged}"));
    let fields = |key: &str| format!("\"{key}\":\"");
    assert!(line.starts_with('{'), "JSON: {line}");
    assert!(
        line.contains(&format!("{}{order_id}\"", fields("order_id"))),
        "{line}"
    );
    assert!(
        line.contains(&format!("{}{}\"", fields("trace_id"), placed.trace_id())),
        "{line}"
    );
    // A clean run, start to stop, reports no error: producers released at shutdown lose their
    // broker connection before their delivery thread notices, and say so only at debug level.
    let errors: Vec<&str> = logged
        .lines()
        .filter(|line| line.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(
        errors.is_empty(),
        "errors in a clean run:\n{}",
        errors.join("\n")
    );
}

async fn place_one(
    orders: &mut OrderServiceClient<crate::support::TestChannel>,
    sku: &str,
) -> String {
    orders
        .place_order(order_request("alice", sku, 1, ""))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap()
        .order_id
}

async fn decided(
    orders: &mut OrderServiceClient<crate::support::TestChannel>,
    order_id: &str,
) -> OrderStatus {
    orders::decided(orders, order_id, WAIT).await.status()
}

/// The spans of `order_id`'s trace once it is complete: every span of the choreography and each
/// of `wanted` (service, span name) is there, and every span's parent is in the trace. (Each
/// component's spans arrive in an export of their own, so a parent may come before its child.)
async fn wait_for_trace(
    collector: &Collector,
    order_id: &str,
    wanted: &[(&str, &str)],
) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let spans = collector.spans();
        let root = spans.iter().find(|span| {
            span.span.name == PLACE_ORDER && span.attribute("order_id").as_deref() == Some(order_id)
        });
        let trace: Vec<Received> = root.map_or_else(Vec::new, |root| {
            spans
                .iter()
                .filter(|span| span.trace_id() == root.trace_id())
                .cloned()
                .collect()
        });
        let has = |service: &str, name: &str| {
            trace
                .iter()
                .any(|span| span.service == service && span.span.name == name)
        };
        let complete = CHOREOGRAPHY
            .iter()
            .chain(wanted)
            .all(|(service, name)| has(service, name))
            && trace.iter().all(|span| {
                span.parent_span_id()
                    .is_none_or(|parent| trace.iter().any(|other| other.span_id() == parent))
            });
        if complete {
            return trace;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the trace of order {order_id} is incomplete after {WAIT:?}:\n{}",
            describe(&trace)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every component under its own name, one root (PlaceOrder), and each hop of the choreography a
/// child of the span that sent it.
fn check_choreography(trace: &[Received]) {
    let services: BTreeSet<&str> = trace.iter().map(|span| span.service.as_str()).collect();
    assert_eq!(
        services,
        BTreeSet::from([
            "orderly-inventory",
            "orderly-notification",
            "orderly-orchestrator",
            "orderly-order",
            "orderly-payment",
        ])
    );
    let roots: Vec<&Received> = trace
        .iter()
        .filter(|span| span.parent_span_id().is_none())
        .collect();
    assert_eq!(roots.len(), 1, "one root span:\n{}", describe(trace));
    let root = roots[0];
    assert_eq!(
        (root.service.as_str(), root.span.name.as_str()),
        ("orderly-order", PLACE_ORDER)
    );

    // PlaceOrder asks inventory for prices: client span in order, server span in inventory.
    let lookup = one(trace, "orderly-order", GET_PRODUCTS);
    assert_eq!(lookup.parent_span_id(), Some(root.span_id()));
    let served = one(trace, "orderly-inventory", GET_PRODUCTS);
    assert_eq!(served.parent_span_id(), Some(lookup.span_id()));

    // OrderPlaced -> inventory -> InventoryReserved -> payment -> Payment* -> orchestrator.
    let reserve = one(trace, "orderly-inventory", "orderly.orders.v1 process");
    assert_eq!(reserve.parent_span_id(), Some(root.span_id()));
    let pay = one(trace, "orderly-payment", "orderly.inventory.v1 process");
    assert_eq!(pay.parent_span_id(), Some(reserve.span_id()));
    let decide = one(trace, "orderly-orchestrator", "orderly.payments.v1 process");
    assert_eq!(decide.parent_span_id(), Some(pay.span_id()));
    let saw_placed = one(trace, "orderly-orchestrator", "orderly.orders.v1 process");
    assert_eq!(saw_placed.parent_span_id(), Some(root.span_id()));

    // The outcome reaches the order and the customer from the orchestrator's decision.
    for service in ["orderly-order", "orderly-notification"] {
        let outcome = one(trace, service, "orderly.sagas.v1 process");
        let parent = outcome.parent_span_id();
        assert!(
            trace.iter().any(
                |span| span.service == "orderly-orchestrator" && Some(span.span_id()) == parent
            ),
            "{service} got the outcome from the orchestrator:\n{}",
            describe(trace)
        );
    }
}

fn one<'a>(trace: &'a [Received], service: &str, name: &str) -> &'a Received {
    let found: Vec<&Received> = trace
        .iter()
        .filter(|span| span.service == service && span.span.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {name} span in {service}:\n{}",
        describe(trace)
    );
    found[0]
}

fn describe(trace: &[Received]) -> String {
    trace
        .iter()
        .map(|span| {
            format!(
                "  {} {} [{}] parent {:?}\n",
                span.service,
                span.span.name,
                span.span_id(),
                span.parent_span_id()
            )
        })
        .collect()
}

/// Every component reports stuck work after `stuck_after_ms` (its watchers sample at a quarter
/// of that).
fn fast_watchers(stuck_after_ms: u64) -> Options {
    Options {
        env: SERVICES
            .iter()
            .map(|component| {
                (
                    *component,
                    "ORDERLY_STUCK_AFTER_MS",
                    stuck_after_ms.to_string(),
                )
            })
            .collect(),
        ..Options::default()
    }
}

#[tokio::test]
async fn metrics_count_sagas_dead_letters_and_lag_as_orders_flow() {
    let system = System::start(fast_watchers(4_000)).await;
    let initial = seed(
        &system,
        &[("mug", 1_299, 10), ("laptop", 149_900, 5)],
        &[("alice", 100_000), ("bob", 2_000)],
    )
    .await;
    let requests = [
        ("alice", "mug", 1),
        ("alice", "mug", 2),
        ("bob", "mug", 1),
        ("bob", "laptop", 1),    // insufficient funds
        ("alice", "laptop", 10), // insufficient stock
        ("alice", "mug", 3),
    ];
    for (customer, sku, quantity) in requests {
        place(&system, order_request(customer, sku, quantity, "")).await;
    }
    let poison = vec![(
        b"poison".to_vec(),
        b"not an envelope".to_vec(),
        rdkafka::message::OwnedHeaders::new(),
    )];
    topic::produce(&system.kafka, topics::ORDERS, poison).await;
    let orders = quiet::settle(&system).await;
    invariants::check(&system, &initial, &orders).await;
    let confirmed = orders
        .iter()
        .filter(|order| order.status() == OrderStatus::Confirmed)
        .count() as f64;
    let placed = requests.len() as f64;

    let sagas = wait_for_metrics(&system, "orchestrator", |scrape| {
        scrape.sum("orderly_sagas_started_total", &[]) == placed
            && scrape.sum("orderly_sagas_ended_total", &[]) == placed
    })
    .await;
    assert_eq!(
        sagas.sum("orderly_sagas_ended_total", &[("outcome", "confirmed")]),
        confirmed
    );
    assert_eq!(
        sagas.sum("orderly_sagas_ended_total", &[("outcome", "rejected")]),
        placed - confirmed
    );
    assert_eq!(
        sagas.sum("orderly_saga_duration_seconds_count", &[]),
        placed
    );
    assert_eq!(sagas.sum("orderly_sagas_open", &[]), 0.0);
    assert_eq!(
        sagas.sum(
            "orderly_compensations_total",
            &[("step", "reserve_inventory")]
        ),
        1.0,
        "bob's laptop reservation was released"
    );

    // I8 as a count: every record of the orders topic was applied or dead-lettered, once.
    let records = topic::read_all(&system.kafka, topics::ORDERS).await.len() as f64;
    for consumer in ["inventory", "orchestrator"] {
        let scrape = scrape(system.metrics_addr(consumer)).await;
        let consumed = |outcome| {
            scrape.sum(
                "orderly_events_consumed_total",
                &[
                    ("consumer", consumer),
                    ("topic", topics::ORDERS),
                    ("outcome", outcome),
                ],
            )
        };
        assert_eq!(
            consumed("applied"),
            placed,
            "{consumer} applied every OrderPlaced"
        );
        assert_eq!(
            consumed("dead_lettered"),
            1.0,
            "{consumer} dead-lettered the poison"
        );
        assert_eq!(consumed("applied") + consumed("dead_lettered"), records);
        assert_eq!(
            scrape.sum(
                "orderly_dead_letters_total",
                &[("consumer", consumer), ("topic", topics::ORDERS)]
            ),
            1.0
        );
    }

    let order = scrape(system.metrics_addr("order")).await;
    assert_eq!(
        order.sum(
            "orderly_grpc_requests_total",
            &[("method", PLACE_ORDER), ("code", "OK")]
        ),
        placed
    );
    assert_eq!(
        order.sum(
            "orderly_grpc_request_duration_seconds_count",
            &[("method", PLACE_ORDER)]
        ),
        placed
    );
    assert_eq!(
        order.sum("orderly_outbox_published_total", &[("component", "order")]),
        placed
    );
    assert!(order.has("orderly_outbox_publish_latency_seconds_bucket"));

    // Lag returns to 0 in every consumer group, as measured by each component itself.
    for component in SERVICES {
        let scrape = wait_for_metrics(&system, component, |scrape| {
            scrape.has("orderly_consumer_lag") && scrape.sum("orderly_consumer_lag", &[]) == 0.0
        })
        .await;
        assert_eq!(scrape.sum("orderly_outbox_backlog", &[]), 0.0);
        assert_eq!(
            scrape.sum("orderly_health_serving", &[("component", component)]),
            1.0
        );
    }
    // What the relays published is deleted from their outboxes (together, a moment after the
    // broker acknowledged it), and was published once: the counts above.
    for component in ["order", "inventory", "payment", "orchestrator"] {
        wait_outbox_emptied(&system, component).await;
    }
}

/// Waits until `component`'s outbox table holds no row; panics after `WAIT`.
async fn wait_outbox_emptied(system: &System, component: &str) {
    use sea_orm::{ConnectionTrait, Statement};
    let file = system.dir.path().join(format!("{component}.db"));
    let url = orderly_common::db::sqlite_url(&file);
    let db = orderly_common::db::connect(&url, orderly_common::db::Pool::default())
        .await
        .unwrap();
    let count = Statement::from_string(
        db.get_database_backend(),
        "select count(*) as n from outbox",
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let row = db.query_one_raw(count.clone()).await.unwrap().unwrap();
        let rows: i64 = row.try_get("", "n").unwrap();
        if rows == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{component}'s outbox still holds {rows} rows"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Scrapes `component` until `ready` holds; panics with the last scrape's series after `WAIT`.
async fn wait_for_metrics(
    system: &System,
    component: &str,
    ready: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let scrape = scrape(system.metrics_addr(component)).await;
        if ready(&scrape) {
            return scrape;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{component}'s metrics never got there:\n{}",
            scrape.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn health_is_not_serving_while_events_cannot_be_published_and_recovers() {
    let mut system = System::start(fast_watchers(2_000)).await;
    let initial = seed(&system, &[("mug", 1_299, 10)], &[("alice", 100_000)]).await;
    system.kill_broker();
    // The order is stored with its OrderPlaced in the outbox; the relay cannot publish it.
    let order = place(&system, order_request("alice", "mug", 1, "")).await;
    wait_for_health(&system, "order", ServingStatus::NotServing).await;
    let metrics = scrape(system.metrics_addr("order")).await;
    assert_eq!(
        metrics.sum("orderly_health_serving", &[("component", "order")]),
        0.0
    );
    assert!(metrics.sum("orderly_outbox_backlog", &[("component", "order")]) >= 1.0);

    system.restart_broker().await;
    for component in SERVICES {
        wait_for_health(&system, component, ServingStatus::Serving).await;
    }
    let orders = quiet::settle(&system).await;
    assert_eq!(
        find(&orders, &order.order_id).status(),
        OrderStatus::Confirmed
    );
    invariants::check(&system, &initial, &orders).await;
}

async fn wait_for_health(system: &System, component: &str, wanted: ServingStatus) {
    wait_health(system.addr(component), wanted, WAIT).await;
}

/// The exporter speaks plain gRPC: a TLS endpoint is refused at start, naming the variable,
/// rather than dropping every span in silence.
#[test]
fn a_tls_otlp_endpoint_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(crate::support::process::BIN)
        .arg("migrate")
        .env("ORDERLY_DATA_DIR", dir.path())
        .env_remove("ORDERLY_DATABASE_URL")
        .env_remove("OTEL_SDK_DISABLED")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector.example:4317",
        )
        .output()
        .expect("orderly runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT=https://collector.example:4317"),
        "{stderr}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written before the refusal"
    );
}
