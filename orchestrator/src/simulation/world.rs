//! The whole simulated system (bus, consumer groups, services, orchestrator) and how each
//! scheduler action changes it. Every action is atomic: crashes happen between actions, and the
//! actions that model a crash say exactly what it loses.

use super::{
    actions::{Action, Call, Sabotage},
    bus::{Bus, Consumer, EventIds, OrderId, Outbox, Topic},
    calls::Calls,
    inventory::Inventory,
    journal::Journal,
    orchestrator::Orchestrator,
    outcomes::{Notifier, Orders},
    payment::Payments,
    workload::Workload,
};
use orderly_saga::StepIndex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    Orders,
    Inventory,
    Payments,
    Notification,
    Orchestrator,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Self::Orders,
        Self::Inventory,
        Self::Payments,
        Self::Notification,
        Self::Orchestrator,
    ];

    /// The topics each service's consumer group reads (as in the real services).
    pub fn subscriptions(self) -> &'static [Topic] {
        match self {
            Self::Orders | Self::Notification => &[Topic::Sagas],
            Self::Inventory => &[Topic::Orders, Topic::Sagas],
            Self::Payments => &[Topic::Inventory, Topic::Sagas],
            Self::Orchestrator => &[Topic::Orders, Topic::Inventory, Topic::Payments],
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Orders => 0,
            Self::Inventory => 1,
            Self::Payments => 2,
            Self::Notification => 3,
            Self::Orchestrator => 4,
        }
    }
}

pub struct World<'w> {
    pub workload: &'w Workload,
    pub sabotage: Sabotage,
    pub placed: usize,
    pub ids: EventIds,
    pub bus: Bus,
    pub consumers: [Consumer; 5],
    pub orders: Orders,
    pub inventory: Inventory,
    pub payments: Payments,
    pub notifier: Notifier,
    pub orchestrator: Orchestrator,
    pub journal: Journal,
    pub trace: Vec<Action>,
}

impl<'w> World<'w> {
    pub fn new(workload: &'w Workload, sabotage: Sabotage, max_attempts: u32) -> Self {
        Self {
            workload,
            sabotage,
            placed: 0,
            ids: EventIds::default(),
            bus: Bus::default(),
            consumers: Service::ALL.map(|service| Consumer::new(service.subscriptions())),
            orders: Orders::new(true),
            inventory: Inventory::new(workload, true),
            payments: Payments::new(workload, true),
            notifier: Notifier::new(sabotage != Sabotage::NotificationWithoutInbox),
            orchestrator: Orchestrator::new(
                orderly_saga::order::v1().expect("the shipped saga is valid"),
                max_attempts,
            ),
            journal: Journal::default(),
            trace: Vec::new(),
        }
    }

    pub fn consumer(&self, service: Service) -> &Consumer {
        &self.consumers[service.index()]
    }

    pub fn outbox(&self, service: Service) -> &Outbox {
        match service {
            Service::Orders => &self.orders.outbox,
            Service::Inventory => &self.inventory.outbox,
            Service::Payments => &self.payments.outbox,
            Service::Notification => &self.notifier.outbox,
            Service::Orchestrator => &self.orchestrator.outbox,
        }
    }

    pub fn inbox_contains(&self, service: Service, id: u64) -> bool {
        match service {
            Service::Orders => self.orders.inbox.contains(id),
            Service::Inventory => self.inventory.inbox.contains(id),
            Service::Payments => self.payments.inbox.contains(id),
            Service::Notification => self.notifier.inbox.contains(id),
            Service::Orchestrator => self.orchestrator.inbox.contains(id),
        }
    }

    pub fn execute(&mut self, action: Action) {
        match &action {
            Action::Place(order) => {
                if let Some(spec) = self.workload.order(*order) {
                    self.orders.place(spec, &mut self.ids);
                    self.placed += 1;
                }
            }
            Action::Deliver {
                to,
                topic,
                partition,
                offset,
                commit,
            } => {
                self.handle(*to, *topic, *partition, *offset);
                let consumer = &mut self.consumers[to.index()];
                consumer.advance(*topic, *partition);
                if *commit {
                    consumer.commit();
                }
            }
            Action::Redeliver {
                to,
                topic,
                partition,
                offset,
            } => self.handle(*to, *topic, *partition, *offset),
            Action::CommitOffsets(service) => self.consumers[service.index()].commit(),
            Action::Crash(service) => self.crash(*service),
            Action::Relay { from, crash } => self.relay(*from, *crash),
            Action::FireDeadline(order) => {
                self.orchestrator
                    .deadline(*order, &mut self.ids, &mut self.journal);
            }
            Action::Compensate { order, step, call } => self.compensate(*order, *step, *call),
            Action::ResumeParked(order) => {
                self.orchestrator
                    .resume(*order, &mut self.ids, &mut self.journal);
            }
        }
        self.trace.push(action);
        self.check_stock();
        self.journal.step += 1;
    }

    fn handle(&mut self, to: Service, topic: Topic, partition: usize, offset: usize) {
        let Some(message) = self.bus.log(topic, partition).get(offset) else {
            return;
        };
        let (ids, journal) = (&mut self.ids, &mut self.journal);
        match to {
            Service::Orders => self.orders.handle(message, journal),
            Service::Inventory => self.inventory.handle(message, ids, journal),
            Service::Payments => self.payments.handle(message, ids, journal),
            Service::Notification => self.notifier.handle(message, journal),
            Service::Orchestrator => self.orchestrator.handle(message, ids, journal),
        }
    }

    /// A process dies: its consumer rewinds to the committed offsets; the orchestrator also
    /// loses its in-memory compensator queue and rebuilds it from the database.
    fn crash(&mut self, service: Service) {
        self.consumers[service.index()].crash();
        if service == Service::Orchestrator {
            self.orchestrator.restart();
        }
    }

    fn relay(&mut self, from: Service, crash: bool) {
        let outbox = match from {
            Service::Orders => &mut self.orders.outbox,
            Service::Inventory => &mut self.inventory.outbox,
            Service::Payments => &mut self.payments.outbox,
            Service::Notification => &mut self.notifier.outbox,
            Service::Orchestrator => &mut self.orchestrator.outbox,
        };
        let Some(row) = outbox.next_unsent().cloned() else {
            return;
        };
        if crash && self.sabotage == Sabotage::RelayMarksSentBeforePublishing {
            outbox.mark_sent(); // the broken order: marked, then died before publishing
        } else {
            self.bus.publish(row);
            if !crash {
                outbox.mark_sent();
            }
        }
        if crash {
            self.crash(from);
        }
    }

    fn compensate(&mut self, order: OrderId, step: StepIndex, call: Call) {
        let calls = Calls::new(
            &mut self.inventory,
            &mut self.payments,
            call,
            self.orchestrator.store.clone(),
            self.journal.step,
        );
        let died = call == Call::SucceedsThenCrash;
        let (ids, journal) = (&mut self.ids, &mut self.journal);
        self.orchestrator
            .compensate(order, step, &calls, died, ids, journal);
        self.journal.merge(calls.into_journal());
        if died {
            self.crash(Service::Orchestrator);
        }
    }

    /// I2 at every step: stock is conserved and never negative.
    fn check_stock(&mut self) {
        for (product, stock) in self.inventory.stock.iter().enumerate() {
            let negative = stock.available < 0 || stock.reserved < 0 || stock.sold < 0;
            if negative || stock.initial != stock.available + stock.reserved + stock.sold {
                self.journal
                    .violation(format!("I2: product {product} stock is {stock:?}"));
            }
        }
    }
}
