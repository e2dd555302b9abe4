//! What the order service consumes: the saga's outcome, which moves the order from PENDING to
//! CONFIRMED or REJECTED (with the reason), once, and then wakes the order's WatchOrder streams;
//! and the catalogue's and the accounts' events, which keep its projections of prices and
//! customers for PlaceOrder.

use orderly_common::kafka::envelope::Payload;
use orderly_common::{
    kafka::{envelope::Event, topics},
    messaging::{Handler, HandlerError},
};
use orderly_proto::events::v1::{
    account_event::Event as AccountEvent, catalogue_event::Event as CatalogueEvent,
    saga_event::Event as Outcome,
};
use sea_orm::DatabaseTransaction;

use crate::{
    domain::OrderStatus,
    store::{accounts, catalogue, orders},
    watch::{Hub, customer},
};

pub const CONSUMER: &str = "order";
pub const TOPICS: &[&str] = &[topics::SAGAS, topics::CATALOGUE, topics::ACCOUNTS];

pub struct Reactions {
    pub watchers: Hub,
}

impl Handler for Reactions {
    async fn handle(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), HandlerError> {
        // The consumer hands over only events it understands (`Handler::understands`).
        let Some(payload) = &event.payload else {
            return Ok(());
        };
        match payload {
            Payload::Saga(outcome) => decide(txn, event, outcome).await,
            Payload::Catalogue(CatalogueEvent::ProductPriced(priced)) => {
                let price = priced.unit_price.clone().ok_or_else(|| {
                    HandlerError::Invalid(format!("ProductPriced {} has no price", priced.sku))
                })?;
                let version = i64::try_from(priced.version).map_err(|_| {
                    HandlerError::Invalid(format!("ProductPriced {} version", priced.sku))
                })?;
                let learnt = catalogue::Model {
                    sku: priced.sku.clone(),
                    unit_price_minor: price.amount_minor,
                    currency: price.currency,
                    version,
                };
                Ok(catalogue::learn(txn, vec![learnt]).await?)
            }
            Payload::Account(AccountEvent::AccountOpened(opened)) => {
                Ok(accounts::learn(txn, &opened.customer_id, &opened.currency).await?)
            }
            Payload::Order(_) | Payload::Inventory(_) | Payload::Payment(_) => {
                Err(HandlerError::Invalid(format!(
                    "order does not consume {}",
                    event.envelope.event_type
                )))
            }
        }
    }

    fn committed(&self, event: &Event) {
        // Only after the commit, so a woken stream reads the decision itself.
        if matches!(event.payload, Some(Payload::Saga(_))) {
            self.watchers.notify(event.order_id);
            let customer_id = event.saga_facts().customer_id;
            self.watchers.notify(customer::customer_key(&customer_id));
        }
    }
}

async fn decide(
    txn: &DatabaseTransaction,
    event: &Event,
    outcome: &Outcome,
) -> Result<(), HandlerError> {
    let (status, reason) = match outcome {
        Outcome::SagaConfirmed(_) => (OrderStatus::Confirmed, ""),
        Outcome::SagaRejected(rejected) => (OrderStatus::Rejected, rejected.reason.as_str()),
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
