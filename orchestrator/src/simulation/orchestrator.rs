//! The orchestrator runtime, modelled around the REAL saga core: each event is one atomic
//! commit of saga state + inbox + outbox + timer; compensations to run are kept in memory and
//! rebuilt from the persisted steps after a crash, like the real compensator does.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use orderly_saga::{Definition, Outcome, StepIndex};

use super::{
    bus::{EventIds, Inbox, Message, OrderId, Outbox, Payload},
    journal::{Effect, Journal},
};
use crate::core::{Command, Event, Phase, Saga, Step, transition};

/// What the sagas database holds for one order.
#[derive(Clone, Debug)]
pub struct SagaRow {
    pub saga: Saga,
    /// Failed attempts per compensation (the real `steps.attempts` column).
    pub attempts: BTreeMap<StepIndex, u32>,
    /// Whether the deadline (not a step's answer) decided this saga's rejection.
    pub decided_by_deadline: bool,
}

#[derive(Debug)]
pub struct Orchestrator {
    // Persisted, committed atomically per applied event.
    pub sagas: BTreeMap<OrderId, SagaRow>,
    pub inbox: Inbox,
    pub outbox: Outbox,
    // In memory only: lost by a crash.
    /// Compensations the core asked for, to be run by the compensator.
    pub work: BTreeSet<(OrderId, StepIndex)>,
    pub max_attempts: u32,
    /// The saga every order runs (the shipped one).
    pub definition: Arc<Definition>,
}

impl Orchestrator {
    pub fn new(max_attempts: u32) -> Self {
        let versions = orderly_saga::order::versions().expect("the shipped saga is valid");
        Self {
            definition: versions.latest().clone(),
            sagas: BTreeMap::new(),
            inbox: Inbox::new(true),
            outbox: Outbox::default(),
            work: BTreeSet::new(),
            max_attempts,
        }
    }

    /// A restart: everything in memory is gone; open compensations of sagas that are not parked
    /// are found again in the database (a parked saga waits for an operator).
    pub fn restart(&mut self) {
        self.work.clear();
        for (order, row) in &self.sagas {
            if row.saga.phase == Phase::Parked {
                continue;
            }
            for (step, state) in row.saga.steps.iter().enumerate() {
                if *state == Step::Compensating {
                    self.work.insert((*order, step));
                }
            }
        }
    }

    /// The consumer: every domain event of an order feeds its saga; the first one creates it.
    pub fn handle(&mut self, message: &Message, ids: &mut EventIds, journal: &mut Journal) {
        if !self.inbox.first_time(message.id) {
            return;
        }
        let (event_type, reason) = match &message.payload {
            Payload::OrderPlaced { .. } => ("OrderPlaced", ""),
            Payload::InventoryReserved { .. } => ("InventoryReserved", ""),
            Payload::InventoryRejected { reason, .. } => ("InventoryRejected", reason.as_str()),
            Payload::PaymentAuthorized { .. } => ("PaymentAuthorized", ""),
            Payload::PaymentDeclined { reason, .. } => ("PaymentDeclined", reason.as_str()),
            Payload::SagaConfirmed | Payload::SagaRejected { .. } => {
                journal.violation(format!("orchestrator was handed {:?}", message.payload));
                return;
            }
        };
        let event = if event_type == self.definition.trigger() {
            Event::Started
        } else {
            match self.definition.outcome_of(event_type) {
                Some((step, Outcome::Succeeded)) => Event::StepSucceeded(step),
                Some((step, Outcome::Failed)) => Event::StepFailed {
                    step,
                    reason: reason.to_owned(),
                },
                None => {
                    journal.violation(format!("no step of the saga answers {event_type}"));
                    return;
                }
            }
        };
        let definition = &self.definition;
        self.sagas.entry(message.order).or_insert_with(|| SagaRow {
            saga: Saga::new(definition),
            attempts: BTreeMap::new(),
            decided_by_deadline: false,
        });
        self.apply(message.order, event, ids, journal);
    }

    /// The deadline timer fired for `order` (it only looks at RUNNING sagas, like the real one).
    pub fn deadline(&mut self, order: OrderId, ids: &mut EventIds, journal: &mut Journal) {
        if self.sagas.contains_key(&order) {
            self.apply(order, Event::DeadlinePassed, ids, journal);
        }
    }

