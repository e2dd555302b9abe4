//! Start-up helpers for `orderly dev`: wait until every server reports SERVING, then create the
//! demo catalogue and customers through the public APIs (only what does not exist yet, so a
//! restart keeps whatever you changed).

use std::{net::SocketAddr, time::Duration};

use orderly_proto::{
    common::v1::Money,
    inventory::v1::{
        GetProductRequest, RestockRequest, UpsertProductRequest,
        inventory_service_client::InventoryServiceClient,
    },
    payment::v1::{
        DepositRequest, GetAccountRequest, OpenAccountRequest,
        payment_service_client::PaymentServiceClient,
    },
};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::secure::Dial;

/// (sku, name, unit price in cents, initial stock)
const PRODUCTS: [(&str, &str, i64, u32); 3] = [
    ("book-rust", "The Rust Programming Language", 3_999, 100),
    ("mug", "Orderly mug", 1_299, 50),
    ("laptop", "Developer laptop", 149_900, 5),
];

/// (customer id, opening deposit in cents)
const CUSTOMERS: [(&str, i64); 2] = [("alice", 100_000), ("bob", 2_000)];

const CURRENCY: &str = "USD";

fn usd(amount_minor: i64) -> Option<Money> {
    Some(Money {
        amount_minor,
        currency: CURRENCY.to_owned(),
    })
}

/// Polls `grpc.health.v1.Health/Check` on every address until all answer SERVING.
pub async fn wait_until_serving(
    addrs: impl Iterator<Item = SocketAddr>,
    within: Duration,
    dial: &Dial,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    for addr in addrs {
        let mut health = HealthClient::new(dial.channel(&addr.to_string())?);
        loop {
            let answer = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if answer.is_ok_and(|reply| reply.get_ref().status == ServingStatus::Serving as i32) {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("{addr} did not report SERVING within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

pub async fn demo_data(
    inventory: SocketAddr,
    payment: SocketAddr,
    dial: &Dial,
) -> anyhow::Result<()> {
    let mut inventory = InventoryServiceClient::new(dial.channel(&inventory.to_string())?);
    for (sku, name, price, stock) in PRODUCTS {
        let exists = inventory
            .get_product(GetProductRequest {
                sku: sku.to_owned(),
            })
            .await;
        match exists {
            Ok(_) => continue,
            Err(status) if status.code() == Code::NotFound => {}
            Err(status) => return Err(status.into()),
        }
        inventory
            .upsert_product(UpsertProductRequest {
                sku: sku.to_owned(),
                name: name.to_owned(),
                unit_price: usd(price),
            })
            .await?;
        inventory
            .restock(RestockRequest {
                sku: sku.to_owned(),
                quantity: stock,
                idempotency_key: String::new(),
            })
            .await?;
        tracing::info!(sku, stock, "demo product created");
    }
    let mut payment = PaymentServiceClient::new(dial.channel(&payment.to_string())?);
    for (customer_id, deposit) in CUSTOMERS {
        let exists = payment
            .get_account(GetAccountRequest {
                customer_id: customer_id.to_owned(),
            })
            .await;
        match exists {
            Ok(_) => continue,
            Err(status) if status.code() == Code::NotFound => {}
            Err(status) => return Err(status.into()),
        }
        payment
            .open_account(OpenAccountRequest {
                customer_id: customer_id.to_owned(),
                currency: CURRENCY.to_owned(),
            })
            .await?;
        payment
            .deposit(DepositRequest {
                customer_id: customer_id.to_owned(),
                amount: usd(deposit),
                idempotency_key: String::new(),
            })
            .await?;
        tracing::info!(customer_id, deposit, "demo account opened");
    }
    Ok(())
}
