//! The saga core: a pure state machine. `transition(&saga, event)` returns the next saga and the
//! commands the runtime must execute (compensate, emit the outcome). No IO, exhaustive matches.
//!
//! The forward steps (reserve inventory, authorize payment) run by choreography; the core only
//! watches their outcomes. A saga is CONFIRMED when both succeeded. When one failed or the
//! deadline passed, every step that succeeded is compensated in reverse order (refund, then
//! release) and the saga ends REJECTED once they all are. A success that arrives after the
//! decision is compensated, never confirmed. A compensation that keeps failing parks the saga;
//! an operator then retries it (its open compensations run again) or resolves a compensation by
//! hand (done out of band), after which the saga finishes as it would have.

#[cfg(test)]
mod tests;

/// Steps in forward order; compensation runs in reverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StepKind {
    Inventory,
    Payment,
}

impl StepKind {
    pub const FORWARD: [StepKind; 2] = [StepKind::Inventory, StepKind::Payment];

    pub fn name(self) -> &'static str {
        match self {
            Self::Inventory => "reserve_inventory",
            Self::Payment => "authorize_payment",
        }
    }

    /// The step called `name` (as [`StepKind::name`] spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::FORWARD.into_iter().find(|kind| kind.name() == name)
    }
}

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
    pub inventory: Step,
    pub payment: Step,
    /// Why the saga is being rejected (or was parked); empty while running or confirmed.
    pub reason: String,
    /// Whether the outcome event has been emitted (it is emitted exactly once).
    pub outcome_emitted: bool,
}

impl Default for Saga {
    fn default() -> Self {
        Self {
            phase: Phase::Running,
            inventory: Step::Pending,
            payment: Step::Pending,
            reason: String::new(),
            outcome_emitted: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    OrderPlaced,
    InventoryReserved,
    InventoryRejected {
        reason: String,
    },
    PaymentAuthorized,
    PaymentDeclined {
        reason: String,
    },
    DeadlinePassed,
    Compensated(StepKind),
    CompensationFailing {
        step: StepKind,
        reason: String,
    },
    /// An operator sends a parked saga back to compensating: its open compensations run again.
    OperatorRetry,
    /// An operator declares a parked saga's open compensation done by hand.
    OperatorResolved(StepKind),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Compensate(StepKind),
    EmitConfirmed,
    EmitRejected { reason: String },
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0:?} cannot be compensated: it is {1:?}")]
    NotCompensating(StepKind, Step),
    /// Operator actions apply to parked sagas only.
    #[error("the saga is {0:?}, not parked")]
    NotParked(Phase),
}

impl Saga {
    pub fn step(&self, kind: StepKind) -> Step {
        match kind {
            StepKind::Inventory => self.inventory,
            StepKind::Payment => self.payment,
        }
    }

    fn set(&mut self, kind: StepKind, step: Step) {
        match kind {
            StepKind::Inventory => self.inventory = step,
            StepKind::Payment => self.payment = step,
        }
    }

    #[cfg(test)]
    pub fn is_terminal(&self) -> bool {
        matches!(self.phase, Phase::Confirmed | Phase::Rejected) && !self.has_open_compensation()
    }