    /// A compensation RPC came back: success is recorded as `Compensated`; a failure counts an
    /// attempt and, past the limit, parks the saga.
    pub fn compensation_done(
        &mut self,
        order: OrderId,
        step: StepIndex,
        succeeded: bool,
        ids: &mut EventIds,
        journal: &mut Journal,
    ) {
        let Some(row) = self.sagas.get_mut(&order) else {
            journal.violation(format!("compensation for unknown saga {order}"));
            return;
        };
        if succeeded {
            self.work.remove(&(order, step));
            self.apply(order, Event::Compensated(step), ids, journal);
            return;
        }
        let attempts = row.attempts.entry(step).or_insert(0);
        *attempts += 1;
        if *attempts >= self.max_attempts {
            self.work.remove(&(order, step));
            let reason = format!("{} unavailable", self.definition.steps()[step].name);
            let failing = Event::CompensationFailing { step, reason };
            self.apply(order, failing, ids, journal);
        }
    }

    /// An operator retries a parked saga (the real RetrySaga): its open compensations' attempt
    /// counters are reset and the core sends it back to compensating, in one commit.
    pub fn resume(&mut self, order: OrderId, ids: &mut EventIds, journal: &mut Journal) {
        if let Some(row) = self.sagas.get_mut(&order) {
            for (step, state) in row.saga.steps.iter().enumerate() {
                if *state == Step::Compensating {
                    row.attempts.remove(&step);
                }
            }
        }
        self.apply(order, Event::OperatorRetry, ids, journal);
    }

    /// The compensations the compensator may try now: like the real one, it leaves a parked
    /// saga alone until an operator retries it.
    pub fn runnable_compensations(&self) -> impl Iterator<Item = (OrderId, StepIndex)> + '_ {
        self.work.iter().copied().filter(|(order, _)| {
            self.sagas
                .get(order)
                .is_some_and(|row| row.saga.phase != Phase::Parked)
        })
    }

    /// Runs the real core and commits what it decided in one step: the new saga, the outcome
    /// in the outbox; compensations go to the in-memory compensator after the commit.
    fn apply(&mut self, order: OrderId, event: Event, ids: &mut EventIds, journal: &mut Journal) {
        let Some(row) = self.sagas.get_mut(&order) else {
            return;
        };
        let before = row.saga.clone();
        let is_deadline = event == Event::DeadlinePassed;
        let (next, commands) = match transition(&self.definition, &before, event.clone()) {
            Ok(decided) => decided,
            Err(error) => {
                journal.violation(format!("core refused {event:?} for saga {order}: {error}"));
                return;
            }
        };
        if !phase_may_follow(before.phase, next.phase) {
            journal.violation(format!(
                "I6: saga {order} went {:?} -> {:?} on {event:?}",
                before.phase, next.phase
            ));
        }
        if is_deadline && before.phase == Phase::Running && next.phase != Phase::Running {
            row.decided_by_deadline = true;
            journal.coverage.deadline_rejections += 1;
        }
        if next.phase == Phase::Parked && before.phase != Phase::Parked {
            journal.coverage.parkings += 1;
        }
        let decided = matches!(
            before.phase,
            Phase::Compensating | Phase::Rejected | Phase::Parked
        );
        if decided && matches!(event, Event::StepSucceeded(_)) {
            journal.coverage.late_successes += 1;
        }
        row.saga = next;
        for command in commands {
            match command {
                Command::Compensate(step) => {
                    self.work.insert((order, step));
                }
                // The simulation's deadlines are fired by the scheduler, not armed.
                Command::ArmDeadline(_) => {}
                Command::EmitConfirmed => {
                    journal.effect(order, Effect::EmitOutcome);
                    self.outbox.add(ids.next(order, Payload::SagaConfirmed));
                }
                Command::EmitRejected { reason } => {
                    journal.effect(order, Effect::EmitOutcome);
                    self.outbox
                        .add(ids.next(order, Payload::SagaRejected { reason }));
                }
            }
        }
    }
}

/// I6 for sagas: CONFIRMED is final, and nothing that started rejecting ever confirms.
fn phase_may_follow(before: Phase, after: Phase) -> bool {
    match before {
        Phase::Confirmed => after == Phase::Confirmed,
        Phase::Compensating | Phase::Rejected | Phase::Parked => after != Phase::Confirmed,
        Phase::Running => true,
    }
}
