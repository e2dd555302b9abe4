//! The orchestrator of the simulation is the real runtime: its consumer's reaction to an event
//! (`events::react`), the deadline timer's `expire`, the compensator's `try_now` and the
//! operator's `retry`, all over the in-memory tables. This side only turns the simulation's
//! messages into envelopes and back, and watches every change for what the invariants forbid.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use orderly_common::{
    kafka::{
        envelope::{self, Event as Envelope, Payload as Wire},
        topics,
    },
    lease::Fence,
    messaging::Relay,
};
use orderly_proto::{
    common::v1::Money,
    events::v1::{EventEnvelope, SagaFacts, saga_event::Event as Outcome},
};
use orderly_saga::{Definition, RetryPolicy, StepIndex, Versions};
use prost::Message as _;
use tokio::{runtime::Runtime, sync::Notify};
use uuid::Uuid;

use super::{
    bus::{EventIds, Inbox, Message, OrderId, Outbox, Payload},
    generated,
    journal::{Effect, Journal},
    memory::Memory,
};
use crate::{
    core::{Phase, Saga, Step},
    runtime::{
        Operator, Settings,
        apply::load,
        compensator::{Compensator, NotBefore},
        events::react,
        participants::CompensationCalls,
        timers::expire,
    },
    store::{Store, Tables},
};

/// What changed a saga, for what the checks expect of the change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    StepSucceeded,
    OtherEvent,
    Deadline,
    Compensation,
    Operator,
}

pub struct Orchestrator {
    /// The sagas database, committed atomically per action (the inbox and outbox with it).
    pub store: Memory,
    pub inbox: Inbox,
    pub outbox: Outbox,
    pub settings: Settings,
    /// Sagas whose rejection the deadline decided (not a step's answer).
    pub decided_by_deadline: BTreeSet<OrderId>,
    /// The one orchestrator holds the lease its timer and compensator write under.
    fence: Fence,
    executor: Runtime,
}

pub fn uuid(order: OrderId) -> Uuid {
    Uuid::from_u64_pair(0, order)
}

fn order_of(uuid: Uuid) -> OrderId {
    uuid.as_u64_pair().1
}

impl Orchestrator {
    /// An orchestrator running `definition`; a compensation that failed `max_attempts` times
    /// parks its saga.
    pub fn new(definition: Definition, max_attempts: u32) -> Self {
        let versions = Versions::new([definition]).expect("one definition is a valid set");
        let settings = Settings {
            versions,
            default_timeout: Duration::from_secs(30),
            default_retry: RetryPolicy {
                max_attempts,
                initial_backoff: Duration::ZERO,
                max_backoff: Duration::ZERO,
            },
            recheck: Duration::from_secs(1),
            compensations_at_once: crate::runtime::COMPENSATIONS_AT_ONCE.into(),
        };
        let executor = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime starts");
        Self {
            store: Memory::default(),
            inbox: Inbox::new(true),
            outbox: Outbox::default(),
            settings,
            decided_by_deadline: BTreeSet::new(),
            fence: Fence {
                name: "orchestrator.sagas",
                holder: "simulation".into(),
                epoch: 1,
            },
            executor,
        }
    }

    pub fn definition(&self) -> &Definition {
        self.settings.versions.latest()
    }

    /// The saga of `order` as the runtime loads it.
    pub fn saga(&self, order: OrderId) -> Option<Saga> {
        let loaded = self
            .executor
            .block_on(load(&self.store, uuid(order), &self.settings));
        loaded.ok().flatten().map(|loaded| loaded.saga)
    }

    /// Every saga, by order.
    pub fn sagas(&self) -> Vec<(OrderId, Saga)> {
        let ids = self.store.saga_ids();
        let sagas = ids.into_iter().map(order_of);
        sagas
            .filter_map(|order| Some((order, self.saga(order)?)))
            .collect()
    }

    /// A restart: nothing lives in memory but the compensator's backoff, so this only lets
    /// the process commit again; open compensations are read from the tables.
    pub fn restart(&mut self) {
        self.store.restart();
    }

