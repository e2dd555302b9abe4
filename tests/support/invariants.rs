//! DESIGN.md's invariants, checked through the public gRPC APIs only, after the system is quiet.

use std::collections::BTreeMap;

use orderly_proto::{
    inventory::v1::{
        GetProductRequest, ListReservationsRequest, ReservationStatus,
        inventory_service_client::InventoryServiceClient,
    },
    notification::v1::{
        ListNotificationsRequest, NotificationKind,
        notification_service_client::NotificationServiceClient,
    },
    order::v1::{Order, OrderStatus},
    payment::v1::{
        GetAccountRequest, ListPaymentsRequest, PaymentStatus,
        payment_service_client::PaymentServiceClient,
    },
    saga::v1::{GetSagaRequest, SagaState, saga_service_client::SagaServiceClient},
};

use super::{System, channel};

/// What the system held before the orders.
#[derive(Clone, Debug, Default)]
pub struct Initial {
    /// sku -> stock
    pub stock: BTreeMap<String, u32>,
    /// customer -> balance in minor units
    pub balances: BTreeMap<String, i64>,
}

/// Asserts I1-I3 and I5-I7 for `orders` (settled: none PENDING).
pub async fn check(system: &System, initial: &Initial, orders: &[Order]) {
    let mut inventory = InventoryServiceClient::new(channel(system.addr("inventory")));
    let mut payment = PaymentServiceClient::new(channel(system.addr("payment")));
    let mut notifications = NotificationServiceClient::new(channel(system.addr("notification")));
    let mut sagas = SagaServiceClient::new(channel(system.addr("orchestrator")));

    let confirmed: Vec<&Order> = orders
        .iter()
        .filter(|o| o.status() == OrderStatus::Confirmed)
        .collect();
    for order in orders {
        // I1 terminal, I6 monotone: the order and its saga agree on one final outcome.
        let saga = sagas
            .get_saga(GetSagaRequest {
                order_id: order.order_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .saga
            .unwrap();
        let expected = match order.status() {
            OrderStatus::Confirmed => SagaState::Confirmed,
            OrderStatus::Rejected => SagaState::Rejected,
            other => panic!("order {} is {other:?} after settling", order.order_id),
        };
        assert_eq!(saga.state(), expected, "saga of {}", order.order_id);
        if order.status() == OrderStatus::Rejected {
            assert!(
                !order.reason.is_empty(),
                "rejected order {} says why",
                order.order_id
            );
        }

        // I3 money: a confirmed order has one captured payment of its total; a rejected one
        // nets zero (declined, refunded, or never charged).
        let payments = payment
            .list_payments(ListPaymentsRequest {
                order_id: order.order_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .payments;
        assert!(payments.len() <= 1, "at most one payment per order");
        match (order.status(), payments.first()) {
            (OrderStatus::Confirmed, Some(paid)) => {
                assert_eq!(paid.status(), PaymentStatus::Captured, "{}", order.order_id);
                assert_eq!(paid.amount, order.total);
            }
            (OrderStatus::Confirmed, None) => {
                panic!("confirmed order {} has no payment", order.order_id)
            }
            (_, Some(paid)) => assert!(
                matches!(
                    paid.status(),
                    PaymentStatus::Declined | PaymentStatus::Refunded
                ),
                "rejected order {} left payment {:?}",
                order.order_id,
                paid.status()
            ),
            (_, None) => {}
        }

        // I7: exactly one notification, of the right kind.
        let sent = notifications
            .list_notifications(ListNotificationsRequest {
                order_id: order.order_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .notifications;
        let kind = if order.status() == OrderStatus::Confirmed {
            NotificationKind::OrderConfirmed
        } else {
            NotificationKind::OrderRejected
        };
        assert_eq!(sent.len(), 1, "one notification for {}", order.order_id);
        assert_eq!(sent[0].kind(), kind);
    }

    // I2 stock: initial = available + reserved + sold, nothing reserved when idle, and sold is
    // exactly what confirmed orders bought.
    for (sku, stock) in &initial.stock {
        let product = inventory
            .get_product(GetProductRequest { sku: sku.clone() })
            .await
            .unwrap()
            .into_inner()
            .product
            .unwrap();
        assert_eq!(
            product.available + product.reserved + product.sold,
            *stock,
            "{sku}: stock conserved"
        );
        assert_eq!(product.reserved, 0, "{sku}: nothing reserved when idle");
        let bought: u32 = confirmed
            .iter()
            .flat_map(|o| &o.items)
            .filter(|line| &line.sku == sku)
            .map(|line| line.quantity)
            .sum();
        assert_eq!(
            product.sold, bought,
            "{sku}: sold = bought by confirmed orders"
        );
    }
    let reserved = inventory
        .list_reservations(ListReservationsRequest {
            status: ReservationStatus::Reserved.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .reservations;
    assert!(reserved.is_empty(), "reservations still held: {reserved:?}");

    // I3/I5 money conserved: each balance is what it was less what confirmed orders cost,
    // charged once; nothing stays held.
    for (customer, balance) in &initial.balances {
        let account = payment
            .get_account(GetAccountRequest {
                customer_id: customer.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .account
            .unwrap();
        let spent: i64 = confirmed
            .iter()
            .filter(|o| &o.customer_id == customer)
            .map(|o| o.total.as_ref().map_or(0, |t| t.amount_minor))
            .sum();
        assert_eq!(
            account.balance.unwrap().amount_minor,
            balance - spent,
            "{customer}: balance"
        );
        assert_eq!(
            account.held.map_or(0, |h| h.amount_minor),
            0,
            "{customer}: nothing held when idle"
        );
    }
}
