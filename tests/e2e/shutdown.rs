//! Graceful shutdown of a service process: once drained it exits at once, well inside
//! `ORDERLY_SHUTDOWN_GRACE_SECS`, also while its callers keep their connections to it open.

use std::time::Duration;

use orderly_proto::order::v1::OrderStatus;

use orderly_proto::order::v1::order_service_client::OrderServiceClient;

use crate::support::{
    Options, System, channel, invariants,
    orders::{decided, order_request, place, seed},
    quiet,
};

const GRACE_SECS: u64 = 120;

#[tokio::test(flavor = "multi_thread")]
async fn a_drained_service_exits_at_once_while_its_callers_stay_connected() {
    let mut system = System::start(Options {
        env: vec![(
            "inventory",
            "ORDERLY_SHUTDOWN_GRACE_SECS",
            GRACE_SECS.to_string(),
        )],
        ..Options::default()
    })
    .await;
    let initial = seed(&system, &[("mug", 1_200, 5)], &[("ann", 10_000)]).await;
    // The order service asked inventory for the product: it keeps that connection open, idle.
    let order = place(&system, order_request("ann", "mug", 1, "")).await;
    let mut orders_api = OrderServiceClient::new(channel(system.addr("order")));
    decided(&mut orders_api, &order.order_id, Duration::from_secs(60)).await;

    let stopping = tokio::time::Instant::now();
    system.stop("inventory");
    let exited = system
        .wait_exit("inventory", Duration::from_secs(GRACE_SECS / 2))
        .await;
    assert!(
        exited.is_some_and(|status| status.success()),
        "inventory did not exit cleanly while idle: {exited:?} after {:?}",
        stopping.elapsed()
    );

    // Started again, the system goes on where it was.
    system.restart("inventory").await;
    place(&system, order_request("ann", "mug", 1, "")).await;
    let orders = quiet::settle(&system).await;
    assert_eq!(orders.len(), 2);
    assert!(
        orders.iter().all(|o| o.status() == OrderStatus::Confirmed),
        "{orders:?}"
    );
    invariants::check(&system, &initial, &orders).await;
}
