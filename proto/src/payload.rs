//! An Orderly event as its topic carries it: each topic has one message with one oneof of its
//! own events (`OrderEvent`, `InventoryEvent`, `PaymentEvent`, `SagaEvent`, `CatalogueEvent`,
//! `AccountEvent`), encoded as the
//! envelope's `body`. `Payload` is the union of those, so a consumer names the topics and events
//! it reads and nothing else; every payload also says its type name and its saga facts in the
//! same terms.

use prost::Message;

use crate::{
    events::v1::{
        AccountEvent, CatalogueEvent, InventoryEvent, OrderEvent, PaymentEvent, SagaEvent,
        SagaFacts, account_event, catalogue_event, event_envelope::Legacy, inventory_event,
        order_event, payment_event, saga_event,
    },
    topics,
};

/// An event of one of Orderly's own topics.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// On `orderly.orders.v1`.
    Order(order_event::Event),
    /// On `orderly.inventory.v1`.
    Inventory(inventory_event::Event),
    /// On `orderly.payments.v1`.
    Payment(payment_event::Event),
    /// On `orderly.sagas.v1`.
    Saga(saga_event::Event),
    /// On `orderly.catalogue.v1`.
    Catalogue(catalogue_event::Event),
    /// On `orderly.accounts.v1`.
    Account(account_event::Event),
}

