//! The run's own catalogue and customers, under a prefix no other run uses, and the random orders
//! drawn from them. What was created is kept: the final check compares the end state against it.

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};
use orderly_proto::{
    common::v1::Money,
    inventory::v1::{RestockRequest, UpsertProductRequest},
    order::v1::{OrderItem, PlaceOrderRequest},
    payment::v1::{DepositRequest, OpenAccountRequest},
};
use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::clients::Clients;

pub const CURRENCY: &str = "USD";
/// Prices between $1 and $100, in cents.
const PRICES: std::ops::RangeInclusive<i64> = 100..=10_000;
/// What a paying customer deposits: $1bn, more than any run can spend (an order is at most
/// 3 items x 3 units x $100).
const DEPOSIT: i64 = 100_000_000_000;

pub struct Product {
    pub sku: String,
    pub price: i64,
    pub stock: u32,
}

pub struct Customer {
    pub id: String,
    /// Zero for the customers who cannot pay.
    pub deposit: i64,
}

pub struct Catalogue {
    pub prefix: String,
    pub products: Vec<Product>,
    pub customers: Vec<Customer>,
}

fn usd(amount_minor: i64) -> Option<Money> {
    Some(Money {
        amount_minor,
        currency: CURRENCY.into(),
    })
}

/// A random generator for one stream of choices (a client, a point), reproducible from the seed.
pub fn rng(seed: u64, stream: u64) -> StdRng {
    StdRng::seed_from_u64(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

impl Catalogue {
    /// Decides names, prices and deposits; nothing is created yet.
    pub fn plan(products: usize, customers: usize, stock: u32, seed: u64) -> Self {
        // Unique per run, so runs against the same system never share products or accounts
        // and the final check sees only this run's orders.
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        let prefix = format!("lb{millis:x}");
        let mut rng = rng(seed, u64::MAX);
        let products = (0..products)
            .map(|i| Product {
                sku: format!("{prefix}-p{i}"),
                price: rng.random_range(PRICES),
                stock,
            })
            .collect();
        let customers = (0..customers)
            .map(|i| Customer {
                id: format!("{prefix}-c{i}"),
                deposit: if i % 10 == 9 { 0 } else { DEPOSIT },
            })
            .collect();
        Self {
            prefix,
            products,
            customers,
        }
    }

    /// Creates every product and account, `concurrency` calls at a time.
    pub async fn create(&self, clients: &Clients, concurrency: usize) -> anyhow::Result<()> {
        stream::iter(&self.products)
            .map(|product| create_product(clients, product))
            .buffer_unordered(concurrency)
            .try_collect::<()>()
            .await?;
        stream::iter(&self.customers)
            .map(|customer| create_customer(clients, customer))
            .buffer_unordered(concurrency)
            .try_collect::<()>()
            .await
    }

    /// A random order: a random customer, 1-3 distinct products, 1-3 units of each.
    pub fn random_order(&self, rng: &mut StdRng, idempotency_key: String) -> PlaceOrderRequest {
        let customer = &self.customers[rng.random_range(0..self.customers.len())];
        let lines = rng.random_range(1..=3).min(self.products.len());
        let items = rand::seq::index::sample(rng, self.products.len(), lines)
            .into_iter()
            .map(|i| OrderItem {
                sku: self.products[i].sku.clone(),
                quantity: rng.random_range(1..=3),
            })
            .collect();
        PlaceOrderRequest {
            customer_id: customer.id.clone(),
            items,
            idempotency_key,
        }
    }
}

async fn create_product(clients: &Clients, product: &Product) -> anyhow::Result<()> {
    clients
        .inventory()
        .upsert_product(UpsertProductRequest {
            sku: product.sku.clone(),
            name: format!("Load bench product {}", product.sku),
            unit_price: usd(product.price),
        })
        .await
        .with_context(|| format!("UpsertProduct {}", product.sku))?;
    if product.stock > 0 {
        clients
            .inventory()
            .restock(RestockRequest {
                sku: product.sku.clone(),
                quantity: product.stock,
                idempotency_key: String::new(),
            })
            .await
            .with_context(|| format!("Restock {}", product.sku))?;
    }
    Ok(())
}

async fn create_customer(clients: &Clients, customer: &Customer) -> anyhow::Result<()> {
    clients
        .payment()
        .open_account(OpenAccountRequest {
            customer_id: customer.id.clone(),
            currency: CURRENCY.into(),
        })
        .await
        .with_context(|| format!("OpenAccount {}", customer.id))?;
    // A deposit must be positive: the customers who cannot pay simply make none.
    if customer.deposit > 0 {
        clients
            .payment()
            .deposit(DepositRequest {
                customer_id: customer.id.clone(),
                amount: usd(customer.deposit),
                idempotency_key: String::new(),
            })
            .await
            .with_context(|| format!("Deposit {}", customer.id))?;
    }
    Ok(())
}