    /// The consumer: the real reaction to a domain event, through the inbox.
    pub fn handle(&mut self, message: &Message, ids: &mut EventIds, journal: &mut Journal) {
        if !self.inbox.first_time(message.id) {
            return;
        }
        let Some(envelope) = self.envelope(message, journal) else {
            return;
        };
        let cause = match self.definition().outcome_of(envelope.event_type()) {
            Some((_, orderly_saga::Outcome::Succeeded)) => Cause::StepSucceeded,
            _ => Cause::OtherEvent,
        };
        let before = self.saga(message.order);
        let reacted = self.executor.block_on(async {
            let txn = self.store.begin().await?;
            react(&txn, &self.settings, &envelope).await?;
            Memory::commit(txn).await?;
            Ok::<_, crate::runtime::apply::ApplyError>(())
        });
        if let Err(error) = reacted {
            journal.violation(format!("orchestrator refused {message:?}: {error}"));
        }
        self.settle(message.order, before, cause, ids, journal);
    }

    /// The deadline timer's expiry of one saga it read as RUNNING.
    pub fn deadline(&mut self, order: OrderId, ids: &mut EventIds, journal: &mut Journal) {
        let before = self.saga(order);
        let header = self.executor.block_on(self.store.saga(uuid(order)));
        if let Ok(Some(header)) = header
            && let Err(error) =
                self.executor
                    .block_on(expire(&self.store, &header, &self.settings, &self.fence))
        {
            journal.violation(format!("deadline of saga {order} failed: {error}"));
        }
        self.settle(order, before, Cause::Deadline, ids, journal);
    }

    /// The compensator's attempt at one open compensation, reaching participants through
    /// `calls`; an error is only expected when the process died on the way (`died`).
    pub fn compensate(
        &mut self,
        order: OrderId,
        step: StepIndex,
        calls: impl CompensationCalls,
        died: bool,
        ids: &mut EventIds,
        journal: &mut Journal,
    ) {
        let before = self.saga(order);
        let name = self.definition().steps()[step].name.clone();
        let compensator = Compensator {
            db: self.store.clone(),
            relay: Relay::default(),
            participants: calls,
            settings: self.settings.clone(),
        };
        let tried = self.executor.block_on(async {
            let Some(row) = self.store.step(uuid(order), &name).await? else {
                return Ok(false);
            };
            compensator
                .try_now(&row, &NotBefore::default(), &self.fence)
                .await
        });
        if let Err(error) = tried
            && !died
        {
            journal.violation(format!("compensating {name} of {order} failed: {error}"));
        }
        self.settle(order, before, Cause::Compensation, ids, journal);
    }

    /// An operator retries a parked saga (the real RetrySaga).
    pub fn resume(&mut self, order: OrderId, ids: &mut EventIds, journal: &mut Journal) {
        let before = self.saga(order);
        if let Err(error) = self.executor.block_on(self.operator().retry(uuid(order))) {
            journal.violation(format!("operator could not retry saga {order}: {error}"));
        }
        self.settle(order, before, Cause::Operator, ids, journal);
    }

    /// An operator resolves step `step`, undone by hand (the real ResolveSaga).
    pub fn resolve(
        &mut self,
        order: OrderId,
        step: StepIndex,
        ids: &mut EventIds,
        journal: &mut Journal,
    ) {
        let before = self.saga(order);
        let name = self.definition().steps()[step].name.clone();
        let resolved = self.executor.block_on(self.operator().resolve(
            uuid(order),
            &name,
            "undone by hand",
        ));
        if let Err(error) = resolved {
            journal.violation(format!(
                "operator could not resolve {name} of {order}: {error}"
            ));
        }
        self.settle(order, before, Cause::Operator, ids, journal);
    }

    fn operator(&self) -> Operator<Memory> {
        Operator {
            db: self.store.clone(),
            relay: Relay::default(),
            compensations: Arc::new(Notify::new()),
            settings: self.settings.clone(),
        }
    }

    /// The compensations the compensator would try now: open, of a saga that is not parked
    /// (a parked one waits for an operator).
    pub fn runnable_compensations(&self) -> Vec<(OrderId, StepIndex)> {
        let open = self.executor.block_on(self.store.compensating());
        let mut runnable = Vec::new();
        for row in open.unwrap_or_default() {
            let order = order_of(row.order_id);
            let parked = self
                .saga(order)
                .is_none_or(|saga| saga.phase == Phase::Parked);
            if let Some(step) = self.definition().index_of(&row.name)
                && !parked
            {
                runnable.push((order, step));
            }
        }
        runnable
    }

