//! The saga core: a pure state machine over a saga [`Definition`]. `transition(definition,
//! &saga, event)` returns the next saga and the commands the runtime must execute (compensate a
//! step, arm a step's deadline, emit the outcome). No IO, exhaustive matches, and no participant
//! named: steps are positions in the definition.
//!
//! The forward steps run by choreography; the core only watches their outcomes. A saga is
//! CONFIRMED when every step succeeded. When a step failed or a step's deadline passed, the
//! steps that succeeded are compensated strictly in reverse: a step's compensation starts only
//! once every later step's is confirmed. The saga ends REJECTED when none is left. Once the
//! pivot (if the definition has one) is under way or anything from it on succeeded, the saga
//! only goes forward: a deadline then re-arms instead of rejecting. A success that arrives after
//! the decision is compensated at once, never confirmed.
//!
//! Parking hands a saga to an operator: when a compensation keeps failing, or when something
//! the saga cannot undo happened while it had to go back (a late pivot success, a failure after
//! the pivot). The operator retries it (its open compensations run again) or resolves a step by
//! hand (a compensation done out of band, or an irreversible step undone out of band), after
//! which the saga finishes as it would have. A saga holding an irreversible success is only
//! finished once an operator resolved that step.

#[cfg(test)]
mod tests;

use orderly_saga::{Definition, StepIndex};

/// Where one step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Pending,
    Succeeded,
    Failed,
    /// Succeeded, and its compensation has been requested but not yet confirmed.
    Compensating,
    Compensated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Running,
    Compensating,
    Confirmed,
    Rejected,
    Parked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saga {
    pub phase: Phase,
    /// One per step of the saga's definition, in forward order.
    pub steps: Vec<Step>,
    /// Why the saga is being rejected (or was parked); empty while running or confirmed.
    pub reason: String,
    /// Whether the outcome event has been emitted (it is emitted exactly once).
    pub outcome_emitted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The saga's trigger: it exists from here, with nothing decided yet.
    Started,
    StepSucceeded(StepIndex),
    StepFailed {
        step: StepIndex,
        reason: String,
    },
    /// The deadline armed for the step under way passed.
    DeadlinePassed,
    Compensated(StepIndex),
    CompensationFailing {
        step: StepIndex,
        reason: String,
    },
    /// An operator sends a parked saga back to compensating: its open compensations run again.
    OperatorRetry,
    /// An operator declares a parked saga's open compensation done by hand.
    OperatorResolved(StepIndex),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Compensate(StepIndex),
    /// Step `0` is under way: its deadline starts now.
    ArmDeadline(StepIndex),
    EmitConfirmed,
    EmitRejected {
        reason: String,
    },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("step {0} cannot be compensated: it is {1:?}")]
    NotCompensating(StepIndex, Step),
    /// Operator actions apply to parked sagas only.
    #[error("the saga is {0:?}, not parked")]
    NotParked(Phase),
    #[error("the saga's definition has no step {0}")]
    UnknownStep(StepIndex),
    /// A retry cannot finish a saga holding a success it cannot undo: an operator must undo
    /// that step by hand and resolve it first.
    #[error("step {0} succeeded and cannot be undone by the saga: undo it by hand and resolve it")]
    CannotUndo(StepIndex),
}

impl Saga {
    /// A saga of `definition` that has just started.
    pub fn new(definition: &Definition) -> Self {
        Self {
            phase: Phase::Running,
            steps: vec![Step::Pending; definition.steps().len()],
            reason: String::new(),
            outcome_emitted: false,
        }
    }

    pub fn step(&self, step: StepIndex) -> Step {
        self.steps.get(step).copied().unwrap_or(Step::Pending)
    }

    /// The first step that has not answered: the one under way while the saga runs.
    pub fn current(&self) -> Option<StepIndex> {
        self.steps.iter().position(|step| *step == Step::Pending)
    }

    #[cfg(test)]
    pub fn is_terminal(&self) -> bool {
        matches!(self.phase, Phase::Confirmed | Phase::Rejected) && !self.has_open_compensation()
    }

    fn has_open_compensation(&self) -> bool {
        self.steps.contains(&Step::Compensating)
    }

    fn open_compensations(&self) -> impl DoubleEndedIterator<Item = StepIndex> + '_ {
        (0..self.steps.len()).filter(|index| self.steps[*index] == Step::Compensating)
    }
}

/// What parking appends to the saga's reason.
const PARKED_BECAUSE: &str = "; parked: ";

