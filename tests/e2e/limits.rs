//! Limits on what a request can do: a deposit may not leave the account without room to take
//! back the money held for its orders, so a refund can never overflow (past i64, SQLite would
//! turn the balance into a REAL and every read of the account would fail); a message past the
//! size limit is refused before it is decoded.

use orderly_proto::{
    inventory::v1::{
        GetProductRequest, UpsertProductRequest, inventory_service_client::InventoryServiceClient,
    },
    order::v1::OrderStatus,
    payment::v1::{
        Account, DepositRequest, GetAccountRequest, payment_service_client::PaymentServiceClient,
    },
};
use tonic::Code;

use crate::support::{
    Options, System, TestChannel, channel, invariants,
    orders::{order_request, place, seed, usd},
    quiet,
};

async fn account(payment: &mut PaymentServiceClient<TestChannel>) -> Account {
    let request = GetAccountRequest {
        customer_id: "alice".into(),
    };
    let reply = payment.get_account(request).await.unwrap();
    reply.into_inner().account.unwrap()
}

fn amount(money: Option<&orderly_proto::common::v1::Money>) -> i64 {
    money.map_or(0, |money| money.amount_minor)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deposit_must_leave_room_to_refund_the_money_held_for_orders() {
    let system = System::start(Options::default()).await;
    let rich = i64::MAX - 1_000_000;
    let mut initial = seed(&system, &[("mug", 1_299, 5)], &[("alice", rich)]).await;
    let mut payment = PaymentServiceClient::new(channel(system.addr("payment")));

    // The orchestrator is paused: the order's money stays held, its saga undecided.
    system.pause("orchestrator");
    let order = place(&system, order_request("alice", "mug", 1, "")).await;
    let deadline = tokio::time::Instant::now() + quiet::SETTLE;
    let held = loop {
        let now = account(&mut payment).await;
        if amount(now.held.as_ref()) > 0 {
            break now;
        }
        assert!(tokio::time::Instant::now() < deadline, "no money held");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let (balance, on_hold) = (amount(held.balance.as_ref()), amount(held.held.as_ref()));
    assert_eq!((balance, on_hold), (rich - 1_299, 1_299));

    // The balance alone could take this much more; with the held money it would not fit.
    let room = i64::MAX - balance - on_hold;
    let too_much = DepositRequest {
        customer_id: "alice".into(),
        amount: usd(room + 1),
        idempotency_key: String::new(),
    };
    let refused = payment.deposit(too_much).await.expect_err("no room for it");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("amount.amount_minor"),
        "{refused:?}"
    );
    assert_eq!(
        account(&mut payment).await.balance,
        held.balance,
        "nothing written"
    );
    let exactly = DepositRequest {
        customer_id: "alice".into(),
        amount: usd(room),
        idempotency_key: String::new(),
    };
    payment.deposit(exactly).await.unwrap();
    *initial.balances.get_mut("alice").unwrap() += room;

    system.resume("orchestrator");
    let orders = quiet::settle(&system).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].order_id, order.order_id);
    assert_eq!(orders[0].status(), OrderStatus::Confirmed);
    let after = account(&mut payment).await;
    assert_eq!(
        (amount(after.balance.as_ref()), amount(after.held.as_ref())),
        (i64::MAX - 1_299, 0)
    );
    invariants::check(&system, &initial, &orders).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_past_the_message_limit_is_refused_and_writes_nothing() {
    let system = System::start(Options {
        broker: false,
        ..Options::default()
    })
    .await;
    let mut inventory = InventoryServiceClient::new(channel(system.addr("inventory")));
    let huge = UpsertProductRequest {
        sku: "mug".into(),
        name: "m".repeat(2 * 1024 * 1024),
        unit_price: usd(1_299),
    };
    let refused = inventory.upsert_product(huge).await.unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(
        refused.message().contains("the limit is: 1048576"),
        "{refused:?}"
    );
    let read = GetProductRequest { sku: "mug".into() };
    let missing = inventory.get_product(read).await.unwrap_err();
    assert_eq!(
        missing.code(),
        Code::NotFound,
        "nothing written: {missing:?}"
    );
}
