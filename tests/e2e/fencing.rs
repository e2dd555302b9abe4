//! Fencing (I11): a step of a confirmed saga cannot be undone, whoever asks. The compensation
//! RPCs refuse a confirmed order's payment and reservation, and nothing moves.

use orderly_proto::{
    inventory::v1::{ReleaseReservationRequest, inventory_service_client::InventoryServiceClient},
    order::v1::OrderStatus,
    payment::v1::{RefundPaymentRequest, payment_service_client::PaymentServiceClient},
};
use tonic::Code;

use crate::support::{
    Options, System, channel, invariants,
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
