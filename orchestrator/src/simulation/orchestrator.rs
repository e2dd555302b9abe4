//! The orchestrator runtime, modelled around the REAL saga core: each event is one atomic
//! commit of saga state + inbox + outbox + timer; compensations to run are kept in memory and
//! rebuilt from the persisted steps after a crash, like the real compensator does.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    bus::{EventIds, Inbox, Message, OrderId, Outbox, Payload},
    journal::{Effect, Journal},
};
use crate::core::{Command, Event, Phase, Saga, Step, StepKind, transition};

/// What the sagas database holds for one order.
#[derive(Clone, Debug)]
pub struct SagaRow {
    pub saga: Saga,
    /// Failed attempts per compensation (the real `steps.attempts` column).
    pub attempts: BTreeMap<StepKind, u32>,
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
    pub work: BTreeSet<(OrderId, StepKind)>,
    pub max_attempts: u32,
}

impl Orchestrator {
    pub fn new(max_attempts: u32) -> Self {
        Self {
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
            for kind in StepKind::FORWARD {
                if row.saga.step(kind) == Step::Compensating {
                    self.work.insert((*order, kind));
                }
            }
        }
    }

    /// The consumer: every domain event of an order feeds its saga; the first one creates it.
    pub fn handle(&mut self, message: &Message, ids: &mut EventIds, journal: &mut Journal) {
        if !self.inbox.first_time(message.id) {
            return;
        }
        let event = match &message.payload {
            Payload::OrderPlaced { .. } => Event::OrderPlaced,
            Payload::InventoryReserved { .. } => Event::InventoryReserved,
            Payload::InventoryRejected { reason, .. } => Event::InventoryRejected {
                reason: reason.clone(),
            },
            Payload::PaymentAuthorized { .. } => Event::PaymentAuthorized,
            Payload::PaymentDeclined { reason, .. } => Event::PaymentDeclined {
                reason: reason.clone(),
            },
            Payload::SagaConfirmed | Payload::SagaRejected { .. } => {
                journal.violation(format!("orchestrator was handed {:?}", message.payload));
                return;
            }
        };
        self.sagas.entry(message.order).or_insert_with(|| SagaRow {
            saga: Saga::default(),
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
        kind: StepKind,
        succeeded: bool,
        ids: &mut EventIds,
        journal: &mut Journal,
    ) {
        let Some(row) = self.sagas.get_mut(&order) else {
            journal.violation(format!("compensation for unknown saga {order}"));
            return;
        };
        if succeeded {
            self.work.remove(&(order, kind));
            self.apply(order, Event::Compensated(kind), ids, journal);
            return;
        }
        let attempts = row.attempts.entry(kind).or_insert(0);
        *attempts += 1;
        if *attempts >= self.max_attempts {
            self.work.remove(&(order, kind));
            let reason = format!("{} unavailable", kind.name());
            let failing = Event::CompensationFailing { step: kind, reason };
            self.apply(order, failing, ids, journal);
        }
    }

    /// An operator retries a parked saga (the real RetrySaga): its open compensations' attempt
    /// counters are reset and the core sends it back to compensating, in one commit.
    pub fn resume(&mut self, order: OrderId, ids: &mut EventIds, journal: &mut Journal) {
        if let Some(row) = self.sagas.get_mut(&order) {
            for kind in StepKind::FORWARD {
                if row.saga.step(kind) == Step::Compensating {
                    row.attempts.remove(&kind);
                }
            }
        }
        self.apply(order, Event::OperatorRetry, ids, journal);
    }

    /// The compensations the compensator may try now: like the real one, it leaves a parked
    /// saga alone until an operator retries it.
    pub fn runnable_compensations(&self) -> impl Iterator<Item = (OrderId, StepKind)> + '_ {
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
        let (next, commands) = match transition(&before, event.clone()) {
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
        if decided && matches!(event, Event::InventoryReserved | Event::PaymentAuthorized) {
            journal.coverage.late_successes += 1;
        }
        row.saga = next;
        for command in commands {
            match command {
                Command::Compensate(kind) => {
                    self.work.insert((order, kind));
                }
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