impl Payload {
    /// The topic the event travels on.
    pub fn topic(&self) -> &'static str {
        match self {
            Self::Order(_) => topics::ORDERS,
            Self::Inventory(_) => topics::INVENTORY,
            Self::Payment(_) => topics::PAYMENTS,
            Self::Saga(_) => topics::SAGAS,
            Self::Catalogue(_) => topics::CATALOGUE,
            Self::Account(_) => topics::ACCOUNTS,
        }
    }

    /// The event's message name, e.g. `OrderPlaced` (the envelope's `event_type`).
    pub fn event_type(&self) -> &'static str {
        use {inventory_event::Event as I, payment_event::Event as P, saga_event::Event as S};
        match self {
            Self::Order(order_event::Event::OrderPlaced(_)) => "OrderPlaced",
            Self::Inventory(I::InventoryReserved(_)) => "InventoryReserved",
            Self::Inventory(I::InventoryRejected(_)) => "InventoryRejected",
            Self::Payment(P::PaymentAuthorized(_)) => "PaymentAuthorized",
            Self::Payment(P::PaymentDeclined(_)) => "PaymentDeclined",
            Self::Saga(S::SagaConfirmed(_)) => "SagaConfirmed",
            Self::Saga(S::SagaRejected(_)) => "SagaRejected",
            Self::Catalogue(catalogue_event::Event::ProductPriced(_)) => "ProductPriced",
            Self::Account(account_event::Event::AccountOpened(_)) => "AccountOpened",
        }
    }

    /// The customer, the amount at stake and, for a failure, why (nothing for the catalogue's
    /// and the accounts' events, which are about no saga).
    pub fn saga_facts(&self) -> SagaFacts {
        use {inventory_event::Event as I, payment_event::Event as P, saga_event::Event as S};
        let (customer_id, total, reason) = match self {
            Self::Order(order_event::Event::OrderPlaced(e)) => {
                (&e.customer_id, e.total.as_ref(), "")
            }
            Self::Inventory(I::InventoryReserved(e)) => (&e.customer_id, e.total.as_ref(), ""),
            Self::Inventory(I::InventoryRejected(e)) => {
                (&e.customer_id, e.total.as_ref(), e.reason.as_str())
            }
            Self::Payment(P::PaymentAuthorized(e)) => (&e.customer_id, e.amount.as_ref(), ""),
            Self::Payment(P::PaymentDeclined(e)) => {
                (&e.customer_id, e.amount.as_ref(), e.reason.as_str())
            }
            Self::Saga(S::SagaConfirmed(e)) => (&e.customer_id, e.total.as_ref(), ""),
            Self::Saga(S::SagaRejected(e)) => (&e.customer_id, None, e.reason.as_str()),
            Self::Catalogue(_) | Self::Account(_) => return SagaFacts::default(),
        };
        SagaFacts {
            customer_id: customer_id.clone(),
            total: total.cloned(),
            reason: reason.to_owned(),
        }
    }

    /// The topic's message, encoded: the envelope's `body`.
    pub fn encode_body(&self) -> Vec<u8> {
        let event = self.clone();
        match event {
            Self::Order(event) => OrderEvent { event: Some(event) }.encode_to_vec(),
            Self::Inventory(event) => InventoryEvent { event: Some(event) }.encode_to_vec(),
            Self::Payment(event) => PaymentEvent { event: Some(event) }.encode_to_vec(),
            Self::Saga(event) => SagaEvent { event: Some(event) }.encode_to_vec(),
            Self::Catalogue(event) => CatalogueEvent { event: Some(event) }.encode_to_vec(),
            Self::Account(event) => AccountEvent { event: Some(event) }.encode_to_vec(),
        }
    }

    /// Decodes a `body` read from `topic`: `Ok(None)` for a topic this build has no message
    /// for (a participant a saga definition added) or an event its topic's message does not
    /// know yet (a newer producer's).
    pub fn decode(topic: &str, body: &[u8]) -> Result<Option<Self>, prost::DecodeError> {
        Ok(match topic {
            topics::ORDERS => OrderEvent::decode(body)?.event.map(Self::Order),
            topics::INVENTORY => InventoryEvent::decode(body)?.event.map(Self::Inventory),
            topics::PAYMENTS => PaymentEvent::decode(body)?.event.map(Self::Payment),
            topics::SAGAS => SagaEvent::decode(body)?.event.map(Self::Saga),
            topics::CATALOGUE => CatalogueEvent::decode(body)?.event.map(Self::Catalogue),
            topics::ACCOUNTS => AccountEvent::decode(body)?.event.map(Self::Account),
            _ => None,
        })
    }

    /// The event as schema version 1 carried it; `None` for events that came after it (no
    /// consumer of version 1 reads their topics).
    pub fn to_legacy(&self) -> Option<Legacy> {
        use {inventory_event::Event as I, payment_event::Event as P, saga_event::Event as S};
        Some(match self.clone() {
            Self::Order(order_event::Event::OrderPlaced(e)) => Legacy::OrderPlaced(e),
            Self::Inventory(I::InventoryReserved(e)) => Legacy::InventoryReserved(e),
            Self::Inventory(I::InventoryRejected(e)) => Legacy::InventoryRejected(e),
            Self::Payment(P::PaymentAuthorized(e)) => Legacy::PaymentAuthorized(e),
            Self::Payment(P::PaymentDeclined(e)) => Legacy::PaymentDeclined(e),
            Self::Saga(S::SagaConfirmed(e)) => Legacy::SagaConfirmed(e),
            Self::Saga(S::SagaRejected(e)) => Legacy::SagaRejected(e),
            Self::Catalogue(_) | Self::Account(_) => return None,
        })
    }

    /// An event written under schema version 1.
    pub fn from_legacy(legacy: Legacy) -> Self {
        use {inventory_event::Event as I, payment_event::Event as P, saga_event::Event as S};
        match legacy {
            Legacy::OrderPlaced(e) => Self::Order(order_event::Event::OrderPlaced(e)),
            Legacy::InventoryReserved(e) => Self::Inventory(I::InventoryReserved(e)),
            Legacy::InventoryRejected(e) => Self::Inventory(I::InventoryRejected(e)),
            Legacy::PaymentAuthorized(e) => Self::Payment(P::PaymentAuthorized(e)),
            Legacy::PaymentDeclined(e) => Self::Payment(P::PaymentDeclined(e)),
            Legacy::SagaConfirmed(e) => Self::Saga(S::SagaConfirmed(e)),
            Legacy::SagaRejected(e) => Self::Saga(S::SagaRejected(e)),
        }
    }
}
