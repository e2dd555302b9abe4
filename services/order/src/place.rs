//! PlaceOrder: validate, price on the server, check the customer, then store the order PENDING
//! and its OrderPlaced event in one transaction and answer at once. The saga decides later; this
//! call never waits for it.
//!
//! Prices and customers come from the order service's own projections of inventory's catalogue
//! and payment's accounts (their events, `store::catalogue` and `store::accounts`), so orders are
//! taken while inventory or payment is down and decided once they are back. Only what the
//! projections have not learnt yet (a product or an account created a moment ago, or before
//! their events existed) is asked of its owner, and then kept. A price is as fresh as the
//! projection: a change reaches PlaceOrder once the order service has consumed it, in the
//! milliseconds a hop takes.
//!
//! In front of the accounts table sits a bounded in-memory cache of customers found: an account
//! is never closed and never changes currency, so one found stays true.

use std::{collections::HashMap, time::Duration};

use orderly_common::{
    ApiError,
    group_commit::GroupCommit,
    grpc::Client,
    idempotency,
    kafka::{envelope, topics},
    messaging::{Relay, outbox},
    validate,
};
use orderly_proto::{
    common::v1::Money,
    events::v1::{OrderLine as EventLine, OrderPlaced, order_event},
    inventory::v1::{BatchGetProductsRequest, inventory_service_client::InventoryServiceClient},
    order::v1::PlaceOrderRequest,
    payment::v1::{GetAccountRequest, payment_service_client::PaymentServiceClient},
};
use sea_orm::{DatabaseConnection, SqlErr};
use sha2::{Digest, Sha256};
use tonic::Code;
use uuid::Uuid;

use crate::{
    admission::Admission,
    domain::{
        OrderStatus,
        pricing::{self, Price},
    },
    store::{accounts, catalogue, lines, orders},
};

pub const MAX_ITEMS: usize = 100;
pub const MAX_QUANTITY: u32 = 10_000;

pub struct Placer {
    pub db: DatabaseConnection,
    /// Stores new orders, many requests to a commit.
    pub writer: GroupCommit,
    pub relay: Relay,
    pub admission: Admission,
    pub inventory: Client,
    pub payment: Client,
    pub known_customers: KnownCustomers,
    /// How long an idempotency key answers with its order.
    pub keys_ttl: Duration,
}

/// The currency of each customer payment has confirmed, bounded in entries.
pub type KnownCustomers = moka::sync::Cache<String, String>;

/// Enough for every customer of a large shop; the least used are forgotten beyond it, and asked
/// about again.
pub fn known_customers() -> KnownCustomers {
    moka::sync::Cache::new(1_000_000)
}

/// A validated PlaceOrder request.
struct Request {
    customer_id: String,
    items: Vec<(String, u32)>,
    idempotency_key: Option<String>,
    hash: String,
}

impl Request {
    /// The key as the order stores it, scoped by the customer.
    fn stored_key(&self) -> Option<String> {
        let key = self.idempotency_key.as_deref()?;
        Some(orders::stored_key(&self.customer_id, key))
    }
}

impl Placer {
    pub async fn place(&self, request: PlaceOrderRequest) -> Result<orders::Order, ApiError> {
        let request = validated(request)?;
        let stored_key = request.stored_key();
        // An order still holding the key past its lifetime gives it up in the new order's
        // transaction.
        let mut expired_holder = None;
        if let Some(key) = &stored_key
            && let Some(existing) = orders::find_by_idempotency_key(&self.db, key).await?
        {
            if existing.header.created_at >= idempotency::kept_since(self.keys_ttl) {
                return same_request(existing, &request);
            }
            expired_holder = Some(existing.header.id);
        }
        self.admission.check()?;
        let prices = self.prices(&request.items).await?;
        let priced = pricing::price(&request.items, &prices)
            .map_err(|error| ApiError::invalid("items", error.to_string()))?;
        self.check_customer(&request.customer_id, &priced.currency)
            .await?;

        let order = new_order(&request, priced);
        tracing::Span::current().record("order_id", tracing::field::display(order.header.id));
        let placed = order_event::Event::OrderPlaced(order_placed(&order));
        let event = envelope::wrap(order.header.id, envelope::Payload::Order(placed));
        let stored = order.clone();
        let written = self
            .writer
            .write(Box::new(move |txn| {
                Box::pin(async move {
                    if let Some(holder) = expired_holder {
                        orders::forget_idempotency_key(txn, holder).await?;
                    }
                    orders::insert(txn, &stored).await?;
                    outbox::add(txn, topics::ORDERS, &event).await
                })
            }))
            .await;
        if let Err(error) = written {
            // Two requests raced with one idempotency key: the other one won; answer as it did.
            if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
                && let Some(key) = &stored_key
                && let Some(existing) = orders::find_by_idempotency_key(&self.db, key).await?
            {
                return same_request(existing, &request);
            }
            return Err(error.into());
        }
        self.relay.wake();
        self.admission.placed();
        tracing::info!(order_id = %order.header.id, customer_id = request.customer_id, total = order.header.total_minor, "order placed");
        Ok(order)
    }

