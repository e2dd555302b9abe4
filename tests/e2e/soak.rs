//! Row 11 of the failure-injection suite: a soak. Orders arrive at a steady rate for a bounded
//! time while a random fault hits every few seconds (SIGKILL and restart, SIGSTOP/SIGCONT, a
//! broker bounce); then everything heals, drains, and every invariant is checked across all
//! orders, with each order's outcome equal to what a fault-free run decides (I10). It runs
//! on one process of each component (SQLite) and on three replicas of each (PostgreSQL).
//!
//! `ORDERLY_SOAK_SECS` sets the length (short by default, for CI) and `ORDERLY_SOAK_SEED`
//! replays a run; the seed and the figures are printed (`--no-capture` shows them).

use std::{
    collections::BTreeMap,
    rc::Rc,
    time::{Duration, Instant},
};

use orderly_proto::order::v1::{OrderStatus, order_service_client::OrderServiceClient};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::sync::watch;

use crate::{
    scale_out,
    support::{
        Options, SERVICES, System, channel, invariants,
        orders::{find, order_request, seed},
        postgres::Postgres,
        quiet,
    },
};

const DEFAULT_SECS: u64 = 20;
/// One order every this often.
const PACE: Duration = Duration::from_millis(100);

fn setting(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}

/// What an order is, and so what a fault-free run decides for it: plenty of stock and money for
/// the regular orders, never enough money for the poor customer, never enough stock for the
/// greedy order. No order's outcome depends on timing.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Regular,
    Poor,
    Greedy,
}

impl Kind {
    fn of(n: usize) -> Self {
        match n % 10 {
            3 => Self::Poor,
            7 => Self::Greedy,
            _ => Self::Regular,
        }
    }

    fn request(self, key: &str) -> orderly_proto::order::v1::PlaceOrderRequest {
        match self {
            Self::Regular => order_request("alice", "mug", 1, key),
            Self::Poor => order_request("bob", "mug", 1, key),
            Self::Greedy => order_request("alice", "laptop", 10_000, key),
        }
    }

    fn outcome(self) -> OrderStatus {
        match self {
            Self::Regular => OrderStatus::Confirmed,
            Self::Poor | Self::Greedy => OrderStatus::Rejected,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn row_11_soak_with_a_random_fault_every_few_seconds() {
    let system = System::start(Options::default()).await;
    soak(system, &SERVICES.map(str::to_owned)).await;
}

/// The same soak over three replicas of every component on PostgreSQL: each fault hits one
/// replica (or the broker) while the others carry on, and a killed or frozen replica's
/// partitions, leases and calls move to the others.
#[tokio::test(flavor = "multi_thread")]
async fn row_11_soak_with_three_replicas_of_everything() {
    let postgres = Rc::new(Postgres::start());
    let mut system = System::start(Options {
        database_url: postgres.databases(),
        ..Options::default()
    })
    .await;
    scale_out::scale_out(&mut system).await;
    let replicas: Vec<String> = SERVICES
        .iter()
        .flat_map(|kind| scale_out::replicas(kind))
        .collect();
    soak(system, &replicas).await;
}

/// Places orders steadily while a random fault hits one of `targets` (or the broker) every few
/// seconds, then checks every outcome and invariant.
async fn soak(mut system: System, targets: &[String]) {
    let seed_value = setting("ORDERLY_SOAK_SEED").unwrap_or_else(rand::random);
    let length = Duration::from_secs(setting("ORDERLY_SOAK_SECS").unwrap_or(DEFAULT_SECS));
    println!("soak: seed {seed_value}, {length:?} (replay with ORDERLY_SOAK_SEED={seed_value})");
    let mut rng = StdRng::seed_from_u64(seed_value);
    let initial = seed(
        &system,
        &[("mug", 1_299, 1_000_000), ("laptop", 149_900, 5_000)],
        &[("alice", 1_000_000_000), ("bob", 100)],
    )
    .await;

    let started = Instant::now();
    let (stop, stopped) = watch::channel(false);
    let placer = tokio::spawn(place_steadily(system.addr("order"), stopped));
    let mut faults: BTreeMap<String, usize> = BTreeMap::new();
    while started.elapsed() < length {
        tokio::time::sleep(Duration::from_millis(rng.random_range(2_000..4_000))).await;
        let fault = inject(&mut system, targets, &mut rng).await;
        println!("soak: {:>5.1?} {fault}", started.elapsed());
        let kind = fault.split(' ').next().unwrap_or_default().to_owned();
        *faults.entry(kind).or_default() += 1;
    }
    let _ = stop.send(true);
    let placed = placer.await.expect("placer");

    let orders = quiet::settle(&system).await;
    assert_eq!(orders.len(), placed.len(), "one order per idempotency key");
    for (order_id, kind) in &placed {
        assert_eq!(
            find(&orders, order_id).status(),
            kind.outcome(),
            "{kind:?} order {order_id}"
        );
    }
    invariants::check(&system, &initial, &orders).await;
    println!(
        "soak: {} orders, faults {faults:?}, every invariant checked across all orders, {:.1?} in all",
        orders.len(),
        started.elapsed()
    );
}

/// Places one order every `PACE` until told to stop; each has its own idempotency key and is
/// retried with it until answered (the order service may be down or frozen), so every order is
/// placed exactly once. Returns (order id, kind) of every order.
async fn place_steadily(
    order: std::net::SocketAddr,
    stop: watch::Receiver<bool>,
) -> Vec<(String, Kind)> {
    let mut client = OrderServiceClient::new(channel(order));
    let mut placed = Vec::new();
    while !*stop.borrow() {
        let kind = Kind::of(placed.len());
        let key = format!("soak-{}", placed.len());
        let give_up = Instant::now() + quiet::SETTLE;
        let answered = loop {
            let request = client.place_order(kind.request(&key));
            let error = match tokio::time::timeout(Duration::from_secs(2), request).await {
                Ok(Ok(reply)) => break reply.into_inner().order.expect("order"),
                Ok(Err(status)) => format!("{status:?}"),
                Err(_) => "no answer within 2 s".to_owned(),
            };
            assert!(
                Instant::now() < give_up,
                "order {key} never placed: {error}"
            );
            tokio::time::sleep(PACE).await;
        };
        placed.push((answered.order_id, kind));
        tokio::time::sleep(PACE).await;
    }
    placed
}

/// One random fault on one of `targets` or the broker, healed before returning; what it was.
async fn inject(system: &mut System, targets: &[String], rng: &mut StdRng) -> String {
    let component = targets[rng.random_range(0..targets.len())].as_str();
    let held = Duration::from_millis(rng.random_range(500..2_500));
    match rng.random_range(0..3) {
        0 => {
            system.kill(component);
            tokio::time::sleep(held).await;
            system.restart(component).await;
            format!("sigkill {component}")
        }
        1 => {
            system.pause(component);
            tokio::time::sleep(held).await;
            system.resume(component);
            format!("sigstop {component}")
        }
        _ => {
            system.kill_broker();
            tokio::time::sleep(held).await;
            system.restart_broker().await;
            "broker bounce".to_owned()
        }
    }
}
