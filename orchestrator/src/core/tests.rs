//! The saga core's examples and properties: random event sequences, with duplicates and any
//! order, never confirm and reject the same saga, never leave a step holding stock or money
//! after a rejection, and always end in CONFIRMED or REJECTED once compensations complete.

use proptest::prelude::*;

use super::*;

/// Feeds events one by one, executing Compensate commands the way the runtime does (each
/// compensation eventually succeeds), and returns the final saga and every emitted outcome.
fn run(events: impl IntoIterator<Item = Event>) -> (Saga, Vec<Command>) {
    let mut saga = Saga::default();
    let mut outcomes = Vec::new();
    let mut pending = std::collections::VecDeque::from_iter(events);
    while let Some(event) = pending.pop_front() {
        let (next, commands) = transition(&saga, event).expect("valid transition");
        assert_monotone(&saga, &next);
        saga = next;
        for command in commands {
            match command {
                Command::Compensate(kind) => pending.push_back(Event::Compensated(kind)),
                outcome => outcomes.push(outcome),
            }
        }
    }
    (saga, outcomes)
}

/// I6: CONFIRMED and REJECTED are final.
fn assert_monotone(before: &Saga, after: &Saga) {
    match before.phase {
        Phase::Confirmed => assert_eq!(after.phase, Phase::Confirmed),
        Phase::Rejected | Phase::Parked | Phase::Compensating => {
            assert_ne!(after.phase, Phase::Confirmed)
        }
        Phase::Running => {}
    }
}

#[test]
fn both_steps_succeeding_confirms_once() {
    let (saga, outcomes) = run([
        Event::OrderPlaced,
        Event::InventoryReserved,
        Event::PaymentAuthorized,
    ]);
    assert_eq!(saga.phase, Phase::Confirmed);
    assert_eq!(outcomes, [Command::EmitConfirmed]);
}

#[test]
fn out_of_stock_rejects_without_compensation() {
    let (saga, outcomes) = run([Event::InventoryRejected {
        reason: "mug: 5 requested, 2 available".into(),
    }]);
    assert_eq!(saga.phase, Phase::Rejected);
    assert_eq!(
        outcomes,
        [Command::EmitRejected {
            reason: "mug: 5 requested, 2 available".into()
        }]
    );
}

#[test]
fn declined_payment_releases_the_reservation_then_rejects() {
    let saga = Saga {
        inventory: Step::Succeeded,
        ..Saga::default()
    };
    let (next, commands) = transition(
        &saga,
        Event::PaymentDeclined {
            reason: "insufficient funds".into(),
        },
    )
    .unwrap();
    assert_eq!(next.phase, Phase::Compensating);
    assert_eq!(commands, [Command::Compensate(StepKind::Inventory)]);
    let (done, commands) = transition(&next, Event::Compensated(StepKind::Inventory)).unwrap();
    assert_eq!(
        (done.phase, done.inventory),
        (Phase::Rejected, Step::Compensated)
    );
    assert_eq!(
        commands,
        [Command::EmitRejected {
            reason: "insufficient funds".into()
        }]
    );
}

#[test]
fn deadline_compensates_in_reverse_order_and_late_success_is_undone() {
    let saga = Saga {
        inventory: Step::Succeeded,
        ..Saga::default()
    };
    let (after_deadline, commands) = transition(&saga, Event::DeadlinePassed).unwrap();
    assert_eq!(commands, [Command::Compensate(StepKind::Inventory)]);
    let (rejected, _) =
        transition(&after_deadline, Event::Compensated(StepKind::Inventory)).unwrap();
    assert_eq!(rejected.phase, Phase::Rejected);

    let (late, commands) = transition(&rejected, Event::PaymentAuthorized).unwrap();
    assert_eq!(commands, [Command::Compensate(StepKind::Payment)]);
    assert_eq!(late.phase, Phase::Rejected, "a late success never confirms");
    let (settled, commands) = transition(&late, Event::Compensated(StepKind::Payment)).unwrap();
    assert!(commands.is_empty(), "the outcome is emitted once");
    assert!(settled.is_terminal());
}

#[test]
fn both_succeeded_then_compensated_latest_first() {
    let saga = Saga {
        inventory: Step::Succeeded,
        payment: Step::Succeeded,
        phase: Phase::Running,
        ..Saga::default()
    };
    let (_, commands) = transition(&saga, Event::DeadlinePassed).unwrap();
    assert_eq!(
        commands,
        [
            Command::Compensate(StepKind::Payment),
            Command::Compensate(StepKind::Inventory)
        ]
    );
}

