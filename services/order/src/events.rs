//! What the order service consumes: the saga's outcome, which moves the order from PENDING to
//! CONFIRMED or REJECTED (with the reason), once, and then wakes the order's WatchOrder streams.

use orderly_common::kafka::envelope::Payload;
use orderly_common::{
    kafka::{envelope::Event, topics},
    messaging::{Handler, HandlerError},
};
use orderly_proto::events::v1::saga_event::Event as Outcome;
use sea_orm::DatabaseTransaction;

use crate::{domain::OrderStatus, store::orders, watch::Hub};

pub const CONSUMER: &str = "order";
pub const TOPICS: &[&str] = &[topics::SAGAS];

pub struct Outcomes {
    pub watchers: Hub,
}

impl Handler for Outcomes {
    async fn handle(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), HandlerError> {
        // The consumer hands over only events it understands (`Handler::understands`).
        let Some(payload) = &event.payload else {
            return Ok(());
        };
        let (status, reason) = match payload {
            Payload::Saga(Outcome::SagaConfirmed(_)) => (OrderStatus::Confirmed, ""),
            Payload::Saga(Outcome::SagaRejected(rejected)) => {
                (OrderStatus::Rejected, rejected.reason.as_str())
            }
            Payload::Order(_) | Payload::Inventory(_) | Payload::Payment(_) => {
                return Err(HandlerError::Invalid(format!(
                    "order does not consume {}",
                    event.envelope.event_type
                )));
            }
        };
        if orders::decide(txn, event.order_id, status, reason).await? {
            tracing::info!(order_id = %event.order_id, status = status.as_str(), reason, "order decided");
        } else if orders::find(txn, event.order_id).await?.is_none() {
            return Err(HandlerError::Invalid(format!(
                "no order {}",
                event.order_id
            )));
        }
        Ok(())
    }

    fn committed(&self, event: &Event) {
        // Only outcomes reach here (anything else was refused and dead-lettered), and only after
        // the commit, so a woken stream reads the decision itself.
        self.watchers.notify(event.order_id);
    }
}
