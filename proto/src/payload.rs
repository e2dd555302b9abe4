//! What every event payload says in the same terms: its type name (the envelope's
//! `event_type`) and the saga facts the orchestrator follows it by.

use crate::events::v1::{SagaFacts, event_envelope::Payload};

impl Payload {
    /// The payload's message name, e.g. `OrderPlaced`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::OrderPlaced(_) => "OrderPlaced",
            Self::InventoryReserved(_) => "InventoryReserved",
            Self::InventoryRejected(_) => "InventoryRejected",
            Self::PaymentAuthorized(_) => "PaymentAuthorized",
            Self::PaymentDeclined(_) => "PaymentDeclined",
            Self::SagaConfirmed(_) => "SagaConfirmed",
            Self::SagaRejected(_) => "SagaRejected",
        }
    }

    /// The customer, the amount at stake and, for a failure, why.
    pub fn saga_facts(&self) -> SagaFacts {
        let (customer_id, total, reason) = match self {
            Self::OrderPlaced(e) => (&e.customer_id, e.total.as_ref(), ""),
            Self::InventoryReserved(e) => (&e.customer_id, e.total.as_ref(), ""),
            Self::InventoryRejected(e) => (&e.customer_id, e.total.as_ref(), e.reason.as_str()),
            Self::PaymentAuthorized(e) => (&e.customer_id, e.amount.as_ref(), ""),
            Self::PaymentDeclined(e) => (&e.customer_id, e.amount.as_ref(), e.reason.as_str()),
            Self::SagaConfirmed(e) => (&e.customer_id, e.total.as_ref(), ""),
            Self::SagaRejected(e) => (&e.customer_id, None, e.reason.as_str()),
        };
        SagaFacts {
            customer_id: customer_id.clone(),
            total: total.cloned(),
            reason: reason.to_owned(),
        }
    }
}