#[test]
fn a_failing_compensation_parks_and_completes_when_it_finally_succeeds() {
    let compensating = Saga {
        phase: Phase::Compensating,
        inventory: Step::Compensating,
        payment: Step::Failed,
        ..Saga::default()
    };
    let failing = Event::CompensationFailing {
        step: StepKind::Inventory,
        reason: "inventory unavailable".into(),
    };
    let (parked, _) = transition(&compensating, failing).unwrap();
    assert_eq!(parked.phase, Phase::Parked);
    assert!(parked.reason.contains("reserve_inventory keeps failing"));
    let (done, commands) = transition(&parked, Event::Compensated(StepKind::Inventory)).unwrap();
    assert_eq!(done.phase, Phase::Rejected);
    assert_eq!(
        commands.len(),
        1,
        "the rejection is emitted once the compensation is done"
    );
}

#[test]
fn compensated_without_a_request_is_an_error() {
    assert!(transition(&Saga::default(), Event::Compensated(StepKind::Payment)).is_err());
}

fn parked_on_inventory() -> Saga {
    let compensating = Saga {
        phase: Phase::Compensating,
        inventory: Step::Compensating,
        payment: Step::Failed,
        reason: "insufficient funds".into(),
        ..Saga::default()
    };
    let failing = Event::CompensationFailing {
        step: StepKind::Inventory,
        reason: "inventory unavailable".into(),
    };
    transition(&compensating, failing).unwrap().0
}

#[test]
fn operator_retry_sends_a_parked_saga_back_to_compensating() {
    let parked = parked_on_inventory();
    let (retried, commands) = transition(&parked, Event::OperatorRetry).unwrap();
    assert_eq!(retried.phase, Phase::Compensating);
    assert_eq!(
        retried.reason, "insufficient funds",
        "the rejection's own reason is back"
    );
    assert_eq!(commands, [Command::Compensate(StepKind::Inventory)]);
    let (done, commands) = transition(&retried, Event::Compensated(StepKind::Inventory)).unwrap();
    assert_eq!(done.phase, Phase::Rejected);
    assert!(matches!(
        commands.as_slice(),
        [Command::EmitRejected { .. }]
    ));
    assert!(done.is_terminal());
}

/// The reason travels with every compensation call (participants cap it at 200 characters):
/// parking again and again, with long errors, must not grow it.
#[test]
fn parking_repeatedly_keeps_the_reason_bounded() {
    let mut saga = parked_on_inventory();
    for _ in 0..5 {
        saga = transition(&saga, Event::OperatorRetry).unwrap().0;
        let failing = Event::CompensationFailing {
            step: StepKind::Inventory,
            reason: "x".repeat(500),
        };
        saga = transition(&saga, failing).unwrap().0;
    }
    assert_eq!(
        saga.reason,
        "insufficient funds; parked: compensating reserve_inventory keeps failing"
    );
}

#[test]
fn operator_actions_apply_to_parked_sagas_only() {
    let compensating = Saga {
        phase: Phase::Compensating,
        inventory: Step::Compensating,
        ..Saga::default()
    };
    for saga in [Saga::default(), compensating] {
        assert_eq!(
            transition(&saga, Event::OperatorRetry),
            Err(Error::NotParked(saga.phase))
        );
        assert_eq!(
            transition(&saga, Event::OperatorResolved(StepKind::Inventory)),
            Err(Error::NotParked(saga.phase))
        );
    }
    assert_eq!(
        transition(
            &parked_on_inventory(),
            Event::OperatorResolved(StepKind::Payment)
        ),
        Err(Error::NotCompensating(StepKind::Payment, Step::Failed)),
        "only an open compensation can be resolved"
    );
}

#[test]
fn operator_resolving_the_last_open_compensation_rejects_once() {
    let parked = parked_on_inventory();
    let (done, commands) =
        transition(&parked, Event::OperatorResolved(StepKind::Inventory)).unwrap();
    assert_eq!(
        (done.phase, done.inventory),
        (Phase::Rejected, Step::Compensated)
    );
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert!(
        matches!(&commands[0], Command::EmitRejected { reason } if reason.contains("insufficient funds"))
    );
    assert!(
        transition(&done, Event::OperatorResolved(StepKind::Inventory)).is_err(),
        "a finished saga is not resolved again"
    );
}

#[test]
fn operator_resolving_one_compensation_runs_the_others_again() {
    let both = Saga {
        phase: Phase::Parked,
        inventory: Step::Compensating,
        payment: Step::Compensating,
        reason: "deadline".into(),
        ..Saga::default()
    };
    let (next, commands) = transition(&both, Event::OperatorResolved(StepKind::Payment)).unwrap();
    assert_eq!(next.phase, Phase::Compensating);
    assert_eq!(next.payment, Step::Compensated);
    assert_eq!(commands, [Command::Compensate(StepKind::Inventory)]);
}

