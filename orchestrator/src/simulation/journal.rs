//! What a run observed: every effect a service applied (so I5 can tell an effect that happened
//! twice) and every invariant broken on the way (I2 and I6 are checked at each step).

use orderly_saga::StepIndex;

use super::bus::OrderId;

/// An effect a service applies at most once per order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    Reserve,
    RefuseStock,
    Release,
    SellStock,
    Authorize,
    Decline,
    Capture,
    Refund,
    SetStatus,
    Notify,
    EmitOutcome,
    /// A generated saga's participant held, refused, kept or gave back its step's part.
    Hold(StepIndex),
    Refuse(StepIndex),
    Keep(StepIndex),
    GiveBack(StepIndex),
}

#[derive(Debug, Default)]
pub struct Journal {
    pub effects: Vec<(OrderId, Effect)>,
    pub violations: Vec<String>,
    /// The scheduler step being executed, so a violation says when it happened.
    pub step: usize,
    pub coverage: Coverage,
}

/// How often the rare paths ran, so a test can show the faults really reach them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    pub deadline_rejections: usize,
    pub parkings: usize,
    pub late_successes: usize,
}

impl Journal {
    pub fn effect(&mut self, order: OrderId, effect: Effect) {
        self.effects.push((order, effect));
    }

    /// Adds what `other` (a participant reached during this step) recorded.
    pub fn merge(&mut self, other: Journal) {
        self.effects.extend(other.effects);
        self.violations.extend(other.violations);
    }

    pub fn violation(&mut self, what: String) {
        self.violations.push(format!("step {}: {what}", self.step));
    }
}
