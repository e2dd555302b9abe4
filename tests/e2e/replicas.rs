//! Two replicas of the orchestrator on one PostgreSQL database: both consume, exactly one (the
//! holder of its lease) runs the deadline timer and the compensations, and when that one is
//! SIGKILLed the other takes the work over within seconds. Likewise one relay publishes the
//! outbox both write to. The saga is the three-step one of
//! `three_step` (shipping never answers a "slow" customer: a deadline that only the timer can
//! end).

use std::{rc::Rc, time::Duration};

use orderly_common::kafka::topics;
use orderly_proto::order::v1::OrderStatus;

use crate::{
    support::{
        Options, System, free_port, invariants, loopback,
        orders::{order_request, place, seed},
        postgres::Postgres,
        prometheus::scrape,
        quiet,
        shipping::Shipping,
    },
    three_step::three_step_env,
};

/// The lease of the orchestrator's timer and compensations.
const SAGAS: &str = "orchestrator.sagas";
/// The lease of a database's outbox: its holder's relay publishes.
const OUTBOX: &str = "outbox.relay";
const RELEASE: &str = "orderly.inventory.v1.InventoryService/ReleaseReservation";
const REFUND: &str = "orderly.payment.v1.PaymentService/RefundPayment";
const GRPC: &str = "orderly_grpc_requests_total";
const ATTEMPTS: &str = "orderly_compensation_attempts_total";
const EVENTS: &str = "orderly_events_consumed_total";
const PUBLISHED: &str = "orderly_outbox_published_total";
const DUPLICATES: &str = "orderly_inbox_duplicates_total";
const CONSUMED_PAYMENTS: (&str, &str) = ("topic", topics::PAYMENTS);
/// The lease's time to live (6 s) and a renewal period (a third of it), with slack.
const TAKEOVER: Duration = Duration::from_secs(20);

/// The replicas holding `lease` now.
async fn holders(system: &System, replicas: &[&str], lease: &str) -> Vec<String> {
    let mut holding = Vec::new();
    for replica in replicas {
        let metrics = scrape(system.metrics_addr(replica)).await;
        if metrics.sum("orderly_lease_held", &[("lease", lease)]) == 1.0 {
            holding.push((*replica).to_owned());
        }
    }
    holding
}