/// The reason without what parking added.
fn rejection_reason(reason: &str) -> &str {
    reason
        .split_once(PARKED_BECAUSE)
        .map_or(reason, |(rejection, _)| rejection)
}

/// Applies `event` to `saga`, a saga of `definition`.
pub fn transition(
    definition: &Definition,
    saga: &Saga,
    event: Event,
) -> Result<(Saga, Vec<Command>), Error> {
    let mut run = Run {
        definition,
        saga: saga.clone(),
        commands: Vec::new(),
    };
    if let Some(step) = event.step()
        && step >= run.saga.steps.len()
    {
        return Err(Error::UnknownStep(step));
    }
    match event {
        Event::Started => {}
        Event::StepSucceeded(step) => run.succeeded(step),
        Event::StepFailed { step, reason } => run.failed(step, reason),
        Event::DeadlinePassed => run.deadline_passed(),
        Event::Compensated(step) => {
            match run.saga.step(step) {
                Step::Compensating => run.saga.steps[step] = Step::Compensated,
                Step::Compensated => {}
                other @ (Step::Pending | Step::Succeeded | Step::Failed) => {
                    return Err(Error::NotCompensating(step, other));
                }
            }
            if run.saga.phase == Phase::Parked
                && !run.saga.has_open_compensation()
                && run.irreversible().is_none()
            {
                run.saga.phase = Phase::Compensating;
                run.saga.reason = rejection_reason(&run.saga.reason).to_owned();
            }
            run.compensate_next();
            run.finish_rejection();
        }
        // The failure itself is the runtime's to record (step detail, history): the reason only
        // says why the saga waits, stays bounded however often it parks, and is what the
        // compensation calls carry, so participants' length limits hold.
        Event::CompensationFailing { step, reason: _ } => {
            // A saga already parked for a success it cannot undo keeps saying so: that is what
            // its operator must deal with first (the failing compensation is in its history).
            let open = run.saga.step(step) == Step::Compensating;
            if open && run.saga.phase != Phase::Confirmed && run.irreversible().is_none() {
                let name = definition.steps()[step].name.clone();
                run.park(&format!("compensating {name} keeps failing"));
            }
        }
        Event::OperatorRetry => {
            if run.saga.phase != Phase::Parked {
                return Err(Error::NotParked(run.saga.phase));
            }
            if let Some(step) = run.irreversible() {
                return Err(Error::CannotUndo(step));
            }
            run.resume();
        }
        Event::OperatorResolved(step) => {
            if run.saga.phase != Phase::Parked {
                return Err(Error::NotParked(run.saga.phase));
            }
            let undone_by_hand = match run.saga.step(step) {
                Step::Compensating => true,
                Step::Succeeded => !definition.is_compensable(step),
                Step::Pending | Step::Failed | Step::Compensated => false,
            };
            if !undone_by_hand {
                return Err(Error::NotCompensating(step, run.saga.step(step)));
            }
            run.saga.steps[step] = Step::Compensated;
            // Whatever else is still open gets its chance again, as after a retry; a saga
            // still holding another irreversible success stays with its operator.
            if run.irreversible().is_none() {
                run.resume();
            }
        }
    }
    Ok((run.saga, run.commands))
}

impl Event {
    /// The step the event names, if any.
    fn step(&self) -> Option<StepIndex> {
        match self {
            Self::StepSucceeded(step)
            | Self::StepFailed { step, .. }
            | Self::Compensated(step)
            | Self::CompensationFailing { step, .. }
            | Self::OperatorResolved(step) => Some(*step),
            Self::Started | Self::DeadlinePassed | Self::OperatorRetry => None,
        }
    }
}

/// One transition under way: the saga as it becomes, and the commands it asks for.
struct Run<'a> {
    definition: &'a Definition,
    saga: Saga,
    commands: Vec<Command>,
}

