//! The rules a definition must keep, checked when it is built (so when a process starts): a bad
//! definition stops the process with an error naming the step and the rule.

use std::collections::HashMap;

use crate::{Definition, StepDefinition};

/// A rule a definition breaks, with the step it was found at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("saga {saga} v{version}{}: {rule}", step.as_ref().map(|step| format!(", step {step}")).unwrap_or_default())]
pub struct DefinitionError {
    pub saga: String,
    pub version: u32,
    /// The step at fault (`None` for the saga as a whole).
    pub step: Option<String>,
    pub rule: Rule,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rule {
    #[error("a saga needs at least one step")]
    NoSteps,
    #[error("versions start at 1")]
    VersionZero,
    #[error("`{0}` was called before any `.step(name)`")]
    NoStepOpen(&'static str),
    #[error("a step name is lowercase letters, digits and underscores")]
    BadName,
    #[error("the name is taken by an earlier step")]
    DuplicateName,
    #[error("no participant runs it (`.by(participant)`)")]
    NoParticipant,
    #[error("no event starts it (`.starts_on(event)`)")]
    NoTrigger,
    #[error("no topic carries the saga's trigger (`.trigger_topic(topic)`)")]
    NoTriggerTopic,
    #[error("no topic carries its outcome events (`.reports_to(topic)`)")]
    NoTopic,
    #[error("no event says it succeeded (`.succeeds_on(event)`)")]
    NoSuccessEvent,
    #[error(
        "it starts on {event}, which is not an event step {previous} succeeds on: the chain is broken"
    )]
    ChainBroken { event: String, previous: String },
    #[error("the saga's trigger {0} is also a step's outcome: the chain loops")]
    TriggerIsOutcome(String),
    #[error("event {event} is already claimed by step {by}")]
    EventClaimedTwice { event: String, by: String },
    #[error("a saga has one pivot; step {0} is one already")]
    SecondPivot(String),
    #[error(
        "it comes before the pivot (or there is none) and has no compensation (`.compensated_by(rpc)`)"
    )]
    NotCompensable,
    #[error(
        "it is the pivot or comes after it, so it is never compensated: drop `.compensated_by`"
    )]
    CompensatedAfterPivot,
    #[error(
        "it comes after the pivot, so it may not fail (it is retried until it succeeds): drop `.fails_on`"
    )]
    FailsAfterPivot,
    #[error("compensation {0:?} is not a gRPC path like /package.Service/Method")]
    BadMethod(String),
    #[error(
        "its retry policy needs at least one attempt and an initial backoff no longer than the maximum"
    )]
    BadRetry,
    #[error("its timeout is zero")]
    ZeroTimeout,
}

impl DefinitionError {
    fn new(definition: &Definition, step: Option<&StepDefinition>, rule: Rule) -> Self {
        Self {
            saga: definition.name.clone(),
            version: definition.version,
            step: step.map(|step| step.name.clone()),
            rule,
        }
    }

    pub(crate) fn orphan(definition: &Definition, call: &'static str) -> Self {
        Self::new(definition, None, Rule::NoStepOpen(call))
    }
}

pub(crate) fn validate(definition: &Definition) -> Result<(), DefinitionError> {
    let fail =
        |step: Option<&StepDefinition>, rule| Err(DefinitionError::new(definition, step, rule));
    if definition.version == 0 {
        return fail(None, Rule::VersionZero);
    }
    let Some(first) = definition.steps.first() else {
        return fail(None, Rule::NoSteps);
    };
    if definition.trigger_topic.is_empty() {
        return fail(None, Rule::NoTriggerTopic);
    }
    let pivot = definition.steps.iter().position(|step| step.pivot);
    let mut claimed: HashMap<&str, &str> = HashMap::new();
    for (index, step) in definition.steps.iter().enumerate() {
        if let Err(rule) = check_step(definition, index, step, pivot, &mut claimed) {
            return fail(Some(step), rule);
        }
    }
    if claimed.contains_key(first.starts_on.as_str()) {
        return fail(Some(first), Rule::TriggerIsOutcome(first.starts_on.clone()));
    }
    Ok(())
}

