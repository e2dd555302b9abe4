//! What notification consumes: each saga outcome, told to the customer once (invariant I7).

use orderly_common::kafka::envelope::Payload;
use orderly_common::{
    kafka::{envelope::Event, topics},
    messaging::{Handler, HandlerError},
};
use orderly_proto::{events::v1::saga_event::Event as Outcome, notification::v1::NotificationKind};
use sea_orm::DatabaseTransaction;
use uuid::Uuid;

use crate::{
    sink::{Failure, Sink},
    store::notifications,
};

pub const CONSUMER: &str = "notification";
pub const TOPICS: &[&str] = &[topics::SAGAS];

pub struct Notifier {
    pub sink: Sink,
}

impl Handler for Notifier {
    async fn handle(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), HandlerError> {
        // The consumer hands over only events it understands (`Handler::understands`).
        let Some(payload) = &event.payload else {
            return Ok(());
        };
        let (kind, customer_id, message) = match payload {
            Payload::Saga(Outcome::SagaConfirmed(confirmed)) => (
                NotificationKind::OrderConfirmed,
                &confirmed.customer_id,
                format!("your order {} is confirmed", event.order_id),
            ),
            Payload::Saga(Outcome::SagaRejected(rejected)) => (
                NotificationKind::OrderRejected,
                &rejected.customer_id,
                format!(
                    "your order {} was rejected: {}",
                    event.order_id, rejected.reason
                ),
            ),
            Payload::Order(_)
            | Payload::Inventory(_)
            | Payload::Payment(_)
            | Payload::Catalogue(_)
            | Payload::Account(_) => {
                return Err(HandlerError::Invalid(format!(
                    "notification does not consume {}",
                    event.envelope.event_type
                )));
            }
        };
        let notification = notifications::Model {
            id: Uuid::now_v7(),
            order_id: event.order_id,
            customer_id: customer_id.clone(),
            kind: kind.as_str_name().to_owned(),
            channel: self.sink.channel().to_owned(),
            message,
            sent_at: orderly_common::time::now(),
        };
        if notifications::record(txn, notification.clone()).await? {
            // A sink that fails for now (a webhook down) is retried, blocking: nothing is lost.
            // One that refuses for good (a 4xx) is dead-lettered, and the record rolls back with
            // it, so a redrive once the receiver is repaired delivers it.
            self.sink
                .deliver(&notification)
                .await
                .map_err(|failure| match failure {
                    Failure::Transient(error) => HandlerError::Transient(sea_orm::DbErr::Custom(
                        format!("notification sink: {error}"),
                    )),
                    Failure::Permanent(error) => {
                        HandlerError::Invalid(format!("notification sink refused it: {error}"))
                    }
                })?;
        }
        Ok(())
    }
}
