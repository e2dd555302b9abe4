//! The end-of-run check, through the public APIs only: once every order of the run is decided,
//! stock and money are conserved (DESIGN.md I1, I2, I3, I11) and no saga of the run is left open.

use std::{collections::HashMap, time::Duration};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};
use orderly_proto::{
    common::v1::PageRequest,
    inventory::v1::{ListProductsRequest, Product},
    order::v1::{ListOrdersRequest, Order, OrderStatus},
    payment::v1::GetAccountRequest,
    saga::v1::{ListSagasRequest, SagaState},
};
use tokio::time::Instant;

use crate::{clients::Clients, setup::Catalogue};

/// Calls in flight at once while reading the end state.
const CONCURRENCY: usize = 16;
/// Differences printed before the rest are only counted.
const SHOWN: usize = 10;

fn page(page_token: String) -> Option<PageRequest> {
    Some(PageRequest {
        page_size: 500,
        page_token,
    })
}

/// Checks the end state; returns the differences found (empty: conserved).
pub async fn conservation(
    clients: &Clients,
    catalogue: &Catalogue,
    placed: u64,
    within: Duration,
) -> anyhow::Result<Vec<String>> {
    let mut differences = Vec::new();
    let orders = decided_orders(clients, catalogue, within, &mut differences).await?;
    let confirmed: Vec<&Order> = orders
        .iter()
        .filter(|order| order.status() == OrderStatus::Confirmed)
        .collect();
    println!(
        "end state: {} orders of the run ({} acknowledged by PlaceOrder), {} confirmed, {} rejected",
        orders.len(),
        placed,
        confirmed.len(),
        orders
            .iter()
            .filter(|order| order.status() == OrderStatus::Rejected)
            .count()
    );
    // More orders than acknowledged is fine (a PlaceOrder whose answer timed out); fewer is a
    // lost order.
    if (orders.len() as u64) < placed {
        differences.push(format!(
            "{placed} orders acknowledged but only {} exist",
            orders.len()
        ));
    }
    // An order is decided when the order service has heard the outcome; inventory and payment
    // hear it on their own (commit the reservation, capture the payment) a moment later. So the
    // books are read again until they balance: a real violation stays, lag goes away.
    let deadline = Instant::now() + within;
    loop {
        let mut books = Vec::new();
        check_stock(clients, catalogue, &confirmed, &mut books).await?;
        check_money(clients, catalogue, &confirmed, &mut books).await?;
        check_sagas(clients, catalogue, &mut books).await?;
        if books.is_empty() || Instant::now() >= deadline {
            differences.extend(books);
            return Ok(differences);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every order of the run's customers, waiting (bounded) until none is PENDING.
async fn decided_orders(
    clients: &Clients,
    catalogue: &Catalogue,
    within: Duration,
    differences: &mut Vec<String>,
) -> anyhow::Result<Vec<Order>> {
    let deadline = Instant::now() + within;
    let mut decided = Vec::new();
    let mut waiting: Vec<&str> = catalogue.customers.iter().map(|c| c.id.as_str()).collect();
    loop {
        let listed: Vec<(&str, Vec<Order>)> = stream::iter(waiting)
            .map(|customer| async move {
                anyhow::Ok((customer, customer_orders(clients, customer).await?))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let (pending, done): (Vec<_>, Vec<_>) = listed
            .into_iter()
            .partition(|(_, orders)| orders.iter().any(|o| o.status() == OrderStatus::Pending));
        decided.extend(done.into_iter().flat_map(|(_, orders)| orders));
        if pending.is_empty() {
            return Ok(decided);
        }
        if Instant::now() >= deadline {
            let undecided: Vec<&str> = pending
                .iter()
                .flat_map(|(_, orders)| orders)
                .filter(|o| o.status() == OrderStatus::Pending)
                .map(|o| o.order_id.as_str())
                .collect();
            differences.push(format!(
                "{} orders still PENDING after {within:?}, e.g. {:?}",
                undecided.len(),
                &undecided[..undecided.len().min(3)]
            ));
            decided.extend(pending.into_iter().flat_map(|(_, orders)| orders));
            return Ok(decided);
        }
        waiting = pending.into_iter().map(|(customer, _)| customer).collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn customer_orders(clients: &Clients, customer: &str) -> anyhow::Result<Vec<Order>> {
    let mut orders = Vec::new();
    let mut token = String::new();
    loop {
        let reply = clients
            .order()
            .list_orders(ListOrdersRequest {
                customer_id: customer.into(),
                status: OrderStatus::Unspecified.into(),
                page: page(token),
            })
            .await
            .with_context(|| format!("ListOrders {customer}"))?
            .into_inner();
        orders.extend(reply.orders);
        if reply.next_page_token.is_empty() {
            return Ok(orders);
        }
        token = reply.next_page_token;
    }
}

/// Per product: initial stock = available + reserved + sold, nothing reserved, and sold equal
/// to the units of the confirmed orders.
async fn check_stock(
    clients: &Clients,
    catalogue: &Catalogue,
    confirmed: &[&Order],
    differences: &mut Vec<String>,
) -> anyhow::Result<()> {
    let products = run_products(clients, &catalogue.prefix).await?;
    let mut sold: HashMap<&str, u64> = HashMap::new();
    for line in confirmed.iter().flat_map(|order| &order.items) {
        *sold.entry(line.sku.as_str()).or_default() += u64::from(line.quantity);
    }
    for planned in &catalogue.products {
        let Some(product) = products.get(&planned.sku) else {
            differences.push(format!("product {} is missing", planned.sku));
            continue;
        };
        let (available, reserved, actual_sold) = (
            u64::from(product.available),
            u64::from(product.reserved),
            u64::from(product.sold),
        );
        if available + reserved + actual_sold != u64::from(planned.stock) {
            differences.push(format!(
                "{}: initial {} != available {available} + reserved {reserved} + sold {actual_sold}",
                planned.sku, planned.stock
            ));
        }
        if reserved != 0 {
            differences.push(format!("{}: {reserved} still reserved", planned.sku));
        }
        let expected = sold.get(planned.sku.as_str()).copied().unwrap_or(0);
        if actual_sold != expected {
            differences.push(format!(
                "{}: sold {actual_sold}, but the confirmed orders hold {expected}",
                planned.sku
            ));
        }
    }
    Ok(())
}

/// The run's products, by sku.
async fn run_products(clients: &Clients, prefix: &str) -> anyhow::Result<HashMap<String, Product>> {
    let mut products = HashMap::new();
    let mut token = String::new();
    loop {
        let reply = clients
            .inventory()
            .list_products(ListProductsRequest { page: page(token) })
            .await
            .context("ListProducts")?
            .into_inner();
        products.extend(
            reply
                .products
                .into_iter()
                .filter(|p| p.sku.starts_with(&format!("{prefix}-")))
                .map(|p| (p.sku.clone(), p)),
        );
        if reply.next_page_token.is_empty() {
            return Ok(products);
        }
        token = reply.next_page_token;
    }
}

/// Per customer: balance = deposit - the totals of its confirmed orders, nothing held.
async fn check_money(
    clients: &Clients,
    catalogue: &Catalogue,
    confirmed: &[&Order],
    differences: &mut Vec<String>,
) -> anyhow::Result<()> {
    let mut charged: HashMap<&str, i64> = HashMap::new();
    for order in confirmed {
        let total = order.total.as_ref().map_or(0, |money| money.amount_minor);
        *charged.entry(order.customer_id.as_str()).or_default() += total;
    }
    let accounts: Vec<_> = stream::iter(&catalogue.customers)
        .map(|customer| async move {
            let account = clients
                .payment()
                .get_account(GetAccountRequest {
                    customer_id: customer.id.clone(),
                })
                .await
                .with_context(|| format!("GetAccount {}", customer.id))?
                .into_inner()
                .account;
            anyhow::Ok((customer, account))
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    for (customer, account) in accounts {
        let Some(account) = account else {
            differences.push(format!("account {} is missing", customer.id));
            continue;
        };
        let amount = |money: Option<&orderly_proto::common::v1::Money>| {
            money.map_or(0, |money| money.amount_minor)
        };
        let (balance, held) = (
            amount(account.balance.as_ref()),
            amount(account.held.as_ref()),
        );
        let expected = customer.deposit - charged.get(customer.id.as_str()).copied().unwrap_or(0);
        if balance != expected {
            differences.push(format!(
                "{}: balance {balance}, expected deposit {} - confirmed totals = {expected}",
                customer.id, customer.deposit
            ));
        }
        if held != 0 {
            differences.push(format!("{}: {held} still held", customer.id));
        }
    }
    Ok(())
}

/// No saga of the run still running, compensating or parked once its order is decided.
async fn check_sagas(
    clients: &Clients,
    catalogue: &Catalogue,
    differences: &mut Vec<String>,
) -> anyhow::Result<()> {
    let ours = format!("{}-", catalogue.prefix);
    for state in [
        SagaState::Running,
        SagaState::Compensating,
        SagaState::Parked,
    ] {
        let mut open = 0;
        let mut token = String::new();
        loop {
            let reply = clients
                .orchestrator()
                .list_sagas(ListSagasRequest {
                    state: state.into(),
                    page: page(token),
                })
                .await
                .context("ListSagas")?
                .into_inner();
            open += reply
                .sagas
                .iter()
                .filter(|saga| saga.customer_id.starts_with(&ours))
                .count();
            if reply.next_page_token.is_empty() {
                break;
            }
            token = reply.next_page_token;
        }
        if open > 0 {
            differences.push(format!(
                "{open} sagas of the run still {}",
                state.as_str_name()
            ));
        }
    }
    Ok(())
}

/// Prints the verdict; true when conserved.
pub fn print_verdict(differences: &[String]) -> bool {
    if differences.is_empty() {
        println!("conservation: OK (stock, money, every order decided, no saga left open)");
        return true;
    }
    println!("conservation: VIOLATED ({} differences)", differences.len());
    for difference in differences.iter().take(SHOWN) {
        println!("  {difference}");
    }
    if differences.len() > SHOWN {
        println!("  ... and {} more", differences.len() - SHOWN);
    }
    false
}