    fn has_open_compensation(&self) -> bool {
        StepKind::FORWARD
            .iter()
            .any(|kind| self.step(*kind) == Step::Compensating)
    }
}

/// What parking appends to the saga's reason.
const PARKED_BECAUSE: &str = "; parked: compensating ";

/// The reason without what parking added.
fn rejection_reason(reason: &str) -> &str {
    reason
        .split_once(PARKED_BECAUSE)
        .map_or(reason, |(rejection, _)| rejection)
}

/// Applies `event` to `saga`.
pub fn transition(saga: &Saga, event: Event) -> Result<(Saga, Vec<Command>), Error> {
    let mut next = saga.clone();
    let mut commands = Vec::new();
    match event {
        // The saga exists from its first event; OrderPlaced adds nothing to decide on.
        Event::OrderPlaced => {}
        Event::InventoryReserved => succeeded(&mut next, &mut commands, StepKind::Inventory),
        Event::PaymentAuthorized => succeeded(&mut next, &mut commands, StepKind::Payment),
        Event::InventoryRejected { reason } => {
            failed(&mut next, &mut commands, StepKind::Inventory, reason)
        }
        Event::PaymentDeclined { reason } => {
            failed(&mut next, &mut commands, StepKind::Payment, reason)
        }
        Event::DeadlinePassed => {
            if next.phase == Phase::Running {
                reject(
                    &mut next,
                    &mut commands,
                    "deadline passed before every step answered".to_owned(),
                );
            }
        }
        Event::Compensated(kind) => {
            match next.step(kind) {
                Step::Compensating => next.set(kind, Step::Compensated),
                Step::Compensated => {}
                other => return Err(Error::NotCompensating(kind, other)),
            }
            if next.phase == Phase::Parked && !next.has_open_compensation() {
                next.phase = Phase::Compensating;
            }
            finish_rejection(&mut next, &mut commands);
        }
        // The failure itself is the runtime's to record (step detail, history): the reason only
        // says why the saga waits, stays bounded however often it parks, and is what the
        // compensation calls carry, so participants' length limits hold.
        Event::CompensationFailing { step, reason: _ } => {
            if next.step(step) == Step::Compensating && next.phase != Phase::Confirmed {
                next.phase = Phase::Parked;
                next.reason = format!(
                    "{}{PARKED_BECAUSE}{} keeps failing",
                    rejection_reason(&saga.reason),
                    step.name()
                );
            }
        }
        Event::OperatorRetry => {
            if next.phase != Phase::Parked {
                return Err(Error::NotParked(next.phase));
            }
            resume(&mut next, &mut commands);
        }
        Event::OperatorResolved(kind) => {
            if next.phase != Phase::Parked {
                return Err(Error::NotParked(next.phase));
            }
            match next.step(kind) {
                Step::Compensating => next.set(kind, Step::Compensated),
                other @ (Step::Pending | Step::Succeeded | Step::Failed | Step::Compensated) => {
                    return Err(Error::NotCompensating(kind, other));
                }
            }
            // Whatever else is still open gets its chance again, as after a retry.
            resume(&mut next, &mut commands);
        }
    }
    Ok((next, commands))
}

fn succeeded(saga: &mut Saga, commands: &mut Vec<Command>, kind: StepKind) {
    if saga.step(kind) != Step::Pending {
        return; // a duplicate, or a contradiction the first answer already settled
    }
    match saga.phase {
        Phase::Running => {
            saga.set(kind, Step::Succeeded);
            if StepKind::FORWARD
                .iter()
                .all(|step| saga.step(*step) == Step::Succeeded)
            {
                saga.phase = Phase::Confirmed;
                saga.outcome_emitted = true;
                commands.push(Command::EmitConfirmed);
            }
        }
        // Decided already: a late success is undone, never confirmed.
        Phase::Compensating | Phase::Rejected | Phase::Parked => {
            saga.set(kind, Step::Compensating);
            commands.push(Command::Compensate(kind));
        }
        Phase::Confirmed => {}
    }
}

fn failed(saga: &mut Saga, commands: &mut Vec<Command>, kind: StepKind, reason: String) {
    if saga.step(kind) != Step::Pending {
        return;
    }
    saga.set(kind, Step::Failed);
    if saga.phase == Phase::Running {
        reject(saga, commands, reason);
    }
}

/// Starts rejecting: compensates what succeeded, latest step first.
fn reject(saga: &mut Saga, commands: &mut Vec<Command>, reason: String) {
    saga.phase = Phase::Compensating;
    saga.reason = reason;
    for kind in StepKind::FORWARD.iter().rev() {
        if saga.step(*kind) == Step::Succeeded {
            saga.set(*kind, Step::Compensating);
            commands.push(Command::Compensate(*kind));
        }
    }
    finish_rejection(saga, commands);
}

/// A parked saga compensates again: every open compensation is requested anew (and the saga
/// finishes at once when none is left).
fn resume(saga: &mut Saga, commands: &mut Vec<Command>) {
    saga.phase = Phase::Compensating;
    saga.reason = rejection_reason(&saga.reason).to_owned();
    for kind in StepKind::FORWARD.iter().rev() {
        if saga.step(*kind) == Step::Compensating {
            commands.push(Command::Compensate(*kind));
        }
    }
    finish_rejection(saga, commands);
}

/// Once nothing is left to compensate, the saga is REJECTED and says so, once.
fn finish_rejection(saga: &mut Saga, commands: &mut Vec<Command>) {
    if saga.phase == Phase::Compensating && !saga.has_open_compensation() {
        saga.phase = Phase::Rejected;
        if !saga.outcome_emitted {
            saga.outcome_emitted = true;
            commands.push(Command::EmitRejected {
                reason: saga.reason.clone(),
            });
        }
    }
}
