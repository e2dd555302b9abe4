//! What a saga definition holds, and the questions the orchestrator asks of it.

use std::time::Duration;

/// A step's position in its saga, counted from 0 in forward order.
pub type StepIndex = usize;

/// A validated saga: build one with [`Definition::named`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    pub(crate) name: String,
    pub(crate) version: u32,
    /// Where the trigger (the first step's `starts_on`) is published.
    pub(crate) trigger_topic: String,
    pub(crate) steps: Vec<StepDefinition>,
}

/// One step of a saga.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepDefinition {
    /// Unique within the saga: how the API, the database and the logs name the step.
    pub name: String,
    /// The component that runs the step (and answers its compensation).
    pub participant: String,
    /// The event the participant reacts to: the saga's trigger for the first step, one of the
    /// previous step's success events for the others.
    pub starts_on: String,
    /// The topic the participant publishes the step's outcome events to.
    pub topic: String,
    /// Events that mean the step succeeded.
    pub succeeded_on: Vec<String>,
    /// Events that mean the step failed (the saga is then rejected).
    pub failed_on: Vec<String>,
    /// How the step is undone; `None` for the pivot and the steps after it.
    pub compensation: Option<Compensation>,
    /// Whether this is the pivot: once it succeeded the saga can only go forward.
    pub pivot: bool,
    /// How the compensation is retried; `None` takes the orchestrator's default.
    pub retry: Option<RetryPolicy>,
    /// How long the step may take to answer once started; `None` takes the orchestrator's
    /// default.
    pub timeout: Option<Duration>,
}

/// A participant's idempotent RPC that undoes a step. Its request carries the order id in
/// field 1 and the rejection reason in field 2 (a string each); its reply is ignored, and
/// NOT_FOUND means there was nothing to undo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compensation {
    /// The full gRPC path, `/package.Service/Method`.
    pub method: String,
}

impl Compensation {
    /// `package.Service/Method`, as spans and logs name it.
    pub fn rpc_name(&self) -> &str {
        self.method.trim_start_matches('/')
    }
}

/// How a failing compensation is retried before its saga is parked for an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Failed attempts before the saga is parked (at least 1).
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles after each further one.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait after `failures` failed attempts.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// What an event means for one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
}

impl Definition {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn steps(&self) -> &[StepDefinition] {
        &self.steps
    }

    pub fn step(&self, index: StepIndex) -> Option<&StepDefinition> {
        self.steps.get(index)
    }

    /// The step called `name`.
    pub fn index_of(&self, name: &str) -> Option<StepIndex> {
        self.steps.iter().position(|step| step.name == name)
    }

    /// The event that starts a saga (its first step's trigger).
    pub fn trigger(&self) -> &str {
        &self.steps[0].starts_on
    }

    /// Every topic the saga's events travel on: what the orchestrator consumes.
    pub fn topics(&self) -> Vec<&str> {
        let mut topics = vec![self.trigger_topic.as_str()];
        for step in &self.steps {
            if !topics.contains(&step.topic.as_str()) {
                topics.push(&step.topic);
            }
        }
        topics
    }

    /// The pivot's index, if the saga has one.
    pub fn pivot(&self) -> Option<StepIndex> {
        self.steps.iter().position(|step| step.pivot)
    }

    /// Whether `step` is undone when the saga is rejected.
    pub fn is_compensable(&self, step: StepIndex) -> bool {
        self.step(step)
            .is_some_and(|step| step.compensation.is_some())
    }

    /// Which step `event_type` answers, and how; `None` for an event no step ends with.
    pub fn outcome_of(&self, event_type: &str) -> Option<(StepIndex, Outcome)> {
        self.steps.iter().enumerate().find_map(|(index, step)| {
            if step.succeeded_on.iter().any(|event| event == event_type) {
                Some((index, Outcome::Succeeded))
            } else if step.failed_on.iter().any(|event| event == event_type) {
                Some((index, Outcome::Failed))
            } else {
                None
            }
        })
    }

    /// The steps `participant` runs.
    pub fn steps_of<'a>(&'a self, participant: &'a str) -> impl Iterator<Item = StepIndex> + 'a {
        self.steps
            .iter()
            .enumerate()
            .filter(move |(_, step)| step.participant == participant)
            .map(|(index, _)| index)
    }

    /// Every participant, in the order their first step comes.
    pub fn participants(&self) -> Vec<&str> {
        let mut participants: Vec<&str> = Vec::new();
        for step in &self.steps {
            if !participants.contains(&step.participant.as_str()) {
                participants.push(&step.participant);
            }
        }
        participants
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_failure_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        assert_eq!(policy.backoff(1), Duration::from_millis(100));
        assert_eq!(policy.backoff(3), Duration::from_millis(400));
        assert_eq!(policy.backoff(40), Duration::from_secs(1));
    }
}
