//! An operator's hands on parked sagas: retry (run the open compensations again, with fresh
//! attempt counters) and resolve (a compensation was done by hand). Each is one core event
//! applied through `apply()`, so state, steps, history and the outcome in the outbox change in
//! one transaction; the compensator is woken to run whatever was reopened.

use std::sync::Arc;

use orderly_common::messaging::Relay;
use sea_orm::{DatabaseConnection, DbErr, entity::prelude::*};
use tokio::sync::Notify;

use orderly_saga::StepIndex;

use super::{
    Meta, Settings,
    apply::{ApplyError, Loaded, apply, load},
    mapping,
};
use crate::{
    core::{self, Command, Phase, Step},
    store::{Store, Tables},
};

/// How a resolved step's detail starts: it tells a repeated resolution from a compensation the
/// compensator completed.
const RESOLVED_BY_OPERATOR: &str = "resolved by operator: ";

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("no saga for order {0}")]
    UnknownSaga(Uuid),
    /// The action needs a parked saga; `state` is what it is instead.
    #[error("saga for order {order_id} is {state}, not PARKED")]
    NotParked { order_id: Uuid, state: &'static str },
    /// Only an open compensation, or a success the saga cannot undo, can be resolved.
    #[error(
        "step {step} of saga for order {order_id} is {status}; only a STEP_COMPENSATING step, or a step that succeeded and cannot be compensated, can be resolved"
    )]
    StepNotOpen {
        order_id: Uuid,
        step: String,
        status: &'static str,
    },
    /// A retry cannot finish a saga that holds a success it cannot undo.
    #[error(
        "saga for order {order_id} holds step {step}, which succeeded and cannot be compensated: undo it by hand and resolve it before retrying"
    )]
    CannotUndo { order_id: Uuid, step: String },
    /// The saga's definition has no step of that name.
    #[error("unknown step {step:?} for the saga of order {order_id}; expected one of {known}")]
    UnknownStep {
        order_id: Uuid,
        step: String,
        known: String,
    },
    #[error(transparent)]
    Database(#[from] DbErr),
}

#[derive(Clone)]
pub struct Operator<S = DatabaseConnection> {
    pub db: S,
    pub relay: Relay,
    /// Wakes the compensator.
    pub compensations: Arc<Notify>,
    pub settings: Settings,
}

impl<S: Store> Operator<S> {
    /// Sends a parked saga back to compensating with its open compensations' attempts reset.
    pub async fn retry(&self, order_id: Uuid) -> Result<(), OperatorError> {
        let txn = self.db.begin().await?;
        let loaded = self.parked(&txn, order_id).await?;
        let open: Vec<&str> = open_steps(&loaded, None);
        let meta = Meta {
            event_id: String::new(),
            event_type: "OperatorRetry".into(),
            note: "operator retried the open compensations".into(),
        };
        let commands = self
            .apply(&txn, &loaded, core::Event::OperatorRetry, meta)
            .await?;
        // A reopened compensation gets the full number of attempts again.
        txn.reset_attempts(order_id, &open).await?;
        S::commit(txn).await?;
        tracing::info!(order_id = %order_id, "operator retried parked saga");
        self.after_commit(&commands);
        Ok(())
    }

