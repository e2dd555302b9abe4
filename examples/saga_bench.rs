//! Measures the whole saga against a running `orderly dev` (start it first, ideally with
//! `cargo run --release`): PlaceOrder-to-CONFIRMED latency over sequential orders, then the
//! rate of orders carried to a decision with many concurrent clients.
//!
//!     cargo run --release --example saga_bench [-- SEQUENTIAL CONCURRENT_CLIENTS TOTAL_ORDERS]

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use orderly_proto::{
    common::v1::{Money, PageRequest},
    inventory::v1::{
        RestockRequest, UpsertProductRequest, inventory_service_client::InventoryServiceClient,
    },
    order::v1::{
        GetOrderRequest, ListOrdersRequest, OrderItem, OrderStatus, PlaceOrderRequest,
        order_service_client::OrderServiceClient,
    },
    payment::v1::{
        DepositRequest, OpenAccountRequest, payment_service_client::PaymentServiceClient,
    },
};
use tonic::transport::Channel;

const SKU: &str = "bench-widget";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|arg| arg.parse::<usize>());
    let sequential = args.next().transpose()?.unwrap_or(200);
    let clients = args.next().transpose()?.unwrap_or(32);
    let total = args.next().transpose()?.unwrap_or(2_000);

    let connect = |port: u16| {
        Channel::from_shared(format!("http://127.0.0.1:{port}")).map(|e| e.connect_lazy())
    };
    let orders = OrderServiceClient::new(connect(50051)?);
    let customer = format!("bench-{}", std::process::id());
    prepare(
        connect(50052)?,
        connect(50053)?,
        &customer,
        sequential + total,
    )
    .await?;

    let mut latencies = Vec::with_capacity(sequential);
    for _ in 0..sequential {
        let started = Instant::now();
        let id = place(orders.clone(), &customer).await?;
        wait_decided(orders.clone(), &id).await?;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let at = |percent: usize| latencies[(latencies.len() * percent / 100).min(latencies.len() - 1)];
    if sequential > 0 {
        println!(
            "{sequential} sequential orders, PlaceOrder to CONFIRMED: p50 {:.1?}  p99 {:.1?}  max {:.1?}",
            at(50),
            at(99),
            at(100)
        );
    }

    let started = Instant::now();
    let per_client = total / clients;
    let workers = (0..clients).map(|_| {
        let (orders, customer) = (orders.clone(), customer.clone());
        tokio::spawn(async move {
            for _ in 0..per_client {
                place(orders.clone(), &customer).await?;
            }
            anyhow::Ok(())
        })
    });
    for worker in futures::future::join_all(workers).await {
        worker??;
    }
    let placed_in = started.elapsed();
    wait_none_pending(orders.clone(), &customer).await?;
    let decided_in = started.elapsed();
    let placed = per_client * clients;
    println!(
        "{clients} concurrent clients, {placed} orders: placed in {placed_in:.1?} ({:.0}/s), all decided in {decided_in:.1?} ({:.0} orders/s end to end)",
        placed as f64 / placed_in.as_secs_f64(),
        placed as f64 / decided_in.as_secs_f64()
    );
    Ok(())
}

/// A product with stock for every order and a customer who can pay for all of them.
async fn prepare(
    inventory: Channel,
    payment: Channel,
    customer: &str,
    orders: usize,
) -> anyhow::Result<()> {
    let usd = |amount_minor| {
        Some(Money {
            amount_minor,
            currency: "USD".into(),
        })
    };
    let mut inventory = InventoryServiceClient::new(inventory);
    inventory
        .upsert_product(UpsertProductRequest {
            sku: SKU.into(),
            name: "Benchmark widget".into(),
            unit_price: usd(100),
        })
        .await
        .context("is `orderly dev` running on the default ports?")?;
    inventory
        .restock(RestockRequest {
            sku: SKU.into(),
            quantity: u32::try_from(orders)?,
            idempotency_key: String::new(),
        })
        .await?;
    let mut payment = PaymentServiceClient::new(payment);
    payment
        .open_account(OpenAccountRequest {
            customer_id: customer.into(),
            currency: "USD".into(),
        })
        .await?;
    payment
        .deposit(DepositRequest {
            customer_id: customer.into(),
            amount: usd(100 * i64::try_from(orders)?),
            idempotency_key: String::new(),
        })
        .await?;
    Ok(())
}

async fn place(mut orders: OrderServiceClient<Channel>, customer: &str) -> anyhow::Result<String> {
    let request = PlaceOrderRequest {
        customer_id: customer.into(),
        items: vec![OrderItem {
            sku: SKU.into(),
            quantity: 1,
        }],
        idempotency_key: String::new(),
    };
    let order = orders
        .place_order(request)
        .await?
        .into_inner()
        .order
        .context("order")?;
    Ok(order.order_id)
}

async fn wait_decided(mut orders: OrderServiceClient<Channel>, id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let order = orders
            .get_order(GetOrderRequest {
                order_id: id.into(),
            })
            .await?
            .into_inner()
            .order
            .context("order")?;
        match order.status() {
            OrderStatus::Confirmed => return Ok(()),
            OrderStatus::Pending if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(1)).await
            }
            other => bail!("order {id} ended {other:?}: {}", order.reason),
        }
    }
}

async fn wait_none_pending(
    mut orders: OrderServiceClient<Channel>,
    customer: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let request = ListOrdersRequest {
            customer_id: customer.into(),
            status: OrderStatus::Pending.into(),
            page: Some(PageRequest {
                page_size: 1,
                page_token: String::new(),
            }),
        };
        if orders
            .list_orders(request)
            .await?
            .into_inner()
            .orders
            .is_empty()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("orders still pending after 10 minutes");
        }
        // Each poll is a query on the system under test: poll gently, so the bench measures
        // the system rather than its own polling.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
