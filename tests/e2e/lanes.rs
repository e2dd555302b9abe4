//! On PostgreSQL a consumer applies its partitions in lanes, each batch in its own transaction:
//! an event waiting for a row lock holds up its own partition, not the others. Inventory waits
//! here for a product row a transaction of the test holds; orders for another product, placed
//! after, are decided meanwhile (those whose partition shares the waiting lane wait with it).

use std::{cell::RefCell, rc::Rc, time::Duration};

use futures::future::select_all;
use orderly_proto::order::v1::{OrderStatus, order_service_client::OrderServiceClient};
use sea_orm::{ConnectionTrait, Database, TransactionTrait};

use crate::{
    batch_locks::wait_for_a_lock_wait,
    support::{
        Options, System, channel, invariants,
        orders::{find, order_request, place, seed, watch_decided},
        postgres::Postgres,
        quiet,
    },
};

/// Orders placed beside the waiting one: with three partitions, the chance that all of them
/// share its partition is 3^-10.
const OTHERS: usize = 10;

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_waiting_for_a_row_lock_does_not_hold_up_the_others() {
    let postgres = Rc::new(Postgres::start());
    let inventory_url = Rc::new(RefCell::new(None));
    let urls = {
        let (server, inventory_url) = (postgres.clone(), inventory_url.clone());
        Box::new(move |component: &str| {
            let url = server.fresh_database();
            if component == "inventory" {
                *inventory_url.borrow_mut() = Some(url.clone());
            }
            Some(url)
        })
    };
    let system = System::start(Options {
        database_url: urls,
        ..Options::default()
    })
    .await;
    let initial = seed(
        &system,
        &[("held", 100, 100), ("free", 100, 100)],
        &[("alice", 1_000_000)],
    )
    .await;
    let url = inventory_url
        .borrow()
        .clone()
        .expect("inventory on PostgreSQL");
    let inventory = Database::connect(url).await.unwrap();
    let holder = inventory.begin().await.unwrap();
    holder
        .execute_unprepared("SELECT 1 FROM products WHERE sku = 'held' FOR UPDATE")
        .await
        .unwrap();
    let waiting = place(&system, order_request("alice", "held", 1, "held")).await;
    wait_for_a_lock_wait(&inventory).await;

    let mut others = Vec::new();
    for n in 0..OTHERS {
        let key = format!("free-{n}");
        others.push(place(&system, order_request("alice", "free", 1, &key)).await);
    }
    let orders = OrderServiceClient::new(channel(system.addr("order")));
    let watches = others.iter().map(|order| {
        let mut orders = orders.clone();
        let id = order.order_id.clone();
        Box::pin(async move { watch_decided(&mut orders, &id, Duration::from_secs(30)).await })
    });
    let (first_decided, ..) = select_all(watches).await;
    assert_eq!(
        first_decided.last().map(|order| order.status()),
        Some(OrderStatus::Confirmed)
    );
    let now = quiet::all_orders(&system).await;
    assert_eq!(
        find(&now, &waiting.order_id).status(),
        OrderStatus::Pending,
        "the order whose stock row is held was decided"
    );

    holder.rollback().await.unwrap();
    let orders = quiet::settle(&system).await;
    assert_eq!(
        find(&orders, &waiting.order_id).status(),
        OrderStatus::Confirmed
    );
    for order in &others {
        assert_eq!(
            find(&orders, &order.order_id).status(),
            OrderStatus::Confirmed
        );
    }
    invariants::check(&system, &initial, &orders).await;
}
