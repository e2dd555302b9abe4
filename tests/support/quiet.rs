//! Waiting for quiescence: every order decided and every consumer group caught up with its
//! topics (committed offsets at the high watermarks), polled with a bound, never slept on.

use std::time::Duration;

use orderly_common::kafka::{lag, topics};
use orderly_proto::order::v1::{
    ListOrdersRequest, Order, OrderStatus, order_service_client::OrderServiceClient,
};
use rdkafka::{ClientConfig, consumer::BaseConsumer};

use super::{System, channel};

/// Each consumer group and what it reads.
pub const GROUPS: [(&str, &[&str]); 5] = [
    ("inventory", &[topics::ORDERS, topics::SAGAS]),
    ("payment", &[topics::INVENTORY, topics::SAGAS]),
    (
        "order",
        &[topics::SAGAS, topics::CATALOGUE, topics::ACCOUNTS],
    ),
    ("notification", &[topics::SAGAS]),
    (
        "orchestrator",
        &[topics::ORDERS, topics::INVENTORY, topics::PAYMENTS],
    ),
];

pub const SETTLE: Duration = Duration::from_secs(90);

/// Every order, all pages.
pub async fn all_orders(system: &System) -> Vec<Order> {
    let mut client = OrderServiceClient::new(channel(system.addr("order")));
    let mut orders = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = Some(orderly_proto::common::v1::PageRequest {
            page_size: 500,
            page_token,
        });
        let reply = client
            .list_orders(ListOrdersRequest {
                page,
                ..Default::default()
            })
            .await
            .expect("list orders")
            .into_inner();
        orders.extend(reply.orders);
        if reply.next_page_token.is_empty() {
            return orders;
        }
        page_token = reply.next_page_token;
    }
}

/// Waits until no order is PENDING (consumers may still be behind); returns the orders.
pub async fn settle_orders(system: &System) -> Vec<Order> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let orders = all_orders(system).await;
        let pending = orders
            .iter()
            .filter(|order| order.status() == OrderStatus::Pending)
            .count();
        if pending == 0 {
            return orders;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending} orders still PENDING after {SETTLE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no order is PENDING and every consumer group has caught up; returns the orders.
pub async fn settle(system: &System) -> Vec<Order> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let orders = all_orders(system).await;
        let pending = orders
            .iter()
            .filter(|order| order.status() == OrderStatus::Pending)
            .count();
        if pending == 0 {
            let lags = group_lags(&system.kafka).await;
            if lags.iter().all(|(_, lag)| *lag == 0) {
                return orders;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "consumers still behind after {SETTLE:?} (messages by group): {lags:?}"
            );
        } else {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{pending} orders still PENDING after {SETTLE:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Messages not yet committed by each consumer group, over its topics.
pub async fn group_lags(kafka: &str) -> Vec<(&'static str, i64)> {
    let kafka = kafka.to_owned();
    tokio::task::spawn_blocking(move || {
        GROUPS
            .iter()
            .map(|(group, topics)| (*group, group_lag(&kafka, group, topics)))
            .collect()
    })
    .await
    .expect("lag check")
}

fn group_lag(kafka: &str, group: &str, topics: &[&str]) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", group)
        .create()
        .expect("lag consumer");
    lag::partition_lags(&consumer, topics, |_, _| true, Duration::from_secs(10))
        .expect("consumer lag from the broker")
        .iter()
        .map(|partition| partition.lag)
        .sum()
}
