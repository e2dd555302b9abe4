//! Idempotency keys (issue 14): each customer's PlaceOrder keys are their own, Deposit and
//! Restock take keys (a retry credits or adds nothing more, even raced), a key reused for a
//! different request is refused naming it, and keys are forgotten after their lifetime.

use orderly_proto::{
    inventory::v1::{
        GetProductRequest, RestockRequest, inventory_service_client::InventoryServiceClient,
    },
    order::v1::{GetOrderRequest, order_service_client::OrderServiceClient},
    payment::v1::{
        DepositRequest, GetAccountRequest, payment_service_client::PaymentServiceClient,
    },
};
use tonic::Code;

use crate::support::{
    Options, System, TestChannel, channel, invariants,
    orders::{order_request, place, seed, usd},
    postgres::Postgres,
    quiet,
};

fn deposit(customer: &str, amount_minor: i64, key: &str) -> DepositRequest {
    DepositRequest {
        customer_id: customer.into(),
        amount: usd(amount_minor),
        idempotency_key: key.into(),
    }
}

fn restock(sku: &str, quantity: u32, key: &str) -> RestockRequest {
    RestockRequest {
        sku: sku.into(),
        quantity,
        idempotency_key: key.into(),
    }
}

async fn balance(payment: &mut PaymentServiceClient<TestChannel>, customer: &str) -> i64 {
    let request = GetAccountRequest {
        customer_id: customer.into(),
    };
    let account = payment.get_account(request).await.unwrap().into_inner();
    account.account.unwrap().balance.unwrap().amount_minor
}

async fn available(inventory: &mut InventoryServiceClient<TestChannel>, sku: &str) -> u32 {
    let request = GetProductRequest { sku: sku.into() };
    let product = inventory.get_product(request).await.unwrap().into_inner();
    product.product.unwrap().available
}

