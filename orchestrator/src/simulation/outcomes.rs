//! Where a saga's outcome lands: the order service (PENDING, then CONFIRMED or REJECTED; its
//! PlaceOrder writes the OrderPlaced outbox row) and the notification service (one message to
//! the customer per outcome). Both deduplicate through their inbox.

use std::collections::BTreeMap;

use super::{
    bus::{EventIds, Inbox, Message, OrderId, Outbox, Payload},
    journal::{Effect, Journal},
    workload::OrderSpec,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Rejected,
}

/// The order service: PlaceOrder stores the order PENDING with its OrderPlaced outbox row, and
/// the saga outcome moves it on.
#[derive(Debug)]
pub struct Orders {
    pub status: BTreeMap<OrderId, OrderStatus>,
    pub inbox: Inbox,
    pub outbox: Outbox,
}

impl Orders {
    pub fn new(dedup: bool) -> Self {
        Self {
            status: BTreeMap::new(),
            inbox: Inbox::new(dedup),
            outbox: Outbox::default(),
        }
    }

    pub fn place(&mut self, order: &OrderSpec, ids: &mut EventIds) {
        self.status.insert(order.id, OrderStatus::Pending);
        let placed = Payload::OrderPlaced {
            customer: order.customer,
            lines: order.lines.clone(),
            amount: order.amount,
        };
        self.outbox.add(ids.next(order.id, placed));
    }

    pub fn handle(&mut self, message: &Message, journal: &mut Journal) {
        if !self.inbox.first_time(message.id) {
            return;
        }
        let Some(to) = outcome(message, "orders", journal) else {
            return;
        };
        let Some(status) = self.status.get_mut(&message.order) else {
            journal.violation(format!("outcome for unknown order {}", message.order));
            return;
        };
        // I6, checked on every change: only PENDING moves, and only to a final status.
        match *status {
            OrderStatus::Pending => {
                *status = to;
                journal.effect(message.order, Effect::SetStatus);
            }
            OrderStatus::Confirmed | OrderStatus::Rejected if *status == to => {}
            OrderStatus::Confirmed | OrderStatus::Rejected => journal.violation(format!(
                "I6: order {} told {to:?} after {status:?}",
                message.order
            )),
        }
    }
}

/// The notification service: tells the customer each outcome it consumes.
#[derive(Debug)]
pub struct Notifier {
    pub sent: Vec<(OrderId, OrderStatus)>,
    pub inbox: Inbox,
    /// It emits nothing, but every service has an outbox the relay drains.
    pub outbox: Outbox,
}

impl Notifier {
    pub fn new(dedup: bool) -> Self {
        Self {
            sent: Vec::new(),
            inbox: Inbox::new(dedup),
            outbox: Outbox::default(),
        }
    }

    pub fn handle(&mut self, message: &Message, journal: &mut Journal) {
        if !self.inbox.first_time(message.id) {
            return;
        }
        let Some(outcome) = outcome(message, "notification", journal) else {
            return;
        };
        self.sent.push((message.order, outcome));
        journal.effect(message.order, Effect::Notify);
    }
}

/// The order status a saga outcome announces; any other event handed to `service` (which
/// consumes outcomes only) is a violation.
fn outcome(message: &Message, service: &str, journal: &mut Journal) -> Option<OrderStatus> {
    match &message.payload {
        Payload::SagaConfirmed => Some(OrderStatus::Confirmed),
        Payload::SagaRejected { .. } => Some(OrderStatus::Rejected),
        Payload::OrderPlaced { .. }
        | Payload::InventoryReserved { .. }
        | Payload::InventoryRejected { .. }
        | Payload::PaymentAuthorized { .. }
        | Payload::PaymentDeclined { .. }
        | Payload::Step { .. } => {
            journal.violation(format!("{service} was handed {:?}", message.payload));
            None
        }
    }
}
