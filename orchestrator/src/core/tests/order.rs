//! The shipped saga (reserve stock, then authorize the charge): its examples, and random
//! histories with duplicates, any order, failing compensations and operators.

use proptest::prelude::*;

use super::*;

#[test]
fn both_steps_succeeding_confirms_once() {
    let history = run(
        &order(),
        [
            Event::Started,
            Event::StepSucceeded(RESERVE),
            Event::StepSucceeded(AUTHORIZE),
        ],
    );
    assert_eq!(history.saga.phase, Phase::Confirmed);
    assert_eq!(history.outcomes, [Command::EmitConfirmed]);
}

#[test]
fn a_step_succeeding_arms_the_next_steps_deadline_while_the_saga_runs() {
    let definition = order();
    let (reserved, commands) = apply(
        &definition,
        &Saga::new(&definition),
        Event::StepSucceeded(RESERVE),
    );
    assert_eq!(commands, [Command::ArmDeadline(AUTHORIZE)]);
    let (_, commands) = apply(&definition, &reserved, Event::StepSucceeded(AUTHORIZE));
    assert_eq!(
        commands,
        [Command::EmitConfirmed],
        "nothing left to wait for"
    );

    let rejected = after(&definition, [failed(AUTHORIZE, "declined")]);
    let (_, commands) = apply(&definition, &rejected, Event::StepSucceeded(RESERVE));
    assert_eq!(
        commands,
        [Command::Compensate(RESERVE)],
        "a decided saga waits for nothing"
    );
}

#[test]
fn out_of_stock_rejects_without_compensation() {
    let history = run(&order(), [failed(RESERVE, "mug: 5 requested, 2 available")]);
    assert_eq!(history.saga.phase, Phase::Rejected);
    assert_eq!(
        history.outcomes,
        [Command::EmitRejected {
            reason: "mug: 5 requested, 2 available".into()
        }]
    );
    assert!(history.compensations.is_empty());
}

