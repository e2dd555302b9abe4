//! Two consumer batches applied at once on PostgreSQL (two replicas, or two partitions) that
//! touch the same rows in crossing orders queue for them instead of deadlocking: the first
//! batch takes x then y, the second y then x. Without a shared lock order, each holds what the
//! other waits for until PostgreSQL aborts one ("deadlock detected") and its batch is retried.

use orderly_common::{
    kafka::{
        envelope::{self, Event, Payload},
        topics,
    },
    messaging::Handler,
};
use orderly_proto::{
    common::v1::Money,
    events::v1::{InventoryReserved, OrderLine, OrderPlaced, inventory_event, order_event},
};
use std::sync::Arc;

use prost::Message;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, TransactionTrait};
use sea_orm_migration::MigratorTrait;
use uuid::Uuid;

use crate::support::postgres::Postgres;

#[tokio::test(flavor = "multi_thread")]
async fn inventory_batches_that_cross_on_products_queue_instead_of_deadlocking() {
    let postgres = Postgres::start();
    let db = Database::connect(postgres.fresh_database()).await.unwrap();
    orderly_inventory::Migrator::up(&db, None).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO products (sku, name, unit_price_minor, currency, available, reserved, sold, \
         created_at, updated_at) VALUES ('x', 'x', 100, 'EUR', 10, 0, 0, now(), now()), \
         ('y', 'y', 100, 'EUR', 10, 0, 0, now(), now())",
    )
    .await
    .unwrap();
    let placed = |sku: &str| {
        let payload = Payload::Order(order_event::Event::OrderPlaced(OrderPlaced {
            customer_id: "c".into(),
            lines: vec![OrderLine {
                sku: sku.into(),
                quantity: 1,
                unit_price: Some(eur(100)),
            }],
            total: Some(eur(100)),
        }));
        event(topics::ORDERS, payload)
    };
    cross(
        &db,
        orderly_inventory::events::Reactions,
        [placed("x"), placed("y")],
        [placed("y"), placed("x")],
    )
    .await;
    let reserved: Vec<(String, i64, i64)> = rows(
        &db,
        "SELECT sku, available, reserved FROM products ORDER BY sku",
    )
    .await;
    assert_eq!(reserved, [("x".into(), 8, 2), ("y".into(), 8, 2)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_batches_that_cross_on_accounts_queue_instead_of_deadlocking() {
    let postgres = Postgres::start();
    let db = Database::connect(postgres.fresh_database()).await.unwrap();
    orderly_payment::Migrator::up(&db, None).await.unwrap();
    db.execute_unprepared(
        "INSERT INTO accounts (customer_id, currency, balance_minor, held_minor, created_at, \
         updated_at) VALUES ('x', 'EUR', 1000, 0, now(), now()), \
         ('y', 'EUR', 1000, 0, now(), now())",
    )
    .await
    .unwrap();
    let reserved = |customer: &str| {
        let payload = Payload::Inventory(inventory_event::Event::InventoryReserved(
            InventoryReserved {
                customer_id: customer.into(),
                lines: Vec::new(),
                total: Some(eur(100)),
            },
        ));
        event(topics::INVENTORY, payload)
    };
    cross(
        &db,
        orderly_payment::events::Reactions,
        [reserved("x"), reserved("y")],
        [reserved("y"), reserved("x")],
    )
    .await;
    let held: Vec<(String, i64, i64)> = rows(
        &db,
        "SELECT customer_id, balance_minor, held_minor FROM accounts ORDER BY customer_id",
    )
    .await;
    assert_eq!(held, [("x".into(), 800, 200), ("y".into(), 800, 200)]);
}

/// Applies `first` and `second` as two batches in two transactions, as the consumer does, and
/// crossed: the first batch applies its first event, the second batch starts and runs until it
/// waits for a lock, then the first goes on. Both must commit.
async fn cross<H: Handler>(
    db: &DatabaseConnection,
    handler: H,
    first: [Event; 2],
    second: [Event; 2],
) {
    let handler = Arc::new(handler);
    let txn = db.begin().await.unwrap();
    handler
        .lock_in_order(&txn, &[&first[0], &first[1]])
        .await
        .unwrap();
    handler.handle(&txn, &first[0]).await.unwrap();

    let other = db.clone();
    let other_handler = handler.clone();
    let crossing = tokio::spawn(async move {
        let txn = other.begin().await?;
        other_handler
            .lock_in_order(&txn, &[&second[0], &second[1]])
            .await?;
        for event in &second {
            other_handler
                .handle(&txn, event)
                .await
                .map_err(|error| sea_orm::DbErr::Custom(error.to_string()))?;
        }
        txn.commit().await
    });
    // Wherever the second batch waits (for the locks taken above, or, were they not taken in
    // order, for x after it took y), it waits for this transaction.
    wait_for_a_lock_wait(db).await;
    handler.handle(&txn, &first[1]).await.unwrap();
    txn.commit().await.unwrap();
    crossing
        .await
        .unwrap()
        .expect("the crossing batch commits after waiting its turn");
}

pub(crate) async fn wait_for_a_lock_wait(db: &DatabaseConnection) {
    for _ in 0..1000 {
        let waiting: Vec<(i64,)> = rows(
            db,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        .await;
        if waiting[0].0 > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the second batch never waited for a lock");
}

fn eur(amount_minor: i64) -> Money {
    Money {
        amount_minor,
        currency: "EUR".into(),
    }
}

/// A new event as a consumer would decode it from `topic`.
fn event(topic: &str, payload: Payload) -> Event {
    let wrapped = envelope::wrap(Uuid::now_v7(), payload);
    envelope::open(topic, &wrapped.encode_to_vec()).unwrap()
}

pub(crate) async fn rows<T: sea_orm::TryGetableMany>(db: &DatabaseConnection, sql: &str) -> Vec<T> {
    let statement = sea_orm::Statement::from_string(db.get_database_backend(), sql);
    let rows = db.query_all_raw(statement).await.unwrap();
    rows.iter()
        .map(|row| T::try_get_many_by_index(row).unwrap())
        .collect()
}
