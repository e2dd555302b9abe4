//! The inventory service as a small state machine: reserves all of an order's items or none on
//! OrderPlaced (through its inbox, writing its outbox in the same step), sells the reservation
//! on SagaConfirmed, and releases it through the idempotent compensation RPC.

use std::collections::BTreeMap;

use super::{
    bus::{EventIds, Inbox, Message, OrderId, Outbox, Payload, RpcError},
    journal::{Effect, Journal},
    workload::{Line, Workload},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stock {
    pub initial: i64,
    pub available: i64,
    pub reserved: i64,
    pub sold: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reservation {
    Reserved(Vec<Line>),
    Released(Vec<Line>),
    Committed(Vec<Line>),
}

#[derive(Debug)]
pub struct Inventory {
    pub stock: Vec<Stock>,
    pub reservations: BTreeMap<OrderId, Reservation>,
    pub inbox: Inbox,
    pub outbox: Outbox,
}

impl Inventory {
    pub fn new(workload: &Workload, dedup: bool) -> Self {
        let stock = workload
            .products
            .iter()
            .map(|product| Stock {
                initial: product.initial,
                available: product.initial,
                reserved: 0,
                sold: 0,
            })
            .collect();
        Self {
            stock,
            reservations: BTreeMap::new(),
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
            Payload::OrderPlaced {
                customer,
                lines,
                amount,
            } => {
                if self.reservations.contains_key(&order) {
                    return; // decided already (the real store keys reservations by order)
                }
                let (customer, amount) = (*customer, *amount);
                let reply = if lines
                    .iter()
                    .all(|line| self.stock[line.product].available >= line.quantity)
                {
                    for line in lines {
                        let stock = &mut self.stock[line.product];
                        stock.available -= line.quantity;
                        stock.reserved += line.quantity;
                    }
                    self.reservations
                        .insert(order, Reservation::Reserved(lines.clone()));
                    journal.effect(order, Effect::Reserve);
                    Payload::InventoryReserved { customer, amount }
                } else {
                    // All or nothing: a refusal reserves nothing and, like the real store,
                    // leaves no row.
                    journal.effect(order, Effect::RefuseStock);
                    let reason = "insufficient stock".to_owned();
                    Payload::InventoryRejected {
                        customer,
                        amount,
                        reason,
                    }
                };
                self.outbox.add(ids.next(order, reply));
            }
            Payload::SagaConfirmed => {
                if let Some(Reservation::Reserved(lines)) = self.reservations.get(&order) {
                    let lines = lines.clone();
                    for line in &lines {
                        let stock = &mut self.stock[line.product];
                        stock.reserved -= line.quantity;
                        stock.sold += line.quantity;
                    }
                    self.reservations
                        .insert(order, Reservation::Committed(lines));
                    journal.effect(order, Effect::SellStock);
                }
            }
            // Releases come through the RPC; the outcome itself changes nothing here.
            Payload::SagaRejected { .. } => {}
            Payload::InventoryReserved { .. }
            | Payload::InventoryRejected { .. }
            | Payload::PaymentAuthorized { .. }
            | Payload::PaymentDeclined { .. }
            | Payload::Step { .. } => {
                journal.violation(format!("inventory was handed {:?}", message.payload));
            }
        }
    }

    /// The ReleaseReservation RPC: idempotent.
    pub fn release(&mut self, order: OrderId, journal: &mut Journal) -> Result<(), RpcError> {
        match self.reservations.get(&order) {
            None => Err(RpcError::NotFound),
            Some(Reservation::Released(_)) => Ok(()),
            Some(Reservation::Committed(_)) => Err(RpcError::FailedPrecondition),
            Some(Reservation::Reserved(lines)) => {
                let lines = lines.clone();
                for line in &lines {
                    let stock = &mut self.stock[line.product];
                    stock.reserved -= line.quantity;
                    stock.available += line.quantity;
                }
                self.reservations
                    .insert(order, Reservation::Released(lines));
                journal.effect(order, Effect::Release);
                Ok(())
            }
        }
    }
}
