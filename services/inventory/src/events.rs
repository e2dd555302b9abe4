//! What inventory consumes and emits: it reserves stock for each OrderPlaced (emitting
//! InventoryReserved or InventoryRejected) and turns the reservation into sold stock on
//! SagaConfirmed. Releases come from the orchestrator through the ReleaseReservation RPC.

use std::collections::BTreeMap;

use orderly_common::{
    kafka::{
        envelope::{self, Event, Payload},
        topics,
    },
    messaging::{Handler, HandlerError, outbox},
};
use orderly_proto::events::v1::{
    InventoryRejected, InventoryReserved, OrderPlaced, StockShortage, inventory_event, order_event,
    saga_event::Event as Outcome,
};
use sea_orm::{DatabaseTransaction, DbErr};

use crate::store::reservations::{self, Reserved, Shortage};

/// The consumer group and the topics it reads.
pub const CONSUMER: &str = "inventory";
pub const TOPICS: &[&str] = &[topics::ORDERS, topics::SAGAS];

pub struct Reactions;

impl Handler for Reactions {
    async fn handle(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), HandlerError> {
        // The consumer hands over only events it understands (`Handler::understands`).
        let Some(payload) = &event.payload else {
            return Ok(());
        };
        match payload {
            Payload::Order(order_event::Event::OrderPlaced(placed)) => {
                reserve(txn, event, placed).await
            }
            Payload::Saga(Outcome::SagaConfirmed(_)) => {
                if !reservations::commit(txn, event.order_id).await? {
                    tracing::debug!(order_id = %event.order_id, "no reservation left to commit");
                }
                Ok(())
            }
            // Compensation arrives as an RPC; the outcome itself changes nothing here.
            Payload::Saga(Outcome::SagaRejected(_)) => Ok(()),
            Payload::Inventory(_)
            | Payload::Payment(_)
            | Payload::Catalogue(_)
            | Payload::Account(_) => Err(HandlerError::Invalid(format!(
                "inventory does not consume {}",
                event.envelope.event_type
            ))),
        }
    }

    async fn lock_in_order(
        &self,
        txn: &DatabaseTransaction,
        events: &[&Event],
    ) -> Result<(), DbErr> {
        let mut skus = Vec::new();
        let mut confirmed = Vec::new();
        for event in events {
            match &event.payload {
                Some(Payload::Order(order_event::Event::OrderPlaced(placed))) => {
                    skus.extend(placed.lines.iter().map(|line| line.sku.clone()));
                }
                Some(Payload::Saga(Outcome::SagaConfirmed(_))) => confirmed.push(event.order_id),
                _ => {}
            }
        }
        reservations::lock_stock(txn, skus, confirmed).await
    }
}

async fn reserve(
    txn: &DatabaseTransaction,
    event: &Event,
    placed: &OrderPlaced,
) -> Result<(), HandlerError> {
    let items = wanted(placed)?;
    let payload = match reservations::reserve(txn, event.order_id, &items).await? {
        Reserved::AlreadyDecided => return Ok(()),
        Reserved::All => inventory_event::Event::InventoryReserved(InventoryReserved {
            customer_id: placed.customer_id.clone(),
            lines: placed.lines.clone(),
            total: placed.total.clone(),
        }),
        Reserved::Nothing(shortages) => {
            inventory_event::Event::InventoryRejected(InventoryRejected {
                reason: explain(&shortages),
                shortages: shortages.iter().map(shortage_message).collect(),
                customer_id: placed.customer_id.clone(),
                total: placed.total.clone(),
            })
        }
    };
    let payload = Payload::Inventory(payload);
    tracing::info!(order_id = %event.order_id, outcome = envelope::event_type(&payload), "reservation decided");
    let reply = envelope::wrap(event.order_id, payload);
    outbox::add(txn, topics::INVENTORY, &reply).await?;
    Ok(())
}

/// The quantity wanted per sku (an order may name a sku twice).
fn wanted(placed: &OrderPlaced) -> Result<BTreeMap<String, i64>, HandlerError> {
    if placed.lines.is_empty() {
        return Err(HandlerError::Invalid("OrderPlaced has no lines".into()));
    }
    let mut items = BTreeMap::new();
    for line in &placed.lines {
        if line.quantity == 0 || line.sku.is_empty() {
            return Err(HandlerError::Invalid(format!(
                "OrderPlaced line {:?} is not a positive quantity of a sku",
                line.sku
            )));
        }
        *items.entry(line.sku.clone()).or_insert(0) += i64::from(line.quantity);
    }
    Ok(items)
}

/// "insufficient stock: mug (requested 5, available 2); unknown product: pen"
fn explain(shortages: &[Shortage]) -> String {
    let parts: Vec<String> = shortages
        .iter()
        .map(|shortage| {
            if shortage.known {
                format!(
                    "insufficient stock for {} (requested {}, available {})",
                    shortage.sku, shortage.requested, shortage.available
                )
            } else {
                format!("unknown product {}", shortage.sku)
            }
        })
        .collect();
    parts.join("; ")
}

fn shortage_message(shortage: &Shortage) -> StockShortage {
    StockShortage {
        sku: shortage.sku.clone(),
        requested: u32::try_from(shortage.requested).unwrap_or(u32::MAX),
        available: u32::try_from(shortage.available).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use orderly_proto::events::v1::OrderLine;

    use super::*;

    fn line(sku: &str, quantity: u32) -> OrderLine {
        OrderLine {
            sku: sku.into(),
            quantity,
            unit_price: None,
        }
    }

    #[test]
    fn repeated_skus_add_up_and_bad_lines_are_invalid() {
        let placed = OrderPlaced {
            lines: vec![line("mug", 2), line("pen", 1), line("mug", 3)],
            ..Default::default()
        };
        let items = wanted(&placed).unwrap();
        assert_eq!(items.get("mug"), Some(&5));
        assert!(matches!(
            wanted(&OrderPlaced::default()),
            Err(HandlerError::Invalid(_))
        ));
        let zero = OrderPlaced {
            lines: vec![line("mug", 0)],
            ..Default::default()
        };
        assert!(matches!(wanted(&zero), Err(HandlerError::Invalid(_))));
    }

    #[test]
    fn rejections_say_which_product_and_how_short() {
        let reason = explain(&[
            Shortage {
                sku: "mug".into(),
                requested: 5,
                available: 2,
                known: true,
            },
            Shortage {
                sku: "pen".into(),
                requested: 1,
                available: 0,
                known: false,
            },
        ]);
        assert_eq!(
            reason,
            "insufficient stock for mug (requested 5, available 2); unknown product pen"
        );
    }
}
