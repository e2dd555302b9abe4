//! Generated sagas: chains of 1 to 6 steps, with or without a pivot, each step run by its own
//! participant that holds something for the order (a seat, a shipment) or refuses, keeps it
//! when the saga is confirmed and gives it back through its compensation RPC. The order service,
//! the notifier and the orchestrator are the same as for the shipped saga.

use std::{cmp::Ordering, collections::BTreeMap};

use orderly_proto::topics;
use orderly_saga::{Definition, StepIndex};
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::{
    bus::{EventIds, Inbox, Message, OrderId, Outbox, Payload, RpcError},
    journal::{Effect, Journal},
    workload::{Kind, Workload},
};

/// The most steps a generated saga has.
pub const MAX_STEPS: usize = 6;
/// The topic each step reports to.
pub const TOPICS: [&str; MAX_STEPS] = ["sim.p0", "sim.p1", "sim.p2", "sim.p3", "sim.p4", "sim.p5"];
const DONE: [&str; MAX_STEPS] = ["P0Done", "P1Done", "P2Done", "P3Done", "P4Done", "P5Done"];
const REFUSED: [&str; MAX_STEPS] = [
    "P0Refused",
    "P1Refused",
    "P2Refused",
    "P3Refused",
    "P4Refused",
    "P5Refused",
];

/// The saga's shape: how many steps, and its pivot if it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub steps: usize,
    pub pivot: Option<StepIndex>,
}

impl Shape {
    pub fn generate(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5A6A_5A6A);
        let steps = rng.random_range(1..=MAX_STEPS);
        let pivot = rng.random_bool(0.5).then(|| rng.random_range(0..steps));
        Self { steps, pivot }
    }

    /// The steps that may refuse: all of them, or up to the pivot (a later one only retries).
    pub fn may_refuse(&self, step: StepIndex) -> bool {
        self.pivot.is_none_or(|pivot| step <= pivot)
    }

    /// The definition: it starts on OrderPlaced, like the shipped saga, and each step starts
    /// on the previous one's success.
    pub fn definition(&self) -> Definition {
        let mut builder = Definition::named("generated", 1).trigger_topic(topics::ORDERS);
        for step in 0..self.steps {
            let starts_on = step
                .checked_sub(1)
                .map_or("OrderPlaced", |before| DONE[before]);
            builder = builder
                .step(format!("s{step}"))
                .by(participant(step))
                .starts_on(starts_on)
                .reports_to(TOPICS[step])
                .succeeds_on(DONE[step]);
            if self.may_refuse(step) {
                builder = builder.fails_on(REFUSED[step]);
            }
            builder = match self.pivot.map(|pivot| step.cmp(&pivot)) {
                None | Some(Ordering::Less) => builder.compensated_by(format!("/sim.P{step}/Undo")),
                Some(Ordering::Equal) => builder.pivot(),
                Some(Ordering::Greater) => builder,
            };
        }
        builder
            .build()
            .expect("a generated chain is a valid definition")
    }
}

pub fn participant(step: StepIndex) -> String {
    format!("p{step}")
}

/// The event type of a step's answer.
pub fn event_type(step: StepIndex, refused: bool) -> &'static str {
    if refused { REFUSED[step] } else { DONE[step] }
}

/// What a step's participant holds for an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    Held,
    Refused,
    GivenBack,
    Kept,
}

/// The participant of one step.
#[derive(Debug)]
pub struct StepParticipant {
    pub step: StepIndex,
    pub holds: BTreeMap<OrderId, Hold>,
    pub inbox: Inbox,
    pub outbox: Outbox,
}

impl StepParticipant {
    pub fn new(step: StepIndex) -> Self {
        Self {
            step,
            holds: BTreeMap::new(),
            inbox: Inbox::new(true),
            outbox: Outbox::default(),
        }
    }

    /// Whether `payload` is the event this step starts on.
    fn starts_on(&self, payload: &Payload) -> bool {
        match (self.step.checked_sub(1), payload) {
            (None, Payload::OrderPlaced { .. }) => true,
            (Some(before), Payload::Step { step, refused, .. }) => *step == before && !refused,
            _ => false,
        }
    }

    pub fn handle(
        &mut self,
        message: &Message,
        workload: &Workload,
        ids: &mut EventIds,
        journal: &mut Journal,
    ) {
        if !self.inbox.first_time(message.id) {
            return;
        }
        let order = message.order;
        let step = self.step;
        if self.starts_on(&message.payload) {
            if self.holds.contains_key(&order) {
                return; // decided already
            }
            let Some(spec) = workload.order(order) else {
                journal.violation(format!("p{step} was handed unknown order {order}"));
                return;
            };
            let refused = spec.kind == Kind::RefusedAt(step);
            let (hold, effect) = if refused {
                (Hold::Refused, Effect::Refuse(step))
            } else {
                (Hold::Held, Effect::Hold(step))
            };
            self.holds.insert(order, hold);
            journal.effect(order, effect);
            let answer = Payload::Step {
                step,
                refused,
                customer: spec.customer,
                amount: spec.amount,
            };
            self.outbox.add(ids.next(order, answer));
            return;
        }
        if message.payload == Payload::SagaConfirmed && self.holds.get(&order) == Some(&Hold::Held)
        {
            self.holds.insert(order, Hold::Kept);
            journal.effect(order, Effect::Keep(step));
        }
        // Anything else on these topics (an earlier step refusing, a rejection) changes
        // nothing here: a rejection is undone through the compensation RPC.
    }

    /// The compensation RPC: idempotent; it never undoes what a confirmed saga kept.
    pub fn give_back(&mut self, order: OrderId, journal: &mut Journal) -> Result<(), RpcError> {
        match self.holds.get(&order) {
            None => Err(RpcError::NotFound),
            Some(Hold::Refused | Hold::GivenBack) => Ok(()),
            Some(Hold::Kept) => Err(RpcError::FailedPrecondition),
            Some(Hold::Held) => {
                self.holds.insert(order, Hold::GivenBack);
                journal.effect(order, Effect::GiveBack(self.step));
                Ok(())
            }
        }
    }
}
