//! Fencing (I11): a step of a saga is undone only while its saga rolls back, whoever asks. The
//! compensation RPCs refuse a confirmed order's payment and reservation, and those of an order
//! still in flight, and nothing moves.

use std::time::Duration;

use orderly_proto::{
    inventory::v1::{
        ListReservationsRequest, ReleaseReservationRequest, ReservationStatus,
        inventory_service_client::InventoryServiceClient,
    },
    order::v1::{Order, OrderStatus},
    payment::v1::{
        ListPaymentsRequest, PaymentStatus, RefundPaymentRequest,
        payment_service_client::PaymentServiceClient,
    },
    saga::v1::{GetSagaRequest, saga_service_client::SagaServiceClient},
};
use tonic::Code;

use crate::support::{
    Options, System, TestChannel, channel, invariants,
    orders::{order_request, place, seed},
    quiet,
};

#[tokio::test(flavor = "multi_thread")]
async fn a_confirmed_order_is_neither_refunded_nor_released() {
    let system = System::start(Options::default()).await;
    let initial = seed(&system, &[("laptop", 149_900, 3)], &[("alice", 500_000)]).await;
    let order = place(&system, order_request("alice", "laptop", 1, "")).await;
    let orders = quiet::settle(&system).await;
    assert_eq!(orders[0].status(), OrderStatus::Confirmed);

    let mut payment = PaymentServiceClient::new(channel(system.addr("payment")));
    let refund = RefundPaymentRequest {
        order_id: order.order_id.clone(),
        reason: "give it back".into(),
    };
    let refused = payment.refund_payment(refund).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("captured"), "{refused:?}");
    let mut inventory = InventoryServiceClient::new(channel(system.addr("inventory")));
    let release = ReleaseReservationRequest {
        order_id: order.order_id.clone(),
        reason: "put it back".into(),
    };
    let refused = inventory.release_reservation(release).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    // The laptop stays sold and paid for.
    invariants::check(&system, &initial, &orders).await;
}

/// The attack of issue 14: with the saga still running, release the stock and refund the money,
/// then let the saga go on. First with the orchestrator paused (nobody can say the saga rolls
/// back, so neither undo happens), then with payment paused after the reservation (the
/// orchestrator answers that the saga is RUNNING). Both orders then confirm with their stock
/// sold and their payment captured.
#[tokio::test(flavor = "multi_thread")]
async fn an_order_in_flight_is_neither_released_nor_refunded() {
    let system = System::start(Options::default()).await;
    let initial = seed(&system, &[("laptop", 149_900, 3)], &[("alice", 500_000)]).await;
    let mut inventory = InventoryServiceClient::new(channel(system.addr("inventory")));
    let mut payment = PaymentServiceClient::new(channel(system.addr("payment")));

    system.pause("orchestrator");
    let paid = place(&system, order_request("alice", "laptop", 1, "")).await;
    until_payment_is(&mut payment, &paid, PaymentStatus::Authorized).await;
    let refused = payment.refund_payment(refund(&paid)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("orchestrator"), "{refused:?}");
    let refused = inventory
        .release_reservation(release(&paid))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    // Nothing moved.
    until_payment_is(&mut payment, &paid, PaymentStatus::Authorized).await;
    until_reservation_is(&mut inventory, &paid, ReservationStatus::Reserved).await;
    system.resume("orchestrator");

    // Payment already knows alice, so PlaceOrder does not need it.
    system.pause("payment");
    let reserved = place(&system, order_request("alice", "laptop", 1, "")).await;
    until_reservation_is(&mut inventory, &reserved, ReservationStatus::Reserved).await;
    until_the_orchestrator_knows(&system, &reserved).await;
    let refused = inventory
        .release_reservation(release(&reserved))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("RUNNING"), "{refused:?}");
    until_reservation_is(&mut inventory, &reserved, ReservationStatus::Reserved).await;
    system.resume("payment");

    let orders = quiet::settle(&system).await;
    for order in &orders {
        assert_eq!(order.status(), OrderStatus::Confirmed, "{order:?}");
    }
    invariants::check(&system, &initial, &orders).await;
}

fn refund(order: &Order) -> RefundPaymentRequest {
    RefundPaymentRequest {
        order_id: order.order_id.clone(),
        reason: "give it back".into(),
    }
}

fn release(order: &Order) -> ReleaseReservationRequest {
    ReleaseReservationRequest {
        order_id: order.order_id.clone(),
        reason: "put it back".into(),
    }
}

async fn until_the_orchestrator_knows(system: &System, order: &Order) {
    let mut sagas = SagaServiceClient::new(channel(system.addr("orchestrator")));
    let deadline = tokio::time::Instant::now() + quiet::SETTLE;
    let request = GetSagaRequest {
        order_id: order.order_id.clone(),
    };
    while let Err(status) = sagas.get_saga(request.clone()).await {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "no saga for {}",
            order.order_id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn until_payment_is(
    payment: &mut PaymentServiceClient<TestChannel>,
    order: &Order,
    wanted: PaymentStatus,
) {
    let deadline = tokio::time::Instant::now() + quiet::SETTLE;
    loop {
        let request = ListPaymentsRequest {
            order_id: order.order_id.clone(),
            ..Default::default()
        };
        let reply = payment.list_payments(request).await.unwrap().into_inner();
        if reply.payments.first().map(|p| p.status()) == Some(wanted) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "payment of {} is not {wanted:?}: {:?}",
            order.order_id,
            reply.payments
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn until_reservation_is(
    inventory: &mut InventoryServiceClient<TestChannel>,
    order: &Order,
    wanted: ReservationStatus,
) {
    let deadline = tokio::time::Instant::now() + quiet::SETTLE;
    loop {
        let request = ListReservationsRequest {
            order_id: order.order_id.clone(),
            ..Default::default()
        };
        let reply = inventory
            .list_reservations(request)
            .await
            .unwrap()
            .into_inner();
        if reply.reservations.first().map(|r| r.status()) == Some(wanted) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reservation of {} is not {wanted:?}: {:?}",
            order.order_id,
            reply.reservations
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