impl Run<'_> {
    fn succeeded(&mut self, step: StepIndex) {
        if self.saga.step(step) != Step::Pending {
            return; // a duplicate, or a contradiction the first answer already settled
        }
        self.saga.steps[step] = Step::Succeeded;
        match self.saga.phase {
            Phase::Running => {
                if self.saga.steps.iter().all(|step| *step == Step::Succeeded) {
                    self.saga.phase = Phase::Confirmed;
                    self.saga.outcome_emitted = true;
                    self.commands.push(Command::EmitConfirmed);
                } else if let Some(next) = self.saga.current() {
                    self.commands.push(Command::ArmDeadline(next));
                }
            }
            // Decided already: a late success is undone, never confirmed.
            Phase::Compensating | Phase::Rejected | Phase::Parked => {
                if self.definition.is_compensable(step) {
                    self.compensate_next();
                } else {
                    let name = self.step_name(step);
                    self.park(&format!(
                        "{name} succeeded after the saga was rejected and cannot be compensated"
                    ));
                }
            }
            Phase::Confirmed => {}
        }
    }

    fn failed(&mut self, step: StepIndex, reason: String) {
        if self.saga.step(step) != Step::Pending {
            return;
        }
        self.saga.steps[step] = Step::Failed;
        if self.saga.phase != Phase::Running {
            return;
        }
        if let Some(done) = self.irreversible() {
            // Something that cannot be undone already happened (the definition forbids failure
            // events after the pivot; a participant sent one anyway, or events crossed): a human
            // decides, not a rejection that would leave it in place.
            let why = format!(
                "{} failed after {}, which cannot be undone: {reason}",
                self.step_name(step),
                self.step_name(done)
            );
            // The failure is the rejection's reason once an operator lets the saga finish.
            self.saga.reason = reason;
            self.park(&why);
        } else {
            self.reject(reason);
        }
    }

    fn deadline_passed(&mut self) {
        if self.saga.phase != Phase::Running {
            return;
        }
        let Some(step) = self.saga.current() else {
            return;
        };
        let pivot_under_way = self.definition.pivot().is_some_and(|pivot| step >= pivot);
        if pivot_under_way || self.irreversible().is_some() {
            // From the pivot on a saga only goes forward: it keeps waiting, and says so again
            // after another timeout.
            self.commands.push(Command::ArmDeadline(step));
        } else {
            let name = self.step_name(step);
            self.reject(format!("deadline passed before {name} answered"));
        }
    }

    /// The first step that succeeded and cannot be compensated (the pivot, or a step after
    /// it): while there is one, the saga cannot be rejected by itself.
    fn irreversible(&self) -> Option<StepIndex> {
        (0..self.saga.steps.len()).find(|step| {
            self.saga.steps[*step] == Step::Succeeded && !self.definition.is_compensable(*step)
        })
    }

    fn step_name(&self, step: StepIndex) -> &str {
        &self.definition.steps()[step].name
    }

    /// Starts rejecting: compensates what succeeded, latest step first.
    fn reject(&mut self, reason: String) {
        self.saga.phase = Phase::Compensating;
        self.saga.reason = reason;
        self.compensate_next();
        self.finish_rejection();
    }

    /// Starts the compensation of the latest compensable step that succeeded, unless a later
    /// step's compensation is still open: compensations run strictly in reverse. A parked saga
    /// starts nothing new; its operator decides.
    fn compensate_next(&mut self) {
        if self.saga.phase == Phase::Parked {
            return;
        }
        for step in (0..self.saga.steps.len()).rev() {
            match self.saga.steps[step] {
                Step::Compensating => return,
                Step::Succeeded if self.definition.is_compensable(step) => {
                    self.saga.steps[step] = Step::Compensating;
                    self.commands.push(Command::Compensate(step));
                    return;
                }
                Step::Succeeded | Step::Pending | Step::Failed | Step::Compensated => {}
            }
        }
    }

    fn park(&mut self, why: &str) {
        self.saga.phase = Phase::Parked;
        self.saga.reason = format!(
            "{}{PARKED_BECAUSE}{why}",
            rejection_reason(&self.saga.reason)
        );
    }

    /// A parked saga compensates again: every open compensation is requested anew (and the saga
    /// goes on with the next one, or finishes, when none is left).
    fn resume(&mut self) {
        self.saga.phase = Phase::Compensating;
        self.saga.reason = rejection_reason(&self.saga.reason).to_owned();
        let open: Vec<StepIndex> = self.saga.open_compensations().rev().collect();
        self.commands
            .extend(open.into_iter().map(Command::Compensate));
        self.compensate_next();
        self.finish_rejection();
    }

    /// Once nothing is left to compensate, the saga is REJECTED and says so, once.
    fn finish_rejection(&mut self) {
        if self.saga.phase == Phase::Compensating && !self.saga.has_open_compensation() {
            self.saga.phase = Phase::Rejected;
            if !self.saga.outcome_emitted {
                self.saga.outcome_emitted = true;
                self.commands.push(Command::EmitRejected {
                    reason: self.saga.reason.clone(),
                });
            }
        }
    }
}