#[test]
fn a_declined_charge_releases_the_reservation_then_rejects() {
    let definition = order();
    let reserved = after(&definition, [Event::StepSucceeded(RESERVE)]);
    let (next, commands) = apply(
        &definition,
        &reserved,
        failed(AUTHORIZE, "insufficient funds"),
    );
    assert_eq!(next.phase, Phase::Compensating);
    assert_eq!(commands, [Command::Compensate(RESERVE)]);
    let (done, commands) = apply(&definition, &next, Event::Compensated(RESERVE));
    assert_eq!(
        (done.phase, done.step(RESERVE)),
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
    let definition = order();
    let reserved = after(&definition, [Event::StepSucceeded(RESERVE)]);
    let (after_deadline, commands) = apply(&definition, &reserved, Event::DeadlinePassed);
    assert_eq!(commands, [Command::Compensate(RESERVE)]);
    let (rejected, _) = apply(&definition, &after_deadline, Event::Compensated(RESERVE));
    assert_eq!(rejected.phase, Phase::Rejected);

    let (late, commands) = apply(&definition, &rejected, Event::StepSucceeded(AUTHORIZE));
    assert_eq!(commands, [Command::Compensate(AUTHORIZE)]);
    assert_eq!(late.phase, Phase::Rejected, "a late success never confirms");
    let (settled, commands) = apply(&definition, &late, Event::Compensated(AUTHORIZE));
    assert!(commands.is_empty(), "the outcome is emitted once");
    assert!(settled.is_terminal());
}

/// The charge's answer overtook the reservation's, then the deadline passed: both steps end up holding
/// their effect, and are undone latest first, one at a time.
#[test]
fn both_succeeded_then_compensated_latest_first() {
    let definition = order();
    let paid = after(&definition, [Event::StepSucceeded(AUTHORIZE)]);
    let (rejecting, commands) = apply(&definition, &paid, Event::DeadlinePassed);
    assert_eq!(commands, [Command::Compensate(AUTHORIZE)]);
    let (rejecting, commands) = apply(&definition, &rejecting, Event::StepSucceeded(RESERVE));
    assert!(commands.is_empty(), "waits for the refund: {commands:?}");
    assert_eq!(rejecting.step(RESERVE), Step::Succeeded);
    let (refunded, commands) = apply(&definition, &rejecting, Event::Compensated(AUTHORIZE));
    assert_eq!(commands, [Command::Compensate(RESERVE)]);
    let (done, commands) = apply(&definition, &refunded, Event::Compensated(RESERVE));
    assert_eq!(done.phase, Phase::Rejected);
    assert!(matches!(
        commands.as_slice(),
        [Command::EmitRejected { .. }]
    ));
}

#[test]
fn a_failing_compensation_parks_and_completes_when_it_finally_succeeds() {
    let definition = order();
    let compensating = after(
        &definition,
        [Event::StepSucceeded(RESERVE), failed(AUTHORIZE, "declined")],
    );
    let (parked, _) = apply(&definition, &compensating, compensation_failing(RESERVE));
    assert_eq!(parked.phase, Phase::Parked);
    let reserve = &definition.steps()[RESERVE].name;
    assert!(parked.reason.contains(&format!("{reserve} keeps failing")));
    let (done, commands) = apply(&definition, &parked, Event::Compensated(RESERVE));
    assert_eq!(done.phase, Phase::Rejected);
    assert_eq!(
        commands.len(),
        1,
        "the rejection is emitted once the compensation is done"
    );
}

/// The parking note ("; parked: compensating <step> keeps failing") says why the
/// saga waited; the rejection it emits once its compensation succeeds on its own says why it
/// was rejected, as after an operator's retry.
#[test]
fn a_parked_saga_that_completes_on_its_own_emits_its_rejection_reason() {
    let definition = order();
    let (done, commands) = apply(
        &definition,
        &parked_on_the_reservation(),
        Event::Compensated(RESERVE),
    );
    assert_eq!(done.reason, "insufficient funds");
    assert_eq!(
        commands,
        [Command::EmitRejected {
            reason: "insufficient funds".into()
        }]
    );
}

#[test]
fn compensated_without_a_request_is_an_error() {
    let definition = order();
    assert_eq!(
        transition(
            &definition,
            &Saga::new(&definition),
            Event::Compensated(AUTHORIZE)
        ),
        Err(Error::NotCompensating(AUTHORIZE, Step::Pending))
    );
}

#[test]
fn an_event_naming_a_step_the_definition_lacks_is_refused() {
    let definition = order();
    let saga = Saga::new(&definition);
    for step in [2, 99] {
        for event in [
            Event::StepSucceeded(step),
            failed(step, "what step?"),
            Event::Compensated(step),
            compensation_failing(step),
            Event::OperatorResolved(step),
        ] {
            assert_eq!(
                transition(&definition, &saga, event),
                Err(Error::UnknownStep(step))
            );
        }
    }
}

/// The charge declined, and releasing the reservation keeps failing.
fn parked_on_the_reservation() -> Saga {
    let definition = order();
    after(
        &definition,
        [
            Event::StepSucceeded(RESERVE),
            failed(AUTHORIZE, "insufficient funds"),
            compensation_failing(RESERVE),
        ],
    )
}

#[test]
fn operator_retry_sends_a_parked_saga_back_to_compensating() {
    let definition = order();
    let (retried, commands) = apply(
        &definition,
        &parked_on_the_reservation(),
        Event::OperatorRetry,
    );
    assert_eq!(retried.phase, Phase::Compensating);
    assert_eq!(
        retried.reason, "insufficient funds",
        "the rejection's own reason is back"
    );
    assert_eq!(commands, [Command::Compensate(RESERVE)]);
    let (done, commands) = apply(&definition, &retried, Event::Compensated(RESERVE));
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
    let definition = order();
    let mut saga = parked_on_the_reservation();
    for _ in 0..5 {
        saga = apply(&definition, &saga, Event::OperatorRetry).0;
        let failing = Event::CompensationFailing {
            step: RESERVE,
            reason: "x".repeat(500),
        };
        saga = apply(&definition, &saga, failing).0;
    }
    let reserve = &definition.steps()[RESERVE].name;
    assert_eq!(
        saga.reason,
        format!("insufficient funds; parked: compensating {reserve} keeps failing")
    );
}

#[test]
fn operator_actions_apply_to_parked_sagas_only() {
    let definition = order();
    let compensating = after(
        &definition,
        [Event::StepSucceeded(RESERVE), failed(AUTHORIZE, "declined")],
    );
    assert_eq!(compensating.phase, Phase::Compensating);
    for saga in [Saga::new(&definition), compensating] {
        assert_eq!(
            transition(&definition, &saga, Event::OperatorRetry),
            Err(Error::NotParked(saga.phase))
        );
        assert_eq!(
            transition(&definition, &saga, Event::OperatorResolved(RESERVE)),
            Err(Error::NotParked(saga.phase))
        );
    }
    assert_eq!(
        transition(
            &definition,
            &parked_on_the_reservation(),
            Event::OperatorResolved(AUTHORIZE)
        ),
        Err(Error::NotCompensating(AUTHORIZE, Step::Failed)),
        "only an open compensation, or a success the saga cannot undo, is resolved by hand"
    );
}

#[test]
fn operator_resolving_the_last_open_compensation_rejects_once() {
    let definition = order();
    let (done, commands) = apply(
        &definition,
        &parked_on_the_reservation(),
        Event::OperatorResolved(RESERVE),
    );
    assert_eq!(
        (done.phase, done.step(RESERVE)),
        (Phase::Rejected, Step::Compensated)
    );
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert!(
        matches!(&commands[0], Command::EmitRejected { reason } if reason.contains("insufficient funds"))
    );
    assert!(
        transition(&definition, &done, Event::OperatorResolved(RESERVE)).is_err(),
        "a finished saga is not resolved again"
    );
}

#[test]
fn operator_resolving_one_compensation_runs_the_others_again() {
    let definition = order();
    // The charge's late success opened its refund while the release was open: both are, and the
    // refund keeps failing.
    let both = after(
        &definition,
        [
            Event::StepSucceeded(RESERVE),
            Event::DeadlinePassed,
            Event::StepSucceeded(AUTHORIZE),
            compensation_failing(AUTHORIZE),
        ],
    );
    assert_eq!(both.phase, Phase::Parked);
    assert_eq!(both.steps, [Step::Compensating, Step::Compensating]);
    let (next, commands) = apply(&definition, &both, Event::OperatorResolved(AUTHORIZE));
    assert_eq!(next.phase, Phase::Compensating);
    assert_eq!(next.step(AUTHORIZE), Step::Compensated);
    assert_eq!(commands, [Command::Compensate(RESERVE)]);
}

#[test]
fn a_late_success_parked_after_the_outcome_never_emits_it_again() {
    let definition = order();
    let rejected = after(
        &definition,
        [
            failed(RESERVE, "out of stock"),
            Event::StepSucceeded(AUTHORIZE),
        ],
    );
    assert_eq!(
        (rejected.phase, rejected.step(AUTHORIZE)),
        (Phase::Rejected, Step::Compensating)
    );
    assert!(rejected.outcome_emitted);
    let (parked, _) = apply(&definition, &rejected, compensation_failing(AUTHORIZE));
    assert_eq!(parked.phase, Phase::Parked);
    let (done, commands) = apply(&definition, &parked, Event::OperatorResolved(AUTHORIZE));
    assert_eq!(done.phase, Phase::Rejected);
    assert!(commands.is_empty(), "{commands:?}");
}

fn any_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Started),
        Just(Event::StepSucceeded(RESERVE)),
        Just(failed(RESERVE, "short")),
        Just(Event::StepSucceeded(AUTHORIZE)),
        Just(failed(AUTHORIZE, "broke")),
        Just(Event::DeadlinePassed),
    ]
}

