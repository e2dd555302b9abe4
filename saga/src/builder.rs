//! The builder: reads like the saga it declares. `.step(name)` opens a step; the calls after it
//! describe that step until the next `.step`; `.build()` validates the whole.

use std::time::Duration;

use crate::{
    Compensation, Definition, DefinitionError, RetryPolicy, StepDefinition, validate::validate,
};

/// A saga being declared.
#[derive(Clone, Debug)]
pub struct Builder {
    name: String,
    version: u32,
    trigger_topic: String,
    steps: Vec<StepDefinition>,
    /// A call that describes a step before any `.step` was opened.
    orphan: Option<&'static str>,
}

impl Definition {
    /// Starts declaring version `version` of the saga called `name`.
    pub fn named(name: impl Into<String>, version: u32) -> Builder {
        Builder {
            name: name.into(),
            version,
            trigger_topic: String::new(),
            steps: Vec::new(),
            orphan: None,
        }
    }
}

impl Builder {
    /// The topic the saga's trigger (the first step's `starts_on`) is published to.
    pub fn trigger_topic(mut self, topic: impl Into<String>) -> Self {
        self.trigger_topic = topic.into();
        self
    }

    /// Opens the next step, in forward order.
    pub fn step(mut self, name: impl Into<String>) -> Self {
        self.steps.push(StepDefinition {
            name: name.into(),
            participant: String::new(),
            starts_on: String::new(),
            topic: String::new(),
            succeeded_on: Vec::new(),
            failed_on: Vec::new(),
            compensation: None,
            pivot: false,
            retry: None,
            timeout: None,
        });
        self
    }

    /// The participant that runs the step.
    pub fn by(self, participant: impl Into<String>) -> Self {
        let participant = participant.into();
        self.with_step("by", |step| step.participant = participant)
    }

    /// The event the participant reacts to.
    pub fn starts_on(self, event_type: impl Into<String>) -> Self {
        let event_type = event_type.into();
        self.with_step("starts_on", |step| step.starts_on = event_type)
    }

    /// The topic the participant publishes the step's outcome events to.
    pub fn reports_to(self, topic: impl Into<String>) -> Self {
        let topic = topic.into();
        self.with_step("reports_to", |step| step.topic = topic)
    }

    /// An event that means the step succeeded (call again for another).
    pub fn succeeds_on(self, event_type: impl Into<String>) -> Self {
        let event_type = event_type.into();
        self.with_step("succeeds_on", |step| step.succeeded_on.push(event_type))
    }

    /// An event that means the step failed (call again for another).
    pub fn fails_on(self, event_type: impl Into<String>) -> Self {
        let event_type = event_type.into();
        self.with_step("fails_on", |step| step.failed_on.push(event_type))
    }

    /// The participant's compensation RPC (`/package.Service/Method`).
    pub fn compensated_by(self, method: impl Into<String>) -> Self {
        let method = method.into();
        self.with_step("compensated_by", |step| {
            step.compensation = Some(Compensation { method });
        })
    }

    /// Marks the step as the pivot: once it succeeded the saga only goes forward.
    pub fn pivot(self) -> Self {
        self.with_step("pivot", |step| step.pivot = true)
    }

    /// How the step's compensation is retried before its saga parks.
    pub fn retry(self, policy: RetryPolicy) -> Self {
        self.with_step("retry", |step| step.retry = Some(policy))
    }

    /// How long the step may take to answer once started.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with_step("timeout", |step| step.timeout = Some(timeout))
    }

    /// Validates the declaration; the error names the step and the rule it breaks.
    pub fn build(self) -> Result<Definition, DefinitionError> {
        let definition = Definition {
            name: self.name,
            version: self.version,
            trigger_topic: self.trigger_topic,
            steps: self.steps,
        };
        if let Some(call) = self.orphan {
            return Err(DefinitionError::orphan(&definition, call));
        }
        validate(&definition)?;
        Ok(definition)
    }

    fn with_step(mut self, call: &'static str, change: impl FnOnce(&mut StepDefinition)) -> Self {
        match self.steps.last_mut() {
            Some(step) => change(step),
            None => {
                self.orphan.get_or_insert(call);
            }
        }
        self
    }
}
