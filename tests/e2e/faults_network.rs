//! Failure injection, row 4: network faults (blackhole, delay, reset, dropped replies) on the
//! links between the services and the broker and between the orchestrator and a participant,
//! through a loopback fault proxy. Row 8 (compensations failing, parked sagas and the operator)
//! lives in `parked`. Every scenario ends with the invariants of DESIGN.md.

mod parked;

use std::{future::Future, time::Duration};

use orderly_proto::{
    inventory::v1::{
        ListReservationsRequest, ReservationStatus,
        inventory_service_client::InventoryServiceClient,
    },
    order::v1::{Order, OrderStatus},
    saga::v1::{
        GetSagaRequest, Saga, SagaState, SagaStep, StepStatus,
        saga_service_client::SagaServiceClient,
    },
};

use crate::support::{
    Options, System, channel, free_port, invariants, loopback,
    orders::{find, order_request, place, seed},
    proxy::{Fault, Proxy},
    quiet,
};

/// How long a test waits for something the system does on its own after a fault.
const WAIT: Duration = Duration::from_secs(60);

/// The laptop costs more than bob has: each of his orders reserves stock, is declined for
/// funds, and needs the reservation released (the compensation crosses the inventory link).
const LAPTOP: (&str, i64, u32) = ("laptop", 100_000, 10);
const BOB: (&str, i64) = ("bob", 1_000);

/// Polls `probe` until it answers Some; panics with `what` after `WAIT`.
async fn poll_until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn saga(system: &System, order_id: &str) -> Saga {
    saga_if_started(system, order_id)
        .await
        .unwrap_or_else(|| panic!("no saga for order {order_id}"))
}

fn sagas(system: &System) -> SagaServiceClient<crate::support::TestChannel> {
    SagaServiceClient::new(channel(system.addr("orchestrator")))
}

/// The saga, once the orchestrator has seen the order's first event.
async fn saga_if_started(system: &System, order_id: &str) -> Option<Saga> {
    let request = GetSagaRequest {
        order_id: order_id.to_owned(),
    };
    match sagas(system).get_saga(request).await {
        Ok(reply) => reply.into_inner().saga,
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => panic!("GetSaga {order_id}: {status:?}"),
    }
}

/// Waits until the order's saga exists and satisfies `wanted`; returns it.
async fn saga_when(
    system: &System,
    order_id: &str,
    what: &str,
    wanted: impl Fn(&Saga) -> bool,
) -> Saga {
    let wanted = &wanted;
    poll_until(what, || async move {
        let saga = saga_if_started(system, order_id).await?;
        wanted(&saga).then_some(saga)
    })
    .await
}

fn step<'a>(saga: &'a Saga, name: &str) -> &'a SagaStep {
    saga.steps
        .iter()
        .find(|step| step.name == name)
        .unwrap_or_else(|| panic!("saga {} has no {name} step", saga.order_id))
}

fn release_attempts(saga: &Saga) -> u32 {
    step(saga, "reserve_inventory").attempts
}

/// How many history entries of `event_type` the saga has.
fn entries(saga: &Saga, event_type: &str) -> usize {
    saga.history
        .iter()
        .filter(|entry| entry.event_type == event_type)
        .count()
}

/// The release is still owed: its step waits in STEP_COMPENSATING. The saga is COMPENSATING, or
/// already REJECTED when the payment's decline reached the orchestrator before the reservation
/// did (events of different topics arrive in either order; the reservation is then a late
/// success being given back).
fn assert_release_pending(saga: &Saga, context: &str) {
    assert_eq!(
        step(saga, "reserve_inventory").status(),
        StepStatus::StepCompensating,
        "{context}: {saga:?}"
    );
    assert!(
        matches!(saga.state(), SagaState::Compensating | SagaState::Rejected),
        "{context}: {saga:?}"
    );
}

/// A system whose orchestrator reaches inventory's gRPC port through a fault proxy, with a
/// short dependency timeout (so a blackholed call fails in a second) and `max_attempts` failed
/// attempts of one compensation before its saga parks.
async fn inventory_behind_a_proxy(max_attempts: u32) -> (System, Proxy) {
    // The proxy needs its address before the system starts; its target is known only after.
    let link = Proxy::start(loopback(free_port())).await;
    let env = vec![
        (
            "orchestrator",
            "ORDERLY_INVENTORY_ENDPOINT",
            format!("http://{}", link.addr()),
        ),
        (
            "orchestrator",
            "ORDERLY_COMPENSATION_MAX_ATTEMPTS",
            max_attempts.to_string(),
        ),
        (
            "orchestrator",
            "ORDERLY_DEPENDENCY_TIMEOUT_MS",
            "1000".to_owned(),
        ),
    ];
    let system = System::start(Options {
        env,
        ..Options::default()
    })
    .await;
    link.retarget(system.addr("inventory"));
    (system, link)
}

/// Holds `fault` on `link` for `how_long`: the fault itself, not a wait for anything.
async fn hold(link: &Proxy, fault: Fault, how_long: Duration) {
    link.set(fault);
    tokio::time::sleep(how_long).await;
}

