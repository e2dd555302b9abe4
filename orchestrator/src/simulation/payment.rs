//! The payment service as a small state machine: authorizes (holds) the order total on
//! InventoryReserved or declines it, captures at most once on SagaConfirmed, and refunds
//! through the idempotent compensation RPC.

use std::collections::BTreeMap;

use super::{
    bus::{EventIds, Inbox, Message, OrderId, Outbox, Payload, RpcError},
    journal::{Effect, Journal},
    workload::Workload,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    Authorized,
    Declined,
    Captured,
    Refunded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payment {
    pub customer: usize,
    pub amount: i64,
    pub status: PaymentStatus,
}

impl Payment {
    /// What the customer is out of pocket for this order right now.
    pub fn charge(&self) -> i64 {
        match self.status {
            PaymentStatus::Authorized | PaymentStatus::Captured => self.amount,
            PaymentStatus::Declined | PaymentStatus::Refunded => 0,
        }
    }
}

#[derive(Debug)]
pub struct Payments {
    /// Spendable balance per customer (held money is already taken out).
    pub balances: Vec<i64>,
    pub payments: BTreeMap<OrderId, Payment>,
    pub inbox: Inbox,
    pub outbox: Outbox,
}

impl Payments {
    pub fn new(workload: &Workload, dedup: bool) -> Self {
        Self {
            balances: workload.balances.clone(),
            payments: BTreeMap::new(),
            inbox: Inbox::new(dedup),
            outbox: Outbox::default(),
        }
    }

    pub fn handle(&mut self, message: &Message, ids: &mut EventIds, journal: &mut Journal) {
        if !self.inbox.first_time(message.id) {
            return;
        }
        let order = message.order;
        match &message.payload {
            Payload::InventoryReserved { customer, amount } => {
                if self.payments.contains_key(&order) {
                    return;
                }
                let (customer, amount) = (*customer, *amount);
                let (status, reply) = if self.balances[customer] >= amount {
                    self.balances[customer] -= amount;
                    journal.effect(order, Effect::Authorize);
                    let reply = Payload::PaymentAuthorized { customer, amount };
                    (PaymentStatus::Authorized, reply)
                } else {
                    journal.effect(order, Effect::Decline);
                    let reason = "insufficient funds".to_owned();
                    let reply = Payload::PaymentDeclined {
                        customer,
                        amount,
                        reason,
                    };
                    (PaymentStatus::Declined, reply)
                };
                let payment = Payment {
                    customer,
                    amount,
                    status,
                };
                self.payments.insert(order, payment);
                self.outbox.add(ids.next(order, reply));
            }
            Payload::SagaConfirmed => {
                if let Some(payment) = self.payments.get_mut(&order)
                    && payment.status == PaymentStatus::Authorized
                {
                    payment.status = PaymentStatus::Captured;
                    journal.effect(order, Effect::Capture);
                }
            }
            Payload::InventoryRejected { .. } | Payload::SagaRejected { .. } => {}
            Payload::OrderPlaced { .. }
            | Payload::PaymentAuthorized { .. }
            | Payload::PaymentDeclined { .. }
            | Payload::Step { .. } => {
                journal.violation(format!("payment was handed {:?}", message.payload));
            }
        }
    }

    /// The RefundPayment RPC: idempotent; gives back held money, and refuses a captured
    /// payment (its order was confirmed).
    pub fn refund(&mut self, order: OrderId, journal: &mut Journal) -> Result<(), RpcError> {
        let Some(payment) = self.payments.get_mut(&order) else {
            return Err(RpcError::NotFound);
        };
        match payment.status {
            PaymentStatus::Captured => Err(RpcError::FailedPrecondition),
            PaymentStatus::Authorized => {
                self.balances[payment.customer] += payment.amount;
                payment.status = PaymentStatus::Refunded;
                journal.effect(order, Effect::Refund);
                Ok(())
            }
            PaymentStatus::Declined | PaymentStatus::Refunded => Ok(()),
        }
    }
}
