//! What payment consumes and emits: it authorizes the order total when inventory reserved the
//! items (emitting PaymentAuthorized or PaymentDeclined) and captures it on SagaConfirmed.
//! Refunds come from the orchestrator through the RefundPayment RPC.

use orderly_common::{
    kafka::{
        envelope::{self, Event, Payload},
        topics,
    },
    messaging::{Handler, HandlerError, outbox},
};
use orderly_proto::events::v1::{
    InventoryReserved, PaymentAuthorized, PaymentDeclined, inventory_event::Event as Reservation,
    payment_event, saga_event::Event as Outcome,
};
use sea_orm::{DatabaseTransaction, DbErr};

use crate::store::payments::{self, Authorization};

pub const CONSUMER: &str = "payment";
pub const TOPICS: &[&str] = &[topics::INVENTORY, topics::SAGAS];

pub struct Reactions;

impl Handler for Reactions {
    async fn handle(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), HandlerError> {
        // The consumer hands over only events it understands (`Handler::understands`).
        let Some(payload) = &event.payload else {
            return Ok(());
        };
        match payload {
            Payload::Inventory(Reservation::InventoryReserved(reserved)) => {
                authorize(txn, event, reserved).await
            }
            Payload::Saga(Outcome::SagaConfirmed(_)) => {
                if !payments::capture(txn, event.order_id).await? {
                    tracing::debug!(order_id = %event.order_id, "no authorized payment left to capture");
                }
                Ok(())
            }
            // Nothing was charged for a rejected reservation; refunds arrive as RPCs.
            Payload::Inventory(Reservation::InventoryRejected(_))
            | Payload::Saga(Outcome::SagaRejected(_)) => Ok(()),
            Payload::Order(_)
            | Payload::Payment(_)
            | Payload::Catalogue(_)
            | Payload::Account(_) => Err(HandlerError::Invalid(format!(
                "payment does not consume {}",
                event.envelope.event_type
            ))),
        }
    }

    async fn lock_in_order(
        &self,
        txn: &DatabaseTransaction,
        events: &[&Event],
    ) -> Result<(), DbErr> {
        let mut customers = Vec::new();
        let mut confirmed = Vec::new();
        for event in events {
            match &event.payload {
                Some(Payload::Inventory(Reservation::InventoryReserved(reserved))) => {
                    customers.push(reserved.customer_id.clone());
                }
                Some(Payload::Saga(Outcome::SagaConfirmed(_))) => confirmed.push(event.order_id),
                _ => {}
            }
        }
        payments::lock_accounts(txn, customers, confirmed).await
    }
}

async fn authorize(
    txn: &DatabaseTransaction,
    event: &Event,
    reserved: &InventoryReserved,
) -> Result<(), HandlerError> {
    let total = reserved
        .total
        .as_ref()
        .filter(|total| total.amount_minor > 0 && !total.currency.is_empty())
        .ok_or_else(|| HandlerError::Invalid("InventoryReserved has no positive total".into()))?;
    let decision = payments::authorize(
        txn,
        event.order_id,
        &reserved.customer_id,
        total.amount_minor,
        &total.currency,
    )
    .await?;
    let payload = match decision {
        Authorization::AlreadyDecided => return Ok(()),
        Authorization::Authorized(payment) => {
            payment_event::Event::PaymentAuthorized(PaymentAuthorized {
                payment_id: payment.id.to_string(),
                customer_id: reserved.customer_id.clone(),
                amount: Some(total.clone()),
            })
        }
        Authorization::Declined(reason) => payment_event::Event::PaymentDeclined(PaymentDeclined {
            reason,
            customer_id: reserved.customer_id.clone(),
            amount: Some(total.clone()),
        }),
    };
    let payload = Payload::Payment(payload);
    tracing::info!(order_id = %event.order_id, outcome = envelope::event_type(&payload), "payment decided");
    let reply = envelope::wrap(event.order_id, payload);
    outbox::add(txn, topics::PAYMENTS, &reply).await?;
    Ok(())
}