    /// The price of every sku in the order: from the catalogue projection, and for skus it has
    /// not learnt yet, from inventory in one call.
    async fn prices(&self, items: &[(String, u32)]) -> Result<HashMap<String, Price>, ApiError> {
        let mut skus: Vec<String> = items.iter().map(|(sku, _)| sku.clone()).collect();
        skus.sort_unstable();
        skus.dedup();
        let mut prices = catalogue::prices(&self.db, &skus).await?;
        skus.retain(|sku| !prices.contains_key(sku));
        if !skus.is_empty() {
            prices.extend(self.prices_from_inventory(skus).await?);
        }
        Ok(prices)
    }

    /// Asks inventory for the prices of `skus`, and keeps what it answers in the projection.
    async fn prices_from_inventory(
        &self,
        skus: Vec<String>,
    ) -> Result<HashMap<String, Price>, ApiError> {
        let products = self
            .inventory
            .idempotent(
                "orderly.inventory.v1.InventoryService/BatchGetProducts",
                |channel| {
                    let skus = skus.clone();
                    async move {
                        InventoryServiceClient::new(channel)
                            .batch_get_products(BatchGetProductsRequest { skus })
                            .await
                            .map(|reply| reply.into_inner().products)
                    }
                },
            )
            .await
            .map_err(dependency_down("inventory"))?;
        let learnt: Vec<catalogue::Model> = products
            .into_iter()
            .filter_map(|product| {
                let price = product.unit_price?;
                Some(catalogue::Model {
                    sku: product.sku,
                    unit_price_minor: price.amount_minor,
                    currency: price.currency,
                    version: i64::try_from(product.version).ok()?,
                })
            })
            .collect();
        let prices = learnt
            .iter()
            .map(|row| {
                let price = Price {
                    amount_minor: row.unit_price_minor,
                    currency: row.currency.clone(),
                };
                (row.sku.clone(), price)
            })
            .collect();
        catalogue::learn(&self.db, learnt).await?;
        Ok(prices)
    }

    async fn check_customer(&self, customer_id: &str, currency: &str) -> Result<(), ApiError> {
        let pays_in = match self.known_customers.get(customer_id) {
            Some(pays_in) => pays_in,
            None => {
                let pays_in = match accounts::currency_of(&self.db, customer_id).await? {
                    Some(pays_in) => pays_in,
                    None => {
                        let pays_in = self.currency_from_payment(customer_id).await?;
                        accounts::learn(&self.db, customer_id, &pays_in).await?;
                        pays_in
                    }
                };
                self.known_customers
                    .insert(customer_id.to_owned(), pays_in.clone());
                pays_in
            }
        };
        if pays_in != currency {
            return Err(ApiError::invalid(
                "customer_id",
                format!(
                    "customer {customer_id} pays in {pays_in}, the items are priced in {currency}"
                ),
            ));
        }
        Ok(())
    }

    /// The currency of `customer_id`'s account, asked of payment.
    async fn currency_from_payment(&self, customer_id: &str) -> Result<String, ApiError> {
        let account = self
            .payment
            .idempotent(
                "orderly.payment.v1.PaymentService/GetAccount",
                |channel| async move {
                    let request = GetAccountRequest {
                        customer_id: customer_id.to_owned(),
                    };
                    match PaymentServiceClient::new(channel)
                        .get_account(request)
                        .await
                    {
                        Ok(reply) => Ok(reply.into_inner().account),
                        Err(status) if status.code() == Code::NotFound => Ok(None),
                        Err(status) => Err(status),
                    }
                },
            )
            .await
            .map_err(dependency_down("payment"))?
            .ok_or_else(|| {
                ApiError::invalid("customer_id", format!("unknown customer {customer_id}"))
            })?;
        Ok(account
            .balance
            .map(|money| money.currency)
            .unwrap_or_default())
    }
}

fn dependency_down(name: &'static str) -> impl Fn(tonic::Status) -> ApiError {
    move |status| ApiError::Dependency(format!("{name} service: {}", status.message()))
}

fn validated(request: PlaceOrderRequest) -> Result<Request, ApiError> {
    let customer_id = validate::identifier("customer_id", &request.customer_id)?.to_owned();
    if request.items.is_empty() {
        return Err(ApiError::invalid(
            "items",
            "an order needs at least one item",
        ));
    }
    if request.items.len() > MAX_ITEMS {
        return Err(ApiError::invalid(
            "items",
            format!("at most {MAX_ITEMS} items per order"),
        ));
    }
    let mut items = Vec::with_capacity(request.items.len());
    for (index, item) in request.items.iter().enumerate() {
        let sku = validate::identifier(&format!("items[{index}].sku"), &item.sku)?;
        let quantity =
            validate::positive_quantity(&format!("items[{index}].quantity"), item.quantity)?;
        if quantity > MAX_QUANTITY {
            return Err(ApiError::invalid(
                format!("items[{index}].quantity"),
                format!("at most {MAX_QUANTITY}"),
            ));
        }
        items.push((sku.to_owned(), quantity));
    }
    let idempotency_key = idempotency::key_field(&request.idempotency_key)?.map(str::to_owned);
    let hash = request_hash(&customer_id, &items);
    Ok(Request {
        customer_id,
        items,
        idempotency_key,
        hash,
    })
}