proptest! {
    #![proptest_config(cases())]

    /// Any order, any duplicates: one outcome at most, and it matches what the steps hold.
    #[test]
    fn random_histories_keep_the_invariants(events in proptest::collection::vec(any_event(), 0..12)) {
        let definition = order();
        let History { saga, outcomes, .. } = run(&definition, events.clone());
        prop_assert!(outcomes.len() <= 1, "one outcome at most: {outcomes:?}");
        match saga.phase {
            // I3/I2: confirmed means both steps hold their effect, nothing undone.
            Phase::Confirmed => {
                prop_assert_eq!(&saga.steps, &[Step::Succeeded, Step::Succeeded]);
                prop_assert_eq!(&outcomes, &[Command::EmitConfirmed]);
            }
            // Rejected means no step still holds stock or money.
            Phase::Rejected => {
                for step in &saga.steps {
                    prop_assert!(matches!(step, Step::Pending | Step::Failed | Step::Compensated));
                }
                let rejected_once = matches!(outcomes.as_slice(), [Command::EmitRejected { .. }]);
                prop_assert!(rejected_once, "{:?}", outcomes);
            }
            Phase::Running => prop_assert!(outcomes.is_empty()),
            Phase::Compensating | Phase::Parked => prop_assert!(false, "compensations always finish here"),
        }
        // I1: once the deadline passes, every saga is terminal.
        let late = run(&definition, events.into_iter().chain([Event::DeadlinePassed]));
        prop_assert!(late.saga.is_terminal());
        prop_assert!(late.outcomes.len() <= 1);
    }
}

