//! The orchestrator's consumer: every domain event of an order becomes a core event for its
//! saga. Whichever event arrives first creates the saga (events of different topics can arrive
//! in any order).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use orderly_common::{
    kafka::{envelope::Event, topics},
    messaging::{Handler, HandlerError},
};
use orderly_proto::{common::v1::Money, events::v1::event_envelope::Payload};
use sea_orm::DatabaseTransaction;
use tokio::sync::Notify;

use super::{
    Meta, NewSaga, Settings,
    apply::{ApplyError, apply},
};
use crate::core::{self, Command};

pub const CONSUMER: &str = "orchestrator";
pub const TOPICS: &[&str] = &[topics::ORDERS, topics::INVENTORY, topics::PAYMENTS];

pub struct Reactions {
    pub settings: Settings,
    /// Wakes the compensator when a transition asks for a compensation.
    pub compensations: Arc<Notify>,
    /// A transition asked for a compensation that is not committed yet.
    pub compensation_due: AtomicBool,
    /// Wakes the deadline timer after a commit: a saga may have started.
    pub sagas_changed: Arc<Notify>,
}

impl Handler for Reactions {
    async fn handle(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), HandlerError> {
        let (core_event, customer_id, total, note) = match &event.payload {
            Payload::OrderPlaced(placed) => (
                core::Event::OrderPlaced,
                &placed.customer_id,
                &placed.total,
                "order placed".to_owned(),
            ),
            Payload::InventoryReserved(reserved) => (
                core::Event::InventoryReserved,
                &reserved.customer_id,
                &reserved.total,
                "stock reserved".to_owned(),
            ),
            Payload::InventoryRejected(rejected) => (
                core::Event::InventoryRejected {
                    reason: rejected.reason.clone(),
                },
                &rejected.customer_id,
                &rejected.total,
                format!("stock refused: {}", rejected.reason),
            ),
            Payload::PaymentAuthorized(authorized) => (
                core::Event::PaymentAuthorized,
                &authorized.customer_id,
                &authorized.amount,
                format!("payment {} authorized", authorized.payment_id),
            ),
            Payload::PaymentDeclined(declined) => (
                core::Event::PaymentDeclined {
                    reason: declined.reason.clone(),
                },
                &declined.customer_id,
                &declined.amount,
                format!("payment declined: {}", declined.reason),
            ),
            Payload::SagaConfirmed(_) | Payload::SagaRejected(_) => {
                return Err(HandlerError::Invalid(format!(
                    "the orchestrator does not consume {}",
                    event.envelope.event_type
                )));
            }
        };
        let create = new_saga(customer_id, total.as_ref());
        let meta = Meta {
            event_id: event.event_id.to_string(),
            event_type: event.envelope.event_type.clone(),
            note,
        };
        let commands = apply(
            txn,
            event.order_id,
            core_event,
            meta,
            create,
            self.settings.deadline,
        )
        .await
        .map_err(|error| match error {
            ApplyError::Database(error) => HandlerError::Transient(error),
            ApplyError::Invalid(reason) => HandlerError::Invalid(reason),
            ApplyError::Refused(error) => HandlerError::Invalid(error.to_string()),
        })?;
        if commands
            .iter()
            .any(|command| matches!(command, Command::Compensate(_)))
        {
            self.compensation_due.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The timer and the compensator are woken once the change is committed, or they would not
    /// see it yet.
    fn committed(&self, _event: &Event) {
        self.sagas_changed.notify_one();
        if self.compensation_due.swap(false, Ordering::Relaxed) {
            self.compensations.notify_one();
        }
    }
}

fn new_saga(customer_id: &str, total: Option<&Money>) -> Option<NewSaga> {
    let total = total.filter(|total| total.amount_minor > 0 && !total.currency.is_empty())?;
    (!customer_id.is_empty()).then(|| NewSaga {
        customer_id: customer_id.to_owned(),
        total: total.clone(),
    })
}
