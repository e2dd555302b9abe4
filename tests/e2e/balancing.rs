//! Calls between services are balanced per request over every replica of the callee, and a
//! replica that goes away is left out: the order service asks two inventory replicas on one
//! PostgreSQL database about skus its catalogue has not learnt, each replica gets its share of
//! the calls, and they are still answered, and orders decided, after one of them is SIGKILLed.

use std::rc::Rc;

use orderly_proto::order::v1::{OrderStatus, order_service_client::OrderServiceClient};
use tonic::Code;

use crate::support::{
    Options, System, channel, invariants,
    orders::{order_request, place, seed},
    postgres::Postgres,
    prometheus::scrape,
    quiet,
};

const BATCH_GET_PRODUCTS: &str = "orderly.inventory.v1.InventoryService/BatchGetProducts";

async fn price_calls(system: &System, replica: &str) -> f64 {
    scrape(system.metrics_addr(replica)).await.sum(
        "orderly_grpc_requests_total",
        &[("method", BATCH_GET_PRODUCTS)],
    )
}

/// Orders a sku nobody sells: the order service has not learnt it, so it asks inventory (one
/// BatchGetProducts), which answers that it does not exist.
async fn order_unknown_sku(system: &System, n: usize) {
    let mut orders = OrderServiceClient::new(channel(system.addr("order")));
    let refused = orders
        .place_order(order_request("alice", &format!("unsold-{n}"), 1, ""))
        .await
        .expect_err("nobody sells it");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_are_balanced_over_replicas_and_a_dead_one_is_left_out() {
    let postgres = Rc::new(Postgres::start());
    let mut system = System::start(Options {
        database_url: postgres.databases(),
        ..Options::default()
    })
    .await;
    let initial = seed(&system, &[("mug", 1_299, 1_000)], &[("alice", 10_000_000)]).await;
    let second = system.add_replica("inventory").await;
    let both = format!(
        "http://{},http://{}",
        system.addr("inventory"),
        system.addr(&second)
    );
    system.kill("order");
    system.set_env("order", "ORDERLY_INVENTORY_ENDPOINT", &both);
    system.restart("order").await;

    let before = [
        price_calls(&system, "inventory").await,
        price_calls(&system, &second).await,
    ];
    for n in 0..40 {
        order_unknown_sku(&system, n).await;
    }
    let first_share = price_calls(&system, "inventory").await - before[0];
    let second_share = price_calls(&system, &second).await - before[1];
    assert_eq!(first_share + second_share, 40.0);
    // Random picks between two: fewer than 8 of 40 is about a one in 10^5 chance.
    assert!(
        first_share >= 8.0 && second_share >= 8.0,
        "inventory got {first_share} of the 40 price calls, {second} {second_share}"
    );

    // One replica dies: its calls fail, are retried on the other, and its breaker keeps it out.
    system.kill(&second);
    for n in 40..60 {
        order_unknown_sku(&system, n).await;
        place(&system, order_request("alice", "mug", 1, "")).await;
    }
    let orders = quiet::settle(&system).await;
    assert_eq!(orders.len(), 20);
    assert!(
        orders
            .iter()
            .all(|order| order.status == OrderStatus::Confirmed as i32),
        "every order confirmed: {orders:?}"
    );
    invariants::check(&system, &initial, &orders).await;
    drop(postgres);
}