/// Waits (bounded by `within`) until exactly one of `replicas` holds `lease`; returns it.
async fn one_holder(system: &System, replicas: &[&str], lease: &str, within: Duration) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let holding = holders(system, replicas, lease).await;
        if let [holder] = holding.as_slice() {
            return holder.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{lease} held by {holding:?} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each replica's `orderly_sagas_ended_total`, once the holder's sampler counted `wanted`
/// (it samples every few seconds; bounded wait).
async fn sagas_ended(system: &System, replicas: &[&str], wanted: usize) -> Vec<(String, f64)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut ended = Vec::new();
        for replica in replicas {
            let count = metric(system, replica, "orderly_sagas_ended_total", &[]).await;
            ended.push(((*replica).to_owned(), count));
        }
        let counted: f64 = ended.iter().map(|(_, count)| count).sum();
        if counted >= wanted as f64 || tokio::time::Instant::now() > deadline {
            ended.sort_by(|a, b| b.1.total_cmp(&a.1));
            return ended;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The sum of `name`'s samples with `labels` that `component` exports.
async fn metric(system: &System, component: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape(system.metrics_addr(component))
        .await
        .sum(name, labels)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_orchestrators_share_the_sagas_and_one_does_the_background_work() {
    let files = tempfile::tempdir().unwrap();
    let shipping_addr = loopback(free_port());
    let postgres = Rc::new(Postgres::start());
    // The holder looks for work nobody told it of only every ten minutes: compensations the
    // other replica's consumer opens must reach it by LISTEN/NOTIFY.
    let mut env = three_step_env(files.path(), shipping_addr);
    env.push((
        "orchestrator",
        "ORDERLY_SAGA_RECHECK_MS",
        "600000".to_owned(),
    ));
    let mut system = System::start(Options {
        database_url: postgres.databases(),
        env,
        ..Options::default()
    })
    .await;
    let shipping = Shipping::start(&system.kafka, system.dir.path(), shipping_addr).await;
    let second = system.add_replica("orchestrator").await;
    // Inventory and payment ask either replica before they undo a step.
    system.point_callers_at_every("orchestrator").await;
    let replicas = ["orchestrator", second.as_str()];
    let initial = seed(
        &system,
        &[("mug", 1_299, 100)],
        &[
            ("alice", 1_000_000),
            ("bob", 100),
            ("slow-carol", 1_000_000),
        ],
    )
    .await;
    let holder = one_holder(&system, &replicas, SAGAS, TAKEOVER).await;
    let other = replicas.iter().copied().find(|r| *r != holder).unwrap();
    let publisher = one_holder(&system, &replicas, OUTBOX, TAKEOVER).await;

    // bob cannot pay: each of his orders reserves a mug, is declined and released, once. His
    // orders go on until the replica without the lease has consumed some of the declines
    // (partitions are shared out once it joined the group): the compensations its consumer
    // opens are run by the holder (woken by a notification), and by it alone.
    let mut declined = 0;
    while metric(&system, other, EVENTS, &[CONSUMED_PAYMENTS]).await == 0.0 {
        assert!(declined < 40, "{other} consumed none of {declined} orders");
        place(&system, order_request("bob", "mug", 1, "")).await;
        declined += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let confirmed = (0..4).map(|_| place(&system, order_request("alice", "mug", 1, "")));
    futures::future::join_all(confirmed).await;
    let orders = quiet::settle(&system).await;
    let rejected = orders
        .iter()
        .filter(|order| order.status() == OrderStatus::Rejected)
        .count();
    let reasons: Vec<_> = orders
        .iter()
        .map(|o| (o.status(), o.reason.clone()))
        .collect();
    assert_eq!(
        (orders.len(), rejected),
        (declined + 4, declined),
        "{reasons:#?}"
    );
    let released = metric(&system, "inventory", GRPC, &[("method", RELEASE)]).await;
    assert_eq!(released, declined as f64);
    for (replica, attempts) in [(holder.as_str(), declined), (other, 0)] {
        let made = metric(&system, replica, ATTEMPTS, &[]).await;
        assert_eq!(
            made, attempts as f64,
            "compensations attempted by {replica}"
        );
    }
    // Both replicas wrote outcomes; one relay published them all, each once.
    for replica in replicas {
        let published = metric(&system, replica, PUBLISHED, &[]).await;
        let expected = if replica == publisher {
            orders.len()
        } else {
            0
        };
        assert_eq!(
            published, expected as f64,
            "outcomes published by {replica}"
        );
    }
    for consumer in ["order", "inventory", "payment", "notification"] {
        let twice = metric(&system, consumer, DUPLICATES, &[]).await;
        assert_eq!(twice, 0.0, "{consumer} was handed an event twice");
    }
    // The saga counts come from the shared table: the holder alone exports them, so the sum
    // over replicas counts each saga once.
    let ended = sagas_ended(&system, &replicas, orders.len()).await;
    assert_eq!(
        ended,
        [
            (holder.clone(), orders.len() as f64),
            (other.to_owned(), 0.0)
        ]
    );

    // Orders waiting on shipping when the lease holder dies: the other replica takes the lease
    // over and rejects them at their deadline, refunding and releasing each once.
    let stuck = (0..3).map(|_| place(&system, order_request("slow-carol", "mug", 1, "")));
    let stuck: Vec<_> = futures::future::join_all(stuck).await;
    system.kill(&holder);
    let killed = tokio::time::Instant::now();
    let survivor = other;
    one_holder(&system, &[survivor], SAGAS, TAKEOVER).await;
    println!("lease taken over {:?} after the kill", killed.elapsed());

    let orders = quiet::settle(&system).await;
    for order in &stuck {
        let order = orders
            .iter()
            .find(|o| o.order_id == order.order_id)
            .unwrap();
        assert_eq!(order.status(), OrderStatus::Rejected, "{order:?}");
        assert!(order.reason.contains("deadline"), "{order:?}");
    }
    let refunded = metric(&system, "payment", GRPC, &[("method", REFUND)]).await;
    let released = metric(&system, "inventory", GRPC, &[("method", RELEASE)]).await;
    assert_eq!((refunded, released), (3.0, declined as f64 + 3.0));

    // The killed replica comes back (as its pod would) and takes nothing over twice.
    system.restart(&holder).await;
    let orders = quiet::settle(&system).await;
    assert_eq!(holders(&system, &replicas, SAGAS).await, [survivor]);
    invariants::check(&system, &initial, &orders).await;
    let released = metric(&system, "inventory", GRPC, &[("method", RELEASE)]).await;
    assert_eq!(released, declined as f64 + 3.0);
    shipping.stop().await;
}
