//! How the core's states are stored: the names of the proto enums, so the database, the API and
//! the logs all say the same thing.

use orderly_proto::saga::v1::{SagaState, StepStatus};

use crate::core::{Phase, Step};

pub fn phase_name(phase: Phase) -> &'static str {
    let state = match phase {
        Phase::Running => SagaState::Running,
        Phase::Compensating => SagaState::Compensating,
        Phase::Confirmed => SagaState::Confirmed,
        Phase::Rejected => SagaState::Rejected,
        Phase::Parked => SagaState::Parked,
    };
    state.as_str_name()
}

pub fn phase(name: &str) -> Option<Phase> {
    match SagaState::from_str_name(name)? {
        SagaState::Unspecified => None,
        SagaState::Running => Some(Phase::Running),
        SagaState::Compensating => Some(Phase::Compensating),
        SagaState::Confirmed => Some(Phase::Confirmed),
        SagaState::Rejected => Some(Phase::Rejected),
        SagaState::Parked => Some(Phase::Parked),
    }
}

pub fn step_name(step: Step) -> &'static str {
    let status = match step {
        Step::Pending => StepStatus::StepPending,
        Step::Succeeded => StepStatus::StepSucceeded,
        Step::Failed => StepStatus::StepFailed,
        Step::Compensating => StepStatus::StepCompensating,
        Step::Compensated => StepStatus::StepCompensated,
    };
    status.as_str_name()
}

pub fn step(name: &str) -> Option<Step> {
    match StepStatus::from_str_name(name)? {
        StepStatus::Unspecified => None,
        StepStatus::StepPending => Some(Step::Pending),
        StepStatus::StepSucceeded => Some(Step::Succeeded),
        StepStatus::StepFailed => Some(Step::Failed),
        StepStatus::StepCompensating => Some(Step::Compensating),
        StepStatus::StepCompensated => Some(Step::Compensated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [
            Phase::Running,
            Phase::Compensating,
            Phase::Confirmed,
            Phase::Rejected,
            Phase::Parked,
        ] {
            assert_eq!(phase(phase_name(p)), Some(p));
        }
        for s in [
            Step::Pending,
            Step::Succeeded,
            Step::Failed,
            Step::Compensating,
            Step::Compensated,
        ] {
            assert_eq!(step(step_name(s)), Some(s));
        }
    }
}