#[test]
fn a_late_success_parked_after_the_outcome_never_emits_it_again() {
    let rejected = Saga {
        phase: Phase::Rejected,
        inventory: Step::Failed,
        payment: Step::Compensating,
        reason: "out of stock".into(),
        outcome_emitted: true,
    };
    let failing = Event::CompensationFailing {
        step: StepKind::Payment,
        reason: "payment unavailable".into(),
    };
    let (parked, _) = transition(&rejected, failing).unwrap();
    assert_eq!(parked.phase, Phase::Parked);
    let (done, commands) = transition(&parked, Event::OperatorResolved(StepKind::Payment)).unwrap();
    assert_eq!(done.phase, Phase::Rejected);
    assert!(commands.is_empty(), "{commands:?}");
}

fn any_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::OrderPlaced),
        Just(Event::InventoryReserved),
        Just(Event::InventoryRejected {
            reason: "short".into()
        }),
        Just(Event::PaymentAuthorized),
        Just(Event::PaymentDeclined {
            reason: "broke".into()
        }),
        Just(Event::DeadlinePassed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Any order, any duplicates: one outcome at most, and it matches what the steps hold.
    #[test]
    fn random_histories_keep_the_invariants(events in proptest::collection::vec(any_event(), 0..12)) {
        let (saga, outcomes) = run(events.clone());
        prop_assert!(outcomes.len() <= 1, "one outcome at most: {outcomes:?}");
        match saga.phase {
            // I3/I2: confirmed means both steps hold their effect, nothing undone.
            Phase::Confirmed => {
                prop_assert_eq!((saga.inventory, saga.payment), (Step::Succeeded, Step::Succeeded));
                prop_assert_eq!(&outcomes, &[Command::EmitConfirmed]);
            }
            // Rejected means no step still holds stock or money.
            Phase::Rejected => {
                for kind in StepKind::FORWARD {
                    prop_assert!(matches!(saga.step(kind), Step::Pending | Step::Failed | Step::Compensated));
                }
                let rejected_once = matches!(outcomes.as_slice(), [Command::EmitRejected { .. }]);
                prop_assert!(rejected_once, "{:?}", outcomes);
            }
            Phase::Running => prop_assert!(outcomes.is_empty()),
            Phase::Compensating | Phase::Parked => prop_assert!(false, "compensations always finish here"),
        }
        // I1: once the deadline passes, every saga is terminal.
        let (after_deadline, late) = run(events.into_iter().chain([Event::DeadlinePassed]));
        prop_assert!(after_deadline.is_terminal());
        prop_assert!(late.len() <= 1);
    }
}

fn any_event_with_failures() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => any_event(),
        1 => prop_oneof![Just(StepKind::Inventory), Just(StepKind::Payment)].prop_map(|step| {
            Event::CompensationFailing { step, reason: "down".into() }
        }),
        1 => Just(Event::OperatorRetry),
        1 => prop_oneof![Just(StepKind::Inventory), Just(StepKind::Payment)]
            .prop_map(Event::OperatorResolved),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Compensations that fail and park, operators retrying and resolving at any time: an
    /// operator action the core refuses changes nothing, a saga never confirms after it started
    /// rejecting, and once the deadline passes and an operator retries every parked saga whose
    /// compensations then succeed, each saga is terminal with one outcome at most.
    #[test]
    fn operator_actions_keep_the_invariants(events in proptest::collection::vec(any_event_with_failures(), 0..16)) {
        let mut saga = Saga::default();
        let mut outcomes = Vec::new();
        for event in events.into_iter().chain([Event::DeadlinePassed]) {
            let operator = matches!(event, Event::OperatorRetry | Event::OperatorResolved(_));
            match transition(&saga, event) {
                Ok((next, commands)) => {
                    assert_monotone(&saga, &next);
                    saga = next;
                    outcomes.extend(commands.into_iter().filter(|c| !matches!(c, Command::Compensate(_))));
                }
                Err(error) => prop_assert!(operator, "only operator actions are refused: {error}"),
            }
        }
        // Heal: the operator retries a parked saga, and every open compensation succeeds.
        if saga.phase == Phase::Parked {
            saga = transition(&saga, Event::OperatorRetry).map_err(|e| TestCaseError::fail(e.to_string()))?.0;
        }
        for kind in StepKind::FORWARD {
            if saga.step(kind) == Step::Compensating {
                let (next, commands) = transition(&saga, Event::Compensated(kind)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                saga = next;
                outcomes.extend(commands);
            }
        }
        prop_assert!(saga.is_terminal(), "{saga:?}");
        prop_assert!(outcomes.len() <= 1, "{outcomes:?}");
        prop_assert_eq!(saga.outcome_emitted, outcomes.len() == 1);
    }
}