fn any_event_with_failures() -> impl Strategy<Value = Event> {
    let step = || prop_oneof![Just(RESERVE), Just(AUTHORIZE)];
    prop_oneof![
        4 => any_event(),
        1 => step().prop_map(|step| Event::CompensationFailing { step, reason: "down".into() }),
        1 => Just(Event::OperatorRetry),
        1 => step().prop_map(Event::OperatorResolved),
    ]
}

proptest! {
    #![proptest_config(cases())]

    /// Compensations that fail and park, operators retrying and resolving at any time: only
    /// operator actions are refused, a saga never confirms after it started rejecting, and once
    /// the deadline passes and an operator retries every parked saga whose compensations then
    /// succeed, each saga is terminal with one outcome at most, and a rejection's reason carries
    /// no parking note.
    #[test]
    fn operator_actions_keep_the_invariants(events in proptest::collection::vec(any_event_with_failures(), 0..16)) {
        let definition = order();
        let mut saga = Saga::new(&definition);
        let mut outcomes = Vec::new();
        for event in events.into_iter().chain([Event::DeadlinePassed]) {
            let operator = matches!(event, Event::OperatorRetry | Event::OperatorResolved(_));
            match transition(&definition, &saga, event) {
                Ok((next, commands)) => {
                    assert_monotone(&saga, &next);
                    saga = next;
                    outcomes.extend(commands.into_iter().filter(is_outcome));
                }
                Err(error) => prop_assert!(operator, "only operator actions are refused: {error}"),
            }
        }
        // Heal: the operator retries a parked saga, and every open compensation succeeds (each
        // may open the one before it).
        if saga.phase == Phase::Parked {
            saga = apply(&definition, &saga, Event::OperatorRetry).0;
        }
        while let Some(open) = saga.steps.iter().rposition(|step| *step == Step::Compensating) {
            let (next, commands) = apply(&definition, &saga, Event::Compensated(open));
            assert_monotone(&saga, &next);
            saga = next;
            outcomes.extend(commands.into_iter().filter(is_outcome));
        }
        prop_assert!(saga.is_terminal(), "{saga:?}");
        prop_assert!(outcomes.len() <= 1, "{outcomes:?}");
        prop_assert_eq!(saga.outcome_emitted, outcomes.len() == 1);
        // However often it parked, the rejection says why it was rejected, not why it waited.
        if let Some(Command::EmitRejected { reason }) = outcomes.first() {
            prop_assert!(!reason.is_empty() && !reason.contains(PARKED), "{reason:?}");
        }
    }
}