/// Every order's fate is decided by stock and balances alone (never by timing): alice's mugs
/// are confirmed, bob's laptops are declined for funds (and released), and anyone's five
/// `rare` (two in stock) are refused for stock. Orders keep coming while the link to the
/// broker is blackholed, then slow, then reset; once it heals every order ends as predicted.
#[tokio::test(flavor = "multi_thread")]
async fn row_4_network_faults_between_the_services_and_the_broker() {
    let system = System::start(Options {
        broker_proxy: true,
        // Far beyond the faults: a deadline rejection would make outcomes depend on timing.
        saga_deadline_ms: 120_000,
        ..Options::default()
    })
    .await;
    let initial = seed(
        &system,
        &[
            ("mug", 1_000, 100),
            ("laptop", 100_000, 100),
            ("rare", 500, 2),
        ],
        &[("alice", 10_000_000), BOB],
    )
    .await;
    let workload = [
        ("alice", "mug", 1, OrderStatus::Confirmed),
        ("bob", "laptop", 1, OrderStatus::Rejected),
        ("alice", "rare", 5, OrderStatus::Rejected),
    ];
    let link = system.broker_proxy();
    let load = async {
        let mut placed = Vec::new();
        let mut pace = tokio::time::interval(Duration::from_millis(100));
        for (customer, sku, quantity, expected) in workload.iter().cycle().take(66) {
            pace.tick().await;
            let order = place(&system, order_request(customer, sku, *quantity, "")).await;
            placed.push((order, *expected));
        }
        placed
    };
    let faults = async {
        hold(link, Fault::Blackhole, Duration::from_secs(3)).await;
        // The fault bites: orders placed while the broker is unreachable cannot be decided.
        let stuck = quiet::all_orders(&system).await;
        assert!(
            stuck
                .iter()
                .any(|order| order.status() == OrderStatus::Pending),
            "nothing waited for the blackholed broker"
        );
        hold(
            link,
            Fault::Delay(Duration::from_millis(100)),
            Duration::from_secs(2),
        )
        .await;
        hold(link, Fault::Reset, Duration::from_secs(1)).await;
        link.heal();
    };
    let (placed, ()) = tokio::join!(load, faults);

    let orders = quiet::settle(&system).await;
    assert_eq!(orders.len(), placed.len(), "every order was stored once");
    // I10: each order ends as the fault-free rules predict.
    for (order, expected) in &placed {
        let decided = find(&orders, &order.order_id);
        assert_eq!(decided.status(), *expected, "{decided:?}");
    }
    invariants::check(&system, &initial, &orders).await;
}

/// Bob's orders need their reservations released through a link that is slow, blackholed,
/// resetting, then dropping replies. Each failing release is retried (attempts counted in the
/// saga) and completes after heal; a release whose answer was lost went through anyway and is
/// not repeated: stock and balances come out exact.
#[tokio::test(flavor = "multi_thread")]
async fn row_4_network_faults_between_the_orchestrator_and_inventory() {
    let (system, link) = inventory_behind_a_proxy(1_000).await;
    let initial = seed(&system, &[LAPTOP], &[BOB]).await;
    let inventory = InventoryServiceClient::new(channel(system.addr("inventory")));
    let mut declined: Vec<Order> = Vec::new();
    for fault in [
        Fault::Delay(Duration::from_millis(150)),
        Fault::Blackhole,
        Fault::Reset,
        Fault::DropReplies,
    ] {
        link.set(fault);
        let order = place(&system, order_request("bob", "laptop", 1, "")).await;
        if fault != Fault::Delay(Duration::from_millis(150)) {
            // Slowed calls still fit the timeout; these fail, and are tried again.
            let failing = saga_when(&system, &order.order_id, "release tried twice", |saga| {
                release_attempts(saga) >= 2
            })
            .await;
            assert_release_pending(&failing, &format!("{fault:?}"));
        }
        if fault == Fault::DropReplies {
            // The release reached inventory; only its answer was lost.
            let (inventory, order_id) = (&inventory, order.order_id.as_str());
            poll_until("release applied despite the lost answer", || async move {
                let request = ListReservationsRequest {
                    order_id: order_id.to_owned(),
                    ..Default::default()
                };
                let listed = inventory.clone().list_reservations(request).await.unwrap();
                let reservations = listed.into_inner().reservations;
                reservations
                    .iter()
                    .any(|r| r.status() == ReservationStatus::Released)
                    .then_some(())
            })
            .await;
            let still = saga(&system, &order.order_id).await;
            assert_release_pending(&still, "the orchestrator never heard");
        }
        link.heal();
        let orders = quiet::settle_orders(&system).await;
        assert_eq!(
            find(&orders, &order.order_id).status(),
            OrderStatus::Rejected
        );
        declined.push(order);
    }

    let orders = quiet::settle(&system).await;
    for order in &declined {
        let decided = find(&orders, &order.order_id);
        assert!(
            decided.reason.contains("insufficient funds"),
            "{}",
            decided.reason
        );
        let saga = saga(&system, &order.order_id).await;
        assert_eq!(saga.state(), SagaState::Rejected);
        assert_eq!(
            entries(&saga, "Compensated"),
            1,
            "compensated once: {saga:?}"
        );
    }
    // Exact stock and balances: a repeated release would show as extra available laptops.
    invariants::check(&system, &initial, &orders).await;
}
