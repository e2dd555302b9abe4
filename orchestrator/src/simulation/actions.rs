//! What the scheduler can do to the simulated world, one atomic step each (the trace is a list
//! of them), and the rules a run may break on purpose to prove the checker notices.

use orderly_saga::StepIndex;

use super::{
    bus::{OrderId, Topic},
    world::Service,
};

/// How a compensation RPC goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Succeeds,
    /// Never reached the participant.
    FailsBeforeEffect,
    /// The participant applied it; the answer was lost.
    FailsAfterEffect,
    /// Applied and answered, but the orchestrator died before recording it.
    SucceedsThenCrash,
}

/// One scheduler step; the trace is the list of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Place(OrderId),
    /// The next message of a partition; `commit` also commits the group's offsets.
    Deliver {
        to: Service,
        topic: Topic,
        partition: usize,
        offset: usize,
        commit: bool,
    },
    /// The message just before the position again (a rebalance, a retried fetch).
    Redeliver {
        to: Service,
        topic: Topic,
        partition: usize,
        offset: usize,
    },
    CommitOffsets(Service),
    /// A delivery dropped: the process died before committing; it resumes from committed offsets.
    Crash(Service),
    /// The relay publishes the next outbox row; `crash` = the process died after the broker's
    /// ack but before marking the row sent, so the row is published again.
    Relay {
        from: Service,
        crash: bool,
    },
    FireDeadline(OrderId),
    Compensate {
        order: OrderId,
        step: StepIndex,
        call: Call,
    },
    ResumeParked(OrderId),
    /// An operator undoes by hand a success the saga cannot compensate (a late success at or
    /// after the pivot of a rejected saga), then resolves the step (the real ResolveSaga).
    ResolveByHand {
        order: OrderId,
        step: StepIndex,
    },
}

/// Rules broken on purpose, to show the checker catches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sabotage {
    None,
    NotificationWithoutInbox,
    RelayMarksSentBeforePublishing,
}
