//! `orderly ctl orders watch`: an order as it is now, then every change until it is decided
//! (OrderService/WatchOrder); or a customer's orders, each as it is placed and decided, until
//! interrupted (WatchCustomerOrders).

use clap::Subcommand;
use orderly_proto::order::v1::{
    Order, WatchCustomerOrdersRequest, WatchOrderRequest, order_service_client::OrderServiceClient,
};
use serde_json::json;

use super::{
    CtlChannel, Output,
    output::{money, money_json, time},
    refused,
};

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Print the order, then each change, until it is CONFIRMED or REJECTED; or, with
    /// --customer, each of the customer's orders as it is placed and decided, until interrupted
    Watch {
        #[arg(required_unless_present = "customer")]
        order_id: Option<String>,
        #[arg(long, conflicts_with = "order_id")]
        customer: Option<String>,
    },
}

pub async fn run(
    command: OrdersCommand,
    channel: CtlChannel,
    output: Output,
) -> anyhow::Result<()> {
    let OrdersCommand::Watch { order_id, customer } = command;
    let mut orders = OrderServiceClient::new(channel);
    let what = match &customer {
        Some(customer) => format!("watch of {customer}'s orders"),
        None => format!("watch of order {}", order_id.as_deref().unwrap_or_default()),
    };
    let watch = |status| refused(&what, &status);
    let mut updates = match customer {
        Some(customer_id) => orders
            .watch_customer_orders(WatchCustomerOrdersRequest { customer_id })
            .await
            .map_err(watch)?
            .into_inner(),
        None => orders
            .watch_order(WatchOrderRequest {
                order_id: order_id.unwrap_or_default(),
            })
            .await
            .map_err(watch)?
            .into_inner(),
    };
    if output == Output::Table {
        println!(
            "{}",
            line(["UPDATED", "ORDER", "STATUS", "CUSTOMER", "TOTAL", "REASON"])
        );
    }
    while let Some(update) = updates.message().await.map_err(watch)? {
        let Some(order) = update.order else { continue };
        match output {
            Output::Json => println!("{}", order_json(&order)),
            Output::Table => println!(
                "{}",
                line([
                    &time(order.updated_at.as_ref()),
                    &order.order_id,
                    order.status().as_str_name(),
                    &order.customer_id,
                    &money(order.total.as_ref()),
                    &order.reason,
                ])
            ),
        }
    }
    Ok(())
}

/// One change per line as it arrives, so the columns have fixed widths (a timestamp, a UUID,
/// the longest status) rather than the widest cell's.
fn line(cells: [&str; 6]) -> String {
    let [updated, order, status, customer, total, reason] = cells;
    format!("{updated:<24}  {order:<36}  {status:<9}  {customer:<16}  {total:<14}  {reason}")
        .trim_end()
        .to_owned()
}

fn order_json(order: &Order) -> serde_json::Value {
    json!({
        "order_id": order.order_id,
        "status": order.status().as_str_name(),
        "customer_id": order.customer_id,
        "total": money_json(order.total.as_ref()),
        "reason": order.reason,
        "updated_at": time(order.updated_at.as_ref()),
        "items": order.items.iter().map(|line| json!({
            "sku": line.sku,
            "quantity": line.quantity,
            "unit_price": money_json(line.unit_price.as_ref()),
        })).collect::<Vec<_>>(),
    })
}
