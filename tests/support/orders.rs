//! Setting up a system's catalogue and accounts and placing orders, through the public APIs.

use orderly_proto::{
    common::v1::Money,
    inventory::v1::{
        RestockRequest, UpsertProductRequest, inventory_service_client::InventoryServiceClient,
    },
    order::v1::{
        GetOrderRequest, Order, OrderItem, OrderStatus, PlaceOrderRequest, WatchOrderRequest,
        WatchOrderResponse, order_service_client::OrderServiceClient,
    },
    payment::v1::{
        DepositRequest, OpenAccountRequest, payment_service_client::PaymentServiceClient,
    },
};

use super::{System, channel, invariants::Initial};

pub fn usd(amount_minor: i64) -> Option<Money> {
    Some(Money {
        amount_minor,
        currency: "USD".into(),
    })
}

/// Creates products (sku, unit price, stock) and accounts (customer, balance).
pub async fn seed(
    system: &System,
    products: &[(&str, i64, u32)],
    customers: &[(&str, i64)],
) -> Initial {
    let mut inventory = InventoryServiceClient::new(channel(system.addr("inventory")));
    let mut payment = PaymentServiceClient::new(channel(system.addr("payment")));
    let mut initial = Initial::default();
    for (sku, price, stock) in products {
        let product = UpsertProductRequest {
            sku: (*sku).into(),
            name: (*sku).into(),
            unit_price: usd(*price),
        };
        inventory.upsert_product(product).await.unwrap();
        inventory
            .restock(RestockRequest {
                sku: (*sku).into(),
                quantity: *stock,
                idempotency_key: String::new(),
            })
            .await
            .unwrap();
        initial.stock.insert((*sku).into(), *stock);
    }
    for (customer, balance) in customers {
        payment
            .open_account(OpenAccountRequest {
                customer_id: (*customer).into(),
                currency: "USD".into(),
            })
            .await
            .unwrap();
        payment
            .deposit(DepositRequest {
                customer_id: (*customer).into(),
                amount: usd(*balance),
                idempotency_key: String::new(),
            })
            .await
            .unwrap();
        initial.balances.insert((*customer).into(), *balance);
    }
    initial
}

pub fn order_request(customer: &str, sku: &str, quantity: u32, key: &str) -> PlaceOrderRequest {
    PlaceOrderRequest {
        customer_id: customer.into(),
        items: vec![OrderItem {
            sku: sku.into(),
            quantity,
        }],
        idempotency_key: key.into(),
    }
}

pub async fn place(system: &System, request: PlaceOrderRequest) -> Order {
    let mut orders = OrderServiceClient::new(channel(system.addr("order")));
    let order = orders
        .place_order(request)
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(
        order.status(),
        OrderStatus::Pending,
        "PlaceOrder answers before the saga decides"
    );
    order
}

pub fn find<'a>(orders: &'a [Order], id: &str) -> &'a Order {
    orders
        .iter()
        .find(|order| order.order_id == id)
        .expect("order listed")
}

/// Polls `order_id` until the saga decided it; panics after `within`.
pub async fn decided(
    orders: &mut OrderServiceClient<crate::support::TestChannel>,
    order_id: &str,
    within: std::time::Duration,
) -> Order {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let order = orders
            .get_order(GetOrderRequest {
                order_id: order_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        if order.status() != OrderStatus::Pending {
            return order;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {order_id} still PENDING after {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Opens a WatchOrder stream on `order_id`; panics if the server refuses it.
pub async fn watch(
    orders: &mut OrderServiceClient<crate::support::TestChannel>,
    order_id: &str,
) -> tonic::Streaming<WatchOrderResponse> {
    orders
        .watch_order(WatchOrderRequest {
            order_id: order_id.into(),
        })
        .await
        .unwrap_or_else(|status| panic!("watch {order_id}: {status:?}"))
        .into_inner()
}

/// The stream's next order, or `None` once it ended cleanly; panics on an error or after
/// `within`.
pub async fn next_update(
    stream: &mut tonic::Streaming<WatchOrderResponse>,
    within: std::time::Duration,
) -> Option<Order> {
    let next = tokio::time::timeout(within, stream.message())
        .await
        .unwrap_or_else(|_| panic!("watch stream silent for {within:?}"));
    next.unwrap_or_else(|status| panic!("watch stream failed: {status:?}"))
        .map(|update| update.order.expect("every update carries the order"))
}

/// Everything the stream still sends until it ends, which must be within `within` and right
/// after a decided order.
pub async fn rest_of_watch(
    stream: &mut tonic::Streaming<WatchOrderResponse>,
    within: std::time::Duration,
) -> Vec<Order> {
    let deadline = tokio::time::Instant::now() + within;
    let mut updates = Vec::new();
    while let Some(order) = next_update(
        stream,
        deadline.saturating_duration_since(tokio::time::Instant::now()),
    )
    .await
    {
        updates.push(order);
    }
    let last = updates.last().map(Order::status);
    assert!(
        matches!(last, Some(OrderStatus::Confirmed | OrderStatus::Rejected)),
        "the stream ended after {last:?}, not after the decision"
    );
    updates
}

/// Watches `order_id` until its stream ends with the decision (no polling); returns every order
/// the stream sent, the decided one last. Panics after `within`.
pub async fn watch_decided(
    orders: &mut OrderServiceClient<crate::support::TestChannel>,
    order_id: &str,
    within: std::time::Duration,
) -> Vec<Order> {
    let mut stream = watch(orders, order_id).await;
    rest_of_watch(&mut stream, within).await
}

/// After a fault or odd messages: one more order for a mug fits, is confirmed once everything
/// settled, and the invariants hold. Returns every order.
pub async fn one_more_confirms(system: &System, initial: &Initial) -> Vec<Order> {
    let good = place(system, order_request("alice", "mug", 1, "")).await;
    let orders = super::quiet::settle(system).await;
    assert_eq!(
        find(&orders, &good.order_id).status(),
        OrderStatus::Confirmed
    );
    super::invariants::check(system, initial, &orders).await;
    orders
}
