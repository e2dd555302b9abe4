//! The whole simulated system (bus, consumer groups, services, orchestrator) and how each
//! scheduler action changes it. Every action is atomic: crashes happen between actions, and the
//! actions that model a crash say exactly what it loses.

use std::collections::BTreeMap;

use super::{
    actions::{Action, Call, Sabotage},
    bus::{Bus, Consumer, EventIds, OrderId, Outbox, RpcError, Topic},
    calls::Calls,
    generated::{self, Shape, StepParticipant},
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
    /// The participant of a generated saga's step.
    Step(StepIndex),
    Notification,
    Orchestrator,
}

/// Which saga the world runs, and so which participants it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saga {
    /// The saga Orderly ships: inventory, then payment.
    Shipped,
    Generated(Shape),
}

pub struct World<'w> {
    pub workload: &'w Workload,
    pub saga: Saga,
    pub sabotage: Sabotage,
    pub placed: usize,
    pub ids: EventIds,
    pub bus: Bus,
    pub consumers: BTreeMap<Service, Consumer>,
    pub orders: Orders,
    pub inventory: Inventory,
    pub payments: Payments,
    pub steps: Vec<StepParticipant>,
    pub notifier: Notifier,
    pub orchestrator: Orchestrator,
    pub journal: Journal,
    pub trace: Vec<Action>,
}

impl<'w> World<'w> {
    pub fn new(workload: &'w Workload, saga: Saga, sabotage: Sabotage, max_attempts: u32) -> Self {
        let (definition, steps) = match saga {
            Saga::Shipped => (
                orderly_saga::order::v1().expect("the shipped saga is valid"),
                0,
            ),
            Saga::Generated(shape) => (shape.definition(), shape.steps),
        };
        let mut world = Self {
            workload,
            saga,
            sabotage,
            placed: 0,
            ids: EventIds::default(),
            bus: Bus::default(),
            consumers: BTreeMap::new(),
            orders: Orders::new(true),
            inventory: Inventory::new(workload, true),
            payments: Payments::new(workload, true),
            steps: (0..steps).map(StepParticipant::new).collect(),
            notifier: Notifier::new(sabotage != Sabotage::NotificationWithoutInbox),
            orchestrator: Orchestrator::new(definition, max_attempts),
            journal: Journal::default(),
            trace: Vec::new(),
        };
        for service in world.services() {
            let consumer = Consumer::new(world.subscriptions(service));
            world.consumers.insert(service, consumer);
        }
        world
    }

    /// Every service running, in a fixed order.
    pub fn services(&self) -> Vec<Service> {
        let participants = match self.saga {
            Saga::Shipped => vec![Service::Inventory, Service::Payments],
            Saga::Generated(_) => (0..self.steps.len()).map(Service::Step).collect(),
        };
        let mut services = vec![Service::Orders];
        services.extend(participants);
        services.extend([Service::Notification, Service::Orchestrator]);
        services
    }

    /// The topics each service's consumer group reads (as in the real services): the
    /// orchestrator reads what its definition names, a step's participant the event it starts
    /// on and the outcomes.
    pub fn subscriptions(&self, service: Service) -> Vec<Topic> {
        match service {
            Service::Orders | Service::Notification => vec![Topic::SAGAS],
            Service::Inventory => vec![Topic::ORDERS, Topic::SAGAS],
            Service::Payments => vec![Topic::INVENTORY, Topic::SAGAS],
            Service::Step(step) => {
                let start = step
                    .checked_sub(1)
                    .map_or(Topic::ORDERS, |before| Topic(generated::TOPICS[before]));
                vec![start, Topic::SAGAS]
            }
            Service::Orchestrator => {
                let definition = self.orchestrator.definition();
                let topics = definition.topics().into_iter();
                topics.filter_map(Topic::named).collect()
            }
        }
    }

    pub fn consumer(&self, service: Service) -> &Consumer {
        &self.consumers[&service]
    }

    fn consumer_mut(&mut self, service: Service) -> &mut Consumer {
        self.consumers
            .get_mut(&service)
            .expect("every service has a consumer")
    }

    pub fn outbox(&self, service: Service) -> &Outbox {
        match service {
            Service::Orders => &self.orders.outbox,
            Service::Inventory => &self.inventory.outbox,
            Service::Payments => &self.payments.outbox,
            Service::Step(step) => &self.steps[step].outbox,
            Service::Notification => &self.notifier.outbox,
            Service::Orchestrator => &self.orchestrator.outbox,
        }
    }

    fn outbox_mut(&mut self, service: Service) -> &mut Outbox {
        match service {
            Service::Orders => &mut self.orders.outbox,
            Service::Inventory => &mut self.inventory.outbox,
            Service::Payments => &mut self.payments.outbox,
            Service::Step(step) => &mut self.steps[step].outbox,
            Service::Notification => &mut self.notifier.outbox,
            Service::Orchestrator => &mut self.orchestrator.outbox,
        }
    }

    pub fn inbox_contains(&self, service: Service, id: u64) -> bool {
        match service {
            Service::Orders => self.orders.inbox.contains(id),
            Service::Inventory => self.inventory.inbox.contains(id),
            Service::Payments => self.payments.inbox.contains(id),
            Service::Step(step) => self.steps[step].inbox.contains(id),
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
                let consumer = self.consumer_mut(*to);
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
            Action::CommitOffsets(service) => self.consumer_mut(*service).commit(),
            Action::Crash(service) => self.crash(*service),
            Action::Relay { from, crash } => self.relay(*from, *crash),
            Action::FireDeadline(order) => {
                self.orchestrator
                    .deadline(*order, &mut self.ids, &mut self.journal);
            }
            Action::Compensate { order, step, call } => self.compensate(*order, *step, *call),
            Action::ResolveByHand { order, step } => self.resolve_by_hand(*order, *step),
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
            Service::Step(step) => self.steps[step].handle(message, self.workload, ids, journal),
            Service::Notification => self.notifier.handle(message, journal),
            Service::Orchestrator => self.orchestrator.handle(message, ids, journal),
        }
    }

    /// A process dies: its consumer rewinds to the committed offsets; the orchestrator also
    /// loses its in-memory compensator queue and rebuilds it from the database.
    fn crash(&mut self, service: Service) {
        self.consumer_mut(service).crash();
        if service == Service::Orchestrator {
            self.orchestrator.restart();
        }
    }

    fn relay(&mut self, from: Service, crash: bool) {
        let Some(row) = self.outbox(from).next_unsent().cloned() else {
            return;
        };
        if crash && self.sabotage == Sabotage::RelayMarksSentBeforePublishing {
            self.outbox_mut(from).mark_sent(); // the broken order: marked, then died before publishing
        } else {
            self.bus.publish(row);
            if !crash {
                self.outbox_mut(from).mark_sent();
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
            &mut self.steps,
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

    fn resolve_by_hand(&mut self, order: OrderId, step: StepIndex) {
        let undone = match self.steps.get_mut(step) {
            Some(participant) => participant.give_back(order, &mut self.journal),
            // The shipped saga compensates every step it has.
            None => Err(RpcError::NotFound),
        };
        if let Err(error) = undone {
            let what = format!("operator could not undo step {step} of {order}: {error:?}");
            self.journal.violation(what);
        }
        self.orchestrator
            .resolve(order, step, &mut self.ids, &mut self.journal);
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
