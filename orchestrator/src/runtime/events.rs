//! The orchestrator's consumer: every domain event of an order becomes a core event for its
//! saga, by what the saga's definition says the event means (its trigger, or a step's success
//! or failure). It reads only the envelope: the event type and the saga facts (customer, total,
//! why a step failed). Whichever event arrives first creates the saga (events of different
//! topics can arrive in any order).

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicI64, Ordering},
};

use orderly_common::{
    kafka::envelope::Event,
    messaging::{Handler, HandlerError},
};
use orderly_proto::common::v1::Money;
use orderly_saga::{Definition, Outcome, Versions};
use sea_orm::DatabaseTransaction;
use tokio::sync::Notify;

use super::{
    Meta, NewSaga, Settings,
    apply::{ApplyError, apply},
    timers::Alarm,
};
use crate::{
    core::{self, Command},
    store::Tables,
};

pub const CONSUMER: &str = "orchestrator";

/// Every topic some version of the saga's events travel on.
pub fn topics(versions: &Versions) -> Vec<String> {
    let mut topics: Vec<String> = Vec::new();
    for topic in versions.all().flat_map(|definition| definition.topics()) {
        if !topics.iter().any(|known| known == topic) {
            topics.push(topic.to_owned());
        }
    }
    topics
}

pub struct Reactions {
    pub settings: Settings,
    /// Wakes the compensator when a transition asks for a compensation.
    pub compensations: Arc<Notify>,
    /// A transition asked for a compensation that is not committed yet.
    pub compensation_due: AtomicBool,
    /// Wakes the deadline timer when a committed deadline falls before its next look.
    pub alarm: Arc<Alarm>,
    /// No deadline armed by an event not yet committed falls before this (milliseconds since
    /// the epoch; [`NO_DEADLINE`] when none was).
    pub deadlines_from: AtomicI64,
}

pub const NO_DEADLINE: i64 = i64::MAX;

impl Handler for Reactions {
    async fn handle(&self, txn: &DatabaseTransaction, event: &Event) -> Result<(), HandlerError> {
        let commands = react(txn, &self.settings, event)
            .await
            .map_err(|error| match error {
                ApplyError::Database(error) => HandlerError::Transient(error),
                ApplyError::Invalid(reason) => HandlerError::Invalid(reason),
                ApplyError::Refused(error) => HandlerError::Invalid(error.to_string()),
            })?;
        if commands
            .iter()
            .any(|command| matches!(command, Command::Compensate(_)))
        {
            self.compensation_due.store(true, Ordering::Relaxed);
        }
        // Whatever this event armed (a new saga's first deadline, a step's), it is no sooner.
        let earliest = orderly_common::time::now() + self.settings.shortest_timeout();
        self.deadlines_from
            .fetch_min(earliest.timestamp_millis(), Ordering::Relaxed);
        Ok(())
    }

    /// Every event some version of the saga names: its trigger, or a step's outcome. The
    /// orchestrator reads only the envelope (type and saga facts), so it follows steps whose
    /// payload types this build does not know.
    fn understands(&self, event: &Event) -> bool {
        let event_type = event.event_type();
        self.settings.versions.all().any(|definition| {
            definition.trigger() == event_type || definition.outcome_of(event_type).is_some()
        })
    }

    /// The timer and the compensator are woken once the change is committed, or they would not
    /// see it yet.
    fn committed(&self, _event: &Event) {
        let earliest = self.deadlines_from.swap(NO_DEADLINE, Ordering::Relaxed);
        if let Some(earliest) = chrono::DateTime::from_timestamp_millis(earliest) {
            self.alarm.deadline_committed(earliest);
        }
        if self.compensation_due.swap(false, Ordering::Relaxed) {
            self.compensations.notify_one();
        }
    }
}

/// Applies `event` to its order's saga in `txn`, creating the saga from whichever of its events
/// comes first; returns what the caller must act on after the commit.
pub async fn react(
    txn: &impl Tables,
    settings: &Settings,
    event: &Event,
) -> Result<Vec<Command>, ApplyError> {
    let facts = event.saga_facts();
    let event_type = event.event_type();
    let create = new_saga(&facts.customer_id, facts.total.as_ref());
    let note = if facts.reason.is_empty() {
        event_type.to_owned()
    } else {
        format!("{event_type}: {}", facts.reason)
    };
    let meta = Meta {
        event_id: event.event_id.to_string(),
        event_type: event_type.to_owned(),
        note,
    };
    let reason = facts.reason.as_str();
    let to_core = |definition: &Definition| core_event(definition, event_type, reason);
    apply(txn, event.order_id, to_core, meta, create, settings).await
}

fn new_saga(customer_id: &str, total: Option<&Money>) -> Option<NewSaga> {
    let total = total.filter(|total| total.amount_minor > 0 && !total.currency.is_empty())?;
    (!customer_id.is_empty()).then(|| NewSaga {
        customer_id: customer_id.to_owned(),
        total: total.clone(),
    })
}

/// What `event_type` means to a saga of `definition`: its trigger, a step's success or failure,
/// or nothing (`None`).
fn core_event(definition: &Definition, event_type: &str, reason: &str) -> Option<core::Event> {
    if event_type == definition.trigger() {
        return Some(core::Event::Started);
    }
    let (step, outcome) = definition.outcome_of(event_type)?;
    Some(match outcome {
        Outcome::Succeeded => core::Event::StepSucceeded(step),
        Outcome::Failed => core::Event::StepFailed {
            step,
            reason: reason.to_owned(),
        },
    })
}