    /// Records that step `name`'s compensation was done by hand; the saga finishes if nothing
    /// else is open, or compensates what is. Resolving the same step again changes nothing.
    pub async fn resolve(
        &self,
        order_id: Uuid,
        name: &str,
        note: &str,
    ) -> Result<(), OperatorError> {
        let txn = self.db.begin().await?;
        let Some(loaded) = load(&txn, order_id, &self.settings)
            .await
            .map_err(database)?
        else {
            return Err(OperatorError::UnknownSaga(order_id));
        };
        let step = step_index(&loaded, order_id, name)?;
        let saga = &loaded.saga;
        if saga.phase != Phase::Parked {
            if saga.step(step) == Step::Compensated
                && resolved_by_operator(&txn, order_id, name).await?
            {
                return Ok(()); // a repeated request: it is done already
            }
            return Err(not_parked(order_id, saga.phase));
        }
        let resolvable = match saga.step(step) {
            Step::Compensating => true,
            Step::Succeeded => !loaded.definition.is_compensable(step),
            Step::Pending | Step::Failed | Step::Compensated => false,
        };
        if !resolvable {
            return Err(OperatorError::StepNotOpen {
                order_id,
                step: name.to_owned(),
                status: mapping::step_name(saga.step(step)),
            });
        }
        let others = open_steps(&loaded, Some(step));
        let meta = Meta {
            event_id: String::new(),
            event_type: "OperatorResolved".into(),
            note: format!("{name} compensated by hand: {note}"),
        };
        let commands = self
            .apply(&txn, &loaded, core::Event::OperatorResolved(step), meta)
            .await?;
        let detail = format!("{RESOLVED_BY_OPERATOR}{note}");
        txn.set_step_detail(order_id, name, detail).await?;
        txn.reset_attempts(order_id, &others).await?;
        S::commit(txn).await?;
        tracing::info!(order_id = %order_id, step = name, "operator resolved a compensation");
        self.after_commit(&commands);
        Ok(())
    }

    /// The saga, which must be parked.
    async fn parked(&self, txn: &S::Txn, order_id: Uuid) -> Result<Loaded, OperatorError> {
        match load(txn, order_id, &self.settings)
            .await
            .map_err(database)?
        {
            None => Err(OperatorError::UnknownSaga(order_id)),
            Some(loaded) if loaded.saga.phase != Phase::Parked => {
                Err(not_parked(order_id, loaded.saga.phase))
            }
            Some(loaded) => Ok(loaded),
        }
    }

    async fn apply(
        &self,
        txn: &S::Txn,
        loaded: &Loaded,
        event: core::Event,
        meta: Meta,
    ) -> Result<Vec<Command>, OperatorError> {
        let order_id = loaded.header.order_id;
        apply(txn, order_id, |_| Some(event), meta, None, &self.settings)
            .await
            .map_err(|error| match error {
                ApplyError::Refused(core::Error::CannotUndo(step)) => OperatorError::CannotUndo {
                    order_id,
                    step: loaded.definition.steps()[step].name.clone(),
                },
                // Checked before applying; only a concurrent change gets here.
                ApplyError::Refused(core::Error::NotParked(phase)) => not_parked(order_id, phase),
                other => database(other),
            })
    }

    fn after_commit(&self, commands: &[Command]) {
        self.relay.wake();
        if commands
            .iter()
            .any(|command| matches!(command, Command::Compensate(_)))
        {
            self.compensations.notify_one();
        }
    }
}

fn not_parked(order_id: Uuid, phase: Phase) -> OperatorError {
    OperatorError::NotParked {
        order_id,
        state: mapping::phase_name(phase),
    }
}

fn database(error: ApplyError) -> OperatorError {
    OperatorError::Database(error.into())
}

/// The step called `name` in the saga's definition.
fn step_index(loaded: &Loaded, order_id: Uuid, name: &str) -> Result<StepIndex, OperatorError> {
    loaded.definition.index_of(name).ok_or_else(|| {
        let known: Vec<&str> = loaded
            .definition
            .steps()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        OperatorError::UnknownStep {
            order_id,
            step: name.to_owned(),
            known: known.join(", "),
        }
    })
}

/// The names of the saga's open compensations, but `except`.
fn open_steps(loaded: &Loaded, except: Option<StepIndex>) -> Vec<&str> {
    let steps = loaded.definition.steps().iter().enumerate();
    steps
        .filter(|(index, _)| {
            Some(*index) != except && loaded.saga.step(*index) == Step::Compensating
        })
        .map(|(_, step)| step.name.as_str())
        .collect()
}

async fn resolved_by_operator(
    txn: &impl Tables,
    order_id: Uuid,
    name: &str,
) -> Result<bool, DbErr> {
    let step = txn.step(order_id, name).await?;
    Ok(step.is_some_and(|step| step.detail.starts_with(RESOLVED_BY_OPERATOR)))
}