/// Identifies what was asked for, so a reused idempotency key with another payload is caught.
fn request_hash(customer_id: &str, items: &[(String, u32)]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(customer_id.as_bytes());
    for (sku, quantity) in items {
        hasher.update([0]);
        hasher.update(sku.as_bytes());
        hasher.update(quantity.to_be_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn same_request(existing: orders::Order, request: &Request) -> Result<orders::Order, ApiError> {
    if existing.header.request_hash == request.hash {
        Ok(existing)
    } else {
        Err(ApiError::invalid(
            "idempotency_key",
            format!(
                "{:?} was already used for a different order ({})",
                request.idempotency_key.as_deref().unwrap_or_default(),
                existing.header.id
            ),
        ))
    }
}

fn new_order(request: &Request, priced: pricing::Priced) -> orders::Order {
    let id = Uuid::now_v7();
    let now = orderly_common::time::now();
    let lines = priced
        .lines
        .into_iter()
        .zip(0..)
        .map(|(line, line_no)| lines::Model {
            order_id: id,
            line_no,
            sku: line.sku,
            quantity: i64::from(line.quantity),
            unit_price_minor: line.unit_price_minor,
        })
        .collect();
    orders::Order {
        header: orders::Model {
            id,
            customer_id: request.customer_id.clone(),
            status: OrderStatus::Pending.as_str().to_owned(),
            reason: String::new(),
            total_minor: priced.total_minor,
            currency: priced.currency,
            idempotency_key: request.stored_key(),
            request_hash: request.hash.clone(),
            created_at: now,
            updated_at: now,
        },
        lines,
    }
}

fn order_placed(order: &orders::Order) -> OrderPlaced {
    let money = |amount_minor| {
        Some(Money {
            amount_minor,
            currency: order.header.currency.clone(),
        })
    };
    OrderPlaced {
        customer_id: order.header.customer_id.clone(),
        lines: order
            .lines
            .iter()
            .map(|line| EventLine {
                sku: line.sku.clone(),
                quantity: u32::try_from(line.quantity).unwrap_or(u32::MAX),
                unit_price: money(line.unit_price_minor),
            })
            .collect(),
        total: money(order.header.total_minor),
    }
}

#[cfg(test)]
mod tests {
    use orderly_proto::order::v1::OrderItem;

    use super::*;

    fn request(items: Vec<OrderItem>, key: &str) -> PlaceOrderRequest {
        PlaceOrderRequest {
            customer_id: "alice".into(),
            items,
            idempotency_key: key.into(),
        }
    }

    fn item(sku: &str, quantity: u32) -> OrderItem {
        OrderItem {
            sku: sku.into(),
            quantity,
        }
    }

    #[test]
    fn validation_names_the_offending_field() {
        let field_of = |request| match validated(request) {
            Err(ApiError::InvalidArgument { field, .. }) => field,
            other => panic!(
                "expected invalid argument, got {:?}",
                other.map(|r| r.items)
            ),
        };
        assert_eq!(field_of(request(vec![], "")), "items");
        assert_eq!(
            field_of(request(vec![item("mug", 1), item("", 1)], "")),
            "items[1].sku"
        );
        assert_eq!(
            field_of(request(vec![item("mug", 0)], "")),
            "items[0].quantity"
        );
        assert_eq!(
            field_of(request(vec![item("mug", MAX_QUANTITY + 1)], "")),
            "items[0].quantity"
        );
        assert_eq!(
            field_of(request(vec![item("mug", 1); MAX_ITEMS + 1], "")),
            "items"
        );
        assert_eq!(
            field_of(request(vec![item("mug", 1)], &"k".repeat(129))),
            "idempotency_key"
        );
        let nobody = PlaceOrderRequest {
            customer_id: String::new(),
            ..request(vec![item("mug", 1)], "")
        };
        assert_eq!(field_of(nobody), "customer_id");
    }

    #[test]
    fn the_request_hash_tells_payloads_apart() {
        let hash = |items: &[(&str, u32)]| {
            let items: Vec<(String, u32)> = items
                .iter()
                .map(|(sku, q)| ((*sku).to_owned(), *q))
                .collect();
            request_hash("alice", &items)
        };
        assert_eq!(hash(&[("mug", 1)]), hash(&[("mug", 1)]));
        assert_ne!(hash(&[("mug", 1)]), hash(&[("mug", 2)]));
        assert_ne!(hash(&[("mug", 11)]), hash(&[("mug1", 1)]));
    }
}