    /// The envelope the real consumer would read for `message`: type and saga facts.
    fn envelope(&self, message: &Message, journal: &mut Journal) -> Option<Envelope> {
        let (event_type, customer, amount, reason) = match &message.payload {
            Payload::OrderPlaced {
                customer, amount, ..
            } => ("OrderPlaced", customer, amount, ""),
            Payload::InventoryReserved { customer, amount } => {
                ("InventoryReserved", customer, amount, "")
            }
            Payload::InventoryRejected {
                customer,
                amount,
                reason,
            } => ("InventoryRejected", customer, amount, reason.as_str()),
            Payload::PaymentAuthorized { customer, amount } => {
                ("PaymentAuthorized", customer, amount, "")
            }
            Payload::PaymentDeclined {
                customer,
                amount,
                reason,
            } => ("PaymentDeclined", customer, amount, reason.as_str()),
            Payload::Step {
                step,
                refused,
                customer,
                amount,
            } => {
                let reason = if *refused { "refused" } else { "" };
                (
                    generated::event_type(*step, *refused),
                    customer,
                    amount,
                    reason,
                )
            }
            Payload::SagaConfirmed | Payload::SagaRejected { .. } => {
                journal.violation(format!("orchestrator was handed {:?}", message.payload));
                return None;
            }
        };
        let (event_id, order_id) = (Uuid::from_u64_pair(1, message.id), uuid(message.order));
        let facts = SagaFacts {
            customer_id: format!("customer-{customer}"),
            total: Some(Money {
                amount_minor: *amount,
                currency: "EUR".into(),
            }),
            reason: reason.to_owned(),
        };
        Some(Envelope {
            event_id,
            order_id,
            envelope: EventEnvelope {
                event_id: event_id.to_string(),
                event_type: event_type.into(),
                order_id: order_id.to_string(),
                saga: Some(facts),
                ..EventEnvelope::default()
            },
            payload: None,
        })
    }

    /// After an action on `order`'s saga: the committed outcome events go to the outbox the
    /// relay publishes, and the change is checked.
    fn settle(
        &mut self,
        order: OrderId,
        before: Option<Saga>,
        cause: Cause,
        ids: &mut EventIds,
        journal: &mut Journal,
    ) {
        for envelope in self.store.take_outbox() {
            let order = Uuid::parse_str(&envelope.order_id).map_or(0, order_of);
            // Read back as the real consumers read it.
            let opened = envelope::open(topics::SAGAS, &envelope.encode_to_vec());
            let payload = match opened.map(|event| event.payload) {
                Ok(Some(Wire::Saga(Outcome::SagaConfirmed(_)))) => Payload::SagaConfirmed,
                Ok(Some(Wire::Saga(Outcome::SagaRejected(rejected)))) => Payload::SagaRejected {
                    reason: rejected.reason,
                },
                other => {
                    journal.violation(format!("orchestrator emitted {other:?}"));
                    continue;
                }
            };
            journal.effect(order, Effect::EmitOutcome);
            self.outbox.add(ids.next(order, payload));
        }
        let (Some(before), Some(after)) = (before, self.saga(order)) else {
            return;
        };
        if !phase_may_follow(before.phase, after.phase) {
            journal.violation(format!(
                "I6: saga {order} went {:?} -> {:?} ({cause:?})",
                before.phase, after.phase
            ));
        }
        if cause == Cause::Deadline
            && before.phase == Phase::Running
            && after.phase != Phase::Running
        {
            self.decided_by_deadline.insert(order);
            journal.coverage.deadline_rejections += 1;
        }
        if after.phase == Phase::Parked && before.phase != Phase::Parked {
            journal.coverage.parkings += 1;
        }
        let decided = matches!(
            before.phase,
            Phase::Compensating | Phase::Rejected | Phase::Parked
        );
        if decided && cause == Cause::StepSucceeded {
            journal.coverage.late_successes += 1;
        }
        check_reverse_order(order, &before, &after, journal);
    }
}

/// Compensations run strictly in reverse: a step's compensation opens only when no later step
/// still holds a success or is being compensated (a late success, undone alongside the
/// compensation already under way, is the one exception, and it opens the LATER step).
fn check_reverse_order(order: OrderId, before: &Saga, after: &Saga, journal: &mut Journal) {
    for step in 0..after.steps.len() {
        let opened =
            after.step(step) == Step::Compensating && before.step(step) != Step::Compensating;
        if !opened {
            continue;
        }
        let held = (step + 1..after.steps.len())
            .find(|later| matches!(after.step(*later), Step::Succeeded | Step::Compensating));
        if let Some(later) = held {
            journal.violation(format!(
                "reverse order: saga {order} opened the compensation of step {step} while step \
                 {later} is {:?}",
                after.step(later)
            ));
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