fn assert_key_refused(result: Result<impl std::fmt::Debug, tonic::Status>) {
    let status = result.expect_err("a key reused for another request is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("idempotency_key") && status.message().contains("different"),
        "the refusal names the key: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_each_customers_own_and_a_retried_deposit_or_restock_counts_once() {
    retried_requests_count_once(&System::start(Options::default()).await).await;
}

/// The same on PostgreSQL, where racing requests under one key wait on each other's row.
#[tokio::test(flavor = "multi_thread")]
async fn keys_on_postgres_count_once_too() {
    let postgres = std::rc::Rc::new(Postgres::start());
    let system = System::start(Options {
        database_url: postgres.databases(),
        ..Options::default()
    })
    .await;
    retried_requests_count_once(&system).await;
}

async fn retried_requests_count_once(system: &System) {
    let mut initial = seed(
        system,
        &[("mug", 1_299, 10)],
        // Carol and dave place no orders: their balances move by deposits alone.
        &[
            ("alice", 100_000),
            ("bob", 100_000),
            ("carol", 100_000),
            ("dave", 100_000),
        ],
    )
    .await;
    let mut orders = OrderServiceClient::new(channel(system.addr("order")));
    let mut payment = PaymentServiceClient::new(channel(system.addr("payment")));
    let mut inventory = InventoryServiceClient::new(channel(system.addr("inventory")));

    // Bob's "k-1" is not Alice's: he gets an order of his own, not hers (nor her order's id).
    let alices = place(system, order_request("alice", "mug", 1, "k-1")).await;
    let bobs = place(system, order_request("bob", "mug", 2, "k-1")).await;
    assert_ne!(bobs.order_id, alices.order_id);
    assert_eq!(bobs.customer_id, "bob");
    let bobs_retry = orders
        .place_order(order_request("bob", "mug", 2, "k-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        bobs_retry.order.unwrap().order_id,
        bobs.order_id,
        "a retry answers the same order"
    );
    assert_eq!(bobs.idempotency_key, "k-1", "the key reads back as sent");
    assert_key_refused(
        orders
            .place_order(order_request("alice", "mug", 3, "k-1"))
            .await,
    );

    // Deposit: the retry answers the first response and credits nothing more; another amount
    // under the key is refused; the same key for another account is another key.
    let first = payment
        .deposit(deposit("carol", 500, "d-1"))
        .await
        .unwrap()
        .into_inner();
    let retry = payment
        .deposit(deposit("carol", 500, "d-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry, first, "a retry is answered the saved response");
    assert_key_refused(payment.deposit(deposit("carol", 700, "d-1")).await);
    assert_eq!(balance(&mut payment, "carol").await, 100_500);
    payment.deposit(deposit("dave", 300, "d-1")).await.unwrap();
    assert_eq!(balance(&mut payment, "dave").await, 100_300);
    // Twenty clients racing one key: one credit.
    let raced = (0..20).map(|_| {
        let mut payment = payment.clone();
        async move { payment.deposit(deposit("dave", 1_000, "d-2")).await }
    });
    let answers = futures::future::join_all(raced).await;
    let accounts: Vec<_> = answers
        .into_iter()
        .map(|answer| answer.unwrap().into_inner())
        .collect();
    assert!(
        accounts.windows(2).all(|pair| pair[0] == pair[1]),
        "every racer is answered alike"
    );
    assert_eq!(balance(&mut payment, "dave").await, 101_300);

    // Restock, the same way.
    inventory.restock(restock("mug", 5, "r-1")).await.unwrap();
    inventory.restock(restock("mug", 5, "r-1")).await.unwrap();
    assert_key_refused(inventory.restock(restock("mug", 6, "r-1")).await);
    let too_long = inventory.restock(restock("mug", 1, &"k".repeat(129))).await;
    assert_eq!(too_long.unwrap_err().code(), Code::InvalidArgument);

    // Stock and money add up with one deposit and one restock each.
    *initial.balances.get_mut("carol").unwrap() += 500;
    *initial.balances.get_mut("dave").unwrap() += 1_300;
    *initial.stock.get_mut("mug").unwrap() += 5;
    let settled = quiet::settle(system).await;
    assert_eq!(settled.len(), 2, "two orders, however often retried");
    invariants::check(system, &initial, &settled).await;
    let confirmed_mugs = 3;
    assert_eq!(available(&mut inventory, "mug").await, 15 - confirmed_mugs);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_is_forgotten_after_its_lifetime() {
    let ttl = |component| (component, "ORDERLY_IDEMPOTENCY_TTL_SECS", "2".to_owned());
    let system = System::start(Options {
        env: vec![ttl("order"), ttl("payment")],
        ..Options::default()
    })
    .await;
    seed(
        &system,
        &[("mug", 1_299, 10)],
        &[("alice", 100_000), ("bob", 100_000)],
    )
    .await;
    let mut orders = OrderServiceClient::new(channel(system.addr("order")));
    let mut payment = PaymentServiceClient::new(channel(system.addr("payment")));

    let first = place(&system, order_request("alice", "mug", 1, "k-1")).await;
    payment.deposit(deposit("bob", 500, "d-1")).await.unwrap();
    // The lifetime is what is tested: wait it out.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let second = place(&system, order_request("alice", "mug", 1, "k-1")).await;
    assert_ne!(
        second.order_id, first.order_id,
        "past its lifetime the key places anew"
    );
    payment.deposit(deposit("bob", 500, "d-1")).await.unwrap();
    assert_eq!(
        balance(&mut payment, "bob").await,
        101_000,
        "and credits anew"
    );

    // The key moved to the new order: the old one no longer shows it.
    let read = GetOrderRequest {
        order_id: first.order_id.clone(),
    };
    let old = orders.get_order(read).await.unwrap().into_inner();
    assert_eq!(old.order.unwrap().idempotency_key, "");
    assert_eq!(second.idempotency_key, "k-1");
}