fn check_step<'a>(
    definition: &'a Definition,
    index: usize,
    step: &'a StepDefinition,
    pivot: Option<usize>,
    claimed: &mut HashMap<&'a str, &'a str>,
) -> Result<(), Rule> {
    let valid_name = !step.name.is_empty()
        && step
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid_name {
        return Err(Rule::BadName);
    }
    if definition.steps[..index]
        .iter()
        .any(|earlier| earlier.name == step.name)
    {
        return Err(Rule::DuplicateName);
    }
    if step.participant.is_empty() {
        return Err(Rule::NoParticipant);
    }
    if step.starts_on.is_empty() {
        return Err(Rule::NoTrigger);
    }
    if step.topic.is_empty() {
        return Err(Rule::NoTopic);
    }
    if step.succeeded_on.is_empty() {
        return Err(Rule::NoSuccessEvent);
    }
    if let Some(previous) = index.checked_sub(1).map(|i| &definition.steps[i])
        && !previous.succeeded_on.contains(&step.starts_on)
    {
        return Err(Rule::ChainBroken {
            event: step.starts_on.clone(),
            previous: previous.name.clone(),
        });
    }
    for event in step.succeeded_on.iter().chain(&step.failed_on) {
        if let Some(by) = claimed.insert(event, &step.name) {
            return Err(Rule::EventClaimedTwice {
                event: event.clone(),
                by: by.to_owned(),
            });
        }
    }
    if step.pivot && pivot != Some(index) {
        let first = pivot.map(|i| definition.steps[i].name.clone());
        return Err(Rule::SecondPivot(first.unwrap_or_default()));
    }
    let before_pivot = pivot.is_none_or(|pivot| index < pivot);
    match (&step.compensation, before_pivot) {
        (None, true) => return Err(Rule::NotCompensable),
        (Some(_), false) => return Err(Rule::CompensatedAfterPivot),
        (Some(compensation), true) if !is_grpc_path(&compensation.method) => {
            return Err(Rule::BadMethod(compensation.method.clone()));
        }
        _ => {}
    }
    if pivot.is_some_and(|pivot| index > pivot) && !step.failed_on.is_empty() {
        return Err(Rule::FailsAfterPivot);
    }
    if let Some(retry) = step.retry
        && (retry.max_attempts == 0 || retry.initial_backoff > retry.max_backoff)
    {
        return Err(Rule::BadRetry);
    }
    if step.timeout.is_some_and(|timeout| timeout.is_zero()) {
        return Err(Rule::ZeroTimeout);
    }
    Ok(())
}

