//! The saga core's examples and properties, in three files under `tests/`: `order` for the
//! shipped saga (its examples and random histories), `shapes` for what only other definitions
//! show (three steps, a pivot), `generated` for properties over random definitions of 1 to 6
//! steps. Random event sequences, with duplicates and any order, never confirm and reject the
//! same saga, undo steps strictly latest first, never leave a step holding its effect after a
//! rejection, never reject a saga holding a success it cannot undo (until an operator undid it
//! by hand), and end CONFIRMED or REJECTED once compensations complete (or PARKED, until an
//! operator acts). This file holds what the three share: the definitions, the properties'
//! configuration and a driver that executes compensations as the runtime does.

mod generated;
mod order;
mod shapes;

use std::{cmp::Ordering, collections::VecDeque};

use proptest::prelude::ProptestConfig;

use super::*;

/// What parking appends to a saga's reason: a reason holding it is never emitted.
const PARKED: &str = "; parked: ";

/// 2,000 cases a property. No regression file: a failing run prints its minimal case rather
/// than write into the source tree.
fn cases() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(2_000)
    }
}

/// The shipped saga: step 0 reserves stock, step 1 authorizes the charge.
fn order() -> Definition {
    orderly_saga::order::v1().expect("the shipped saga is valid")
}

const RESERVE: StepIndex = 0;
const AUTHORIZE: StepIndex = 1;

/// A chain of `len` steps `s0`, `s1`, …: step `i`, run by `p{i}`, starts on the previous step's
/// success (the first on `Start`), succeeds on `S{i}ok` and fails on `S{i}fail`. Every step
/// before the pivot (all of them, without one) is compensable; the pivot may fail, the steps
/// after it may not (the definition's rules, which `build` enforces).
fn chain(len: usize, pivot: Option<StepIndex>) -> Definition {
    let mut builder = Definition::named("chain", 1).trigger_topic("t.start");
    for i in 0..len {
        let starts_on = match i.checked_sub(1) {
            Some(previous) => format!("S{previous}ok"),
            None => "Start".to_owned(),
        };
        builder = builder
            .step(format!("s{i}"))
            .by(format!("p{i}"))
            .reports_to(format!("t.p{i}"))
            .starts_on(starts_on)
            .succeeds_on(format!("S{i}ok"));
        if pivot.is_none_or(|pivot| i <= pivot) {
            builder = builder.fails_on(format!("S{i}fail"));
        }
        builder = match pivot.map(|pivot| i.cmp(&pivot)) {
            None | Some(Ordering::Less) => builder.compensated_by(format!("/t.P{i}/Undo")),
            Some(Ordering::Equal) => builder.pivot(),
            Some(Ordering::Greater) => builder,
        };
    }
    builder.build().expect("a chain is a valid definition")
}

fn failed(step: StepIndex, reason: &str) -> Event {
    Event::StepFailed {
        step,
        reason: reason.into(),
    }
}

fn compensation_failing(step: StepIndex) -> Event {
    Event::CompensationFailing {
        step,
        reason: "unavailable".into(),
    }
}

/// Applies `event`, which the core must accept.
fn apply(definition: &Definition, saga: &Saga, event: Event) -> (Saga, Vec<Command>) {
    transition(definition, saga, event.clone())
        .unwrap_or_else(|error| panic!("{event:?} refused: {error}"))
}

/// The saga after `events`, from its start. Their commands are dropped: nothing executes them.
fn after(definition: &Definition, events: impl IntoIterator<Item = Event>) -> Saga {
    events
        .into_iter()
        .fold(Saga::new(definition), |saga, event| {
            apply(definition, &saga, event).0
        })
}

fn is_outcome(command: &Command) -> bool {
    match command {
        Command::EmitConfirmed | Command::EmitRejected { .. } => true,
        Command::Compensate(_) | Command::ArmDeadline(_) => false,
    }
}

/// What [`run`] saw.
struct History {
    saga: Saga,
    /// `EmitConfirmed` and `EmitRejected`, in the order they came.
    outcomes: Vec<Command>,
    /// The steps compensations were requested for, in the order they were.
    compensations: Vec<StepIndex>,
}

/// Feeds `events` one by one and executes every Compensate command as the runtime does: the
/// compensation succeeds, answered after the events already queued (so late answers interleave
/// with it). Checks I6 on every transition.
fn run(definition: &Definition, events: impl IntoIterator<Item = Event>) -> History {
    let mut history = History {
        saga: Saga::new(definition),
        outcomes: Vec::new(),
        compensations: Vec::new(),
    };
    let mut queue = VecDeque::from_iter(events);
    while let Some(event) = queue.pop_front() {
        let (next, commands) = apply(definition, &history.saga, event);
        assert_monotone(&history.saga, &next);
        history.saga = next;
        for command in commands {
            match command {
                Command::Compensate(step) => {
                    history.compensations.push(step);
                    queue.push_back(Event::Compensated(step));
                }
                Command::ArmDeadline(_) => {}
                outcome @ (Command::EmitConfirmed | Command::EmitRejected { .. }) => {
                    history.outcomes.push(outcome);
                }
            }
        }
    }
    history
}

/// I6: CONFIRMED and REJECTED are final, and a saga that started rejecting never confirms.
fn assert_monotone(before: &Saga, after: &Saga) {
    match before.phase {
        Phase::Confirmed => assert_eq!(after.phase, Phase::Confirmed),
        Phase::Rejected | Phase::Parked | Phase::Compensating => {
            assert_ne!(after.phase, Phase::Confirmed);
        }
        Phase::Running => {}
    }
}
