//! The participants' compensation RPCs as the real compensator makes them, reaching the
//! simulated services; how each call goes (reached or not, answered or not) is the scheduler's.

use std::sync::Mutex;

use orderly_saga::Compensation;
use tonic::Status;
use uuid::Uuid;

use super::{
    actions::Call,
    bus::RpcError,
    generated::{self, StepParticipant},
    inventory::Inventory,
    journal::Journal,
    memory::Memory,
    payment::Payments,
};
use crate::runtime::participants::CompensationCalls;

pub struct Calls<'w> {
    services: Mutex<Services<'w>>,
    call: Call,
    /// Dies when the call is `SucceedsThenCrash`, before the compensator records the success.
    orchestrator: Memory,
}

struct Services<'w> {
    inventory: &'w mut Inventory,
    payments: &'w mut Payments,
    steps: &'w mut [StepParticipant],
    /// What the participants did, for the world's journal once the call is over.
    journal: Journal,
}

impl<'w> Calls<'w> {
    pub fn new(
        inventory: &'w mut Inventory,
        payments: &'w mut Payments,
        steps: &'w mut [StepParticipant],
        call: Call,
        orchestrator: Memory,
        step: usize,
    ) -> Self {
        let journal = Journal {
            step,
            ..Journal::default()
        };
        Self {
            services: Mutex::new(Services {
                inventory,
                payments,
                steps,
                journal,
            }),
            call,
            orchestrator,
        }
    }

    /// What the participants did and what they saw go wrong.
    pub fn into_journal(self) -> Journal {
        let services = self.services.into_inner();
        services
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .journal
    }
}

impl CompensationCalls for &Calls<'_> {
    fn failing_fast(&self, _participant: &str) -> bool {
        false
    }

    async fn compensate(
        &self,
        participant: &str,
        _compensation: &Compensation,
        order_id: &str,
        _reason: &str,
    ) -> Result<(), Status> {
        if self.call == Call::FailsBeforeEffect {
            return Err(Status::unavailable(
                "the call never reached the participant",
            ));
        }
        let order = Uuid::parse_str(order_id)
            .map_err(|error| Status::invalid_argument(error.to_string()))?
            .as_u64_pair()
            .1;
        let answer = {
            let mut services = self.services.lock().unwrap_or_else(|p| p.into_inner());
            let Services {
                inventory,
                payments,
                steps,
                journal,
            } = &mut *services;
            let step = steps
                .iter_mut()
                .find(|step| generated::participant(step.step) == participant);
            let answer = match (participant, step) {
                ("inventory", _) => inventory.release(order, journal),
                ("payment", _) => payments.refund(order, journal),
                (_, Some(step)) => step.give_back(order, journal),
                (other, None) => return Err(Status::internal(format!("no participant {other}"))),
            };
            if answer == Err(RpcError::FailedPrecondition) {
                journal.violation(format!(
                    "compensating {participant} of order {order} was refused: it would undo a sale"
                ));
            }
            answer
        };
        match (self.call, answer) {
            (Call::FailsAfterEffect, _) => Err(Status::unavailable("the answer was lost")),
            (Call::SucceedsThenCrash, _) => {
                self.orchestrator.die();
                Ok(())
            }
            (_, Ok(())) => Ok(()),
            (_, Err(RpcError::NotFound)) => Err(Status::not_found("nothing held")),
            (_, Err(RpcError::FailedPrecondition)) => {
                Err(Status::failed_precondition("it would undo a sale"))
            }
        }
    }
}