/// `/package.Service/Method`: a leading slash, a dotted service, a method.
fn is_grpc_path(method: &str) -> bool {
    let Some((service, name)) = method
        .strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
    else {
        return false;
    };
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    service.contains('.') && service.split('.').all(word) && word(name)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::RetryPolicy;

    const RELEASE: &str = "/shop.Stock/Release";
    const REFUND: &str = "/shop.Pay/Refund";

    fn two_steps() -> crate::Builder {
        Definition::named("shop", 1)
            .trigger_topic("orders")
            .step("reserve")
            .by("stock")
            .reports_to("stock")
            .starts_on("Placed")
            .succeeds_on("Reserved")
            .fails_on("OutOfStock")
            .compensated_by(RELEASE)
            .step("charge")
            .by("pay")
            .reports_to("pay")
            .starts_on("Reserved")
            .succeeds_on("Charged")
            .fails_on("Declined")
    }

    fn broken(builder: crate::Builder) -> (Option<String>, Rule) {
        let error = builder
            .build()
            .expect_err("the definition should be refused");
        (error.step, error.rule)
    }

    #[test]
    fn a_well_formed_saga_builds() {
        let saga = two_steps().compensated_by(REFUND).build().unwrap();
        assert_eq!(saga.trigger(), "Placed");
        assert_eq!(saga.pivot(), None);
        assert_eq!(saga.participants(), ["stock", "pay"]);
        let pivoted = two_steps().pivot().build().unwrap();
        assert_eq!(pivoted.pivot(), Some(1));
    }

    #[test]
    fn every_step_before_the_pivot_is_compensable() {
        assert_eq!(
            broken(two_steps()),
            (Some("charge".into()), Rule::NotCompensable)
        );
    }

    #[test]
    fn the_chain_is_connected_and_does_not_loop() {
        // The second step starts on the saga's trigger instead of the first step's success.
        let (step, rule) = broken(two_steps().compensated_by(REFUND).starts_on("Placed"));
        assert_eq!(step.as_deref(), Some("charge"));
        assert!(matches!(rule, Rule::ChainBroken { .. }), "{rule}");
        let looped = Definition::named("shop", 1)
            .trigger_topic("orders")
            .step("reserve")
            .by("stock")
            .reports_to("stock")
            .starts_on("Placed")
            .succeeds_on("Placed")
            .compensated_by(RELEASE);
        assert_eq!(
            broken(looped),
            (
                Some("reserve".into()),
                Rule::TriggerIsOutcome("Placed".into())
            )
        );
    }

    #[test]
    fn names_are_unique_and_events_claimed_once() {
        let duplicate = two_steps()
            .compensated_by(REFUND)
            .step("reserve")
            .by("x")
            .reports_to("x")
            .starts_on("Charged")
            .succeeds_on("Done")
            .compensated_by(RELEASE);
        assert_eq!(
            broken(duplicate),
            (Some("reserve".into()), Rule::DuplicateName)
        );
        let claimed = two_steps().fails_on("OutOfStock").compensated_by(REFUND);
        let (step, rule) = broken(claimed);
        assert_eq!(step.as_deref(), Some("charge"));
        assert_eq!(
            rule,
            Rule::EventClaimedTwice {
                event: "OutOfStock".into(),
                by: "reserve".into()
            }
        );
    }

    #[test]
    fn after_the_pivot_nothing_is_compensated_and_nothing_fails() {
        let after = |builder: crate::Builder| {
            builder
                .step("ship")
                .by("shipping")
                .reports_to("shipping")
                .starts_on("Charged")
                .succeeds_on("Shipped")
        };
        assert!(after(two_steps().pivot()).build().is_ok());
        assert_eq!(
            broken(after(two_steps().pivot()).fails_on("Lost")),
            (Some("ship".into()), Rule::FailsAfterPivot)
        );
        assert_eq!(
            broken(after(two_steps().pivot()).compensated_by("/a.B/C")),
            (Some("ship".into()), Rule::CompensatedAfterPivot)
        );
        assert_eq!(
            broken(after(two_steps().pivot()).pivot()),
            (Some("ship".into()), Rule::SecondPivot("charge".into()))
        );
    }

    #[test]
    fn settings_are_checked() {
        let bad_method = two_steps().compensated_by("Refund");
        assert_eq!(
            broken(bad_method),
            (Some("charge".into()), Rule::BadMethod("Refund".into()))
        );
        let no_attempts = two_steps().compensated_by(REFUND).retry(RetryPolicy {
            max_attempts: 0,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        });
        assert_eq!(broken(no_attempts), (Some("charge".into()), Rule::BadRetry));
        let instant = two_steps().compensated_by(REFUND).timeout(Duration::ZERO);
        assert_eq!(broken(instant), (Some("charge".into()), Rule::ZeroTimeout));
        assert_eq!(
            broken(Definition::named("shop", 1).by("x")),
            (None, Rule::NoStepOpen("by"))
        );
        assert_eq!(broken(Definition::named("shop", 1)), (None, Rule::NoSteps));
        let untopical = Definition::named("shop", 1)
            .step("reserve")
            .by("stock")
            .starts_on("Placed")
            .succeeds_on("Reserved")
            .compensated_by(RELEASE);
        assert_eq!(broken(untopical.clone()), (None, Rule::NoTriggerTopic));
        assert_eq!(
            broken(untopical.trigger_topic("orders")),
            (Some("reserve".into()), Rule::NoTopic)
        );
    }

    #[test]
    fn the_error_names_saga_step_and_rule() {
        let error = two_steps().build().unwrap_err();
        assert_eq!(
            error.to_string(),
            "saga shop v1, step charge: it comes before the pivot (or there is none) and has no compensation (`.compensated_by(rpc)`)"
        );
    }
}
