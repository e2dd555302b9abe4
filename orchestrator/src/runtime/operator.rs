//! An operator's hands on parked sagas: retry (run the open compensations again, with fresh
//! attempt counters) and resolve (a compensation was done by hand). Each is one core event
//! applied through `apply()`, so state, steps, history and the outcome in the outbox change in
//! one transaction; the compensator is woken to run whatever was reopened.

use std::sync::Arc;

use orderly_common::messaging::Relay;
use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait, entity::prelude::*,
    sea_query::Expr,
};
use tokio::sync::Notify;

use super::{
    Meta, Settings,
    apply::{ApplyError, apply, load},
    mapping,
};
use crate::{
    core::{self, Command, Phase, Step, StepKind},
    store::steps,
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
    /// Only an open compensation can be resolved.
    #[error(
        "step {step} of saga for order {order_id} is {status}; only a STEP_COMPENSATING step can be resolved"
    )]
    StepNotOpen {
        order_id: Uuid,
        step: &'static str,
        status: &'static str,
    },
    #[error(transparent)]
    Database(#[from] DbErr),
}

#[derive(Clone)]
pub struct Operator {
    pub db: DatabaseConnection,
    pub relay: Relay,
    /// Wakes the compensator.
    pub compensations: Arc<Notify>,
    pub settings: Settings,
}

impl Operator {
    /// Sends a parked saga back to compensating with its open compensations' attempts reset.
    pub async fn retry(&self, order_id: Uuid) -> Result<(), OperatorError> {
        let txn = self.db.begin().await?;
        let saga = self.parked(&txn, order_id).await?;
        let open: Vec<StepKind> = StepKind::FORWARD
            .into_iter()
            .filter(|kind| saga.step(*kind) == Step::Compensating)
            .collect();
        let meta = Meta {
            event_id: String::new(),
            event_type: "OperatorRetry".into(),
            note: "operator retried the open compensations".into(),
        };
        let commands = self
            .apply(&txn, order_id, core::Event::OperatorRetry, meta)
            .await?;
        reset_attempts(&txn, order_id, &open).await?;
        txn.commit().await?;
        tracing::info!(order_id = %order_id, "operator retried parked saga");
        self.after_commit(&commands);
        Ok(())
    }

    /// Records that `kind`'s compensation was done by hand; the saga finishes if nothing else is
    /// open, or compensates what is. Resolving the same step again changes nothing.
    pub async fn resolve(
        &self,
        order_id: Uuid,
        kind: StepKind,
        note: &str,
    ) -> Result<(), OperatorError> {
        let txn = self.db.begin().await?;
        let Some((_, saga)) = load(&txn, order_id).await.map_err(database)? else {
            return Err(OperatorError::UnknownSaga(order_id));
        };
        if saga.phase != Phase::Parked {
            if saga.step(kind) == Step::Compensated
                && resolved_by_operator(&txn, order_id, kind).await?
            {
                return Ok(()); // a repeated request: it is done already
            }
            return Err(not_parked(order_id, saga.phase));
        }
        if saga.step(kind) != Step::Compensating {
            return Err(OperatorError::StepNotOpen {
                order_id,
                step: kind.name(),
                status: mapping::step_name(saga.step(kind)),
            });
        }
        let others: Vec<StepKind> = StepKind::FORWARD
            .into_iter()
            .filter(|other| *other != kind && saga.step(*other) == Step::Compensating)
            .collect();
        let meta = Meta {
            event_id: String::new(),
            event_type: "OperatorResolved".into(),
            note: format!("{} compensated by hand: {note}", kind.name()),
        };
        let commands = self
            .apply(&txn, order_id, core::Event::OperatorResolved(kind), meta)
            .await?;
        steps::Entity::update_many()
            .col_expr(
                steps::Column::Detail,
                Expr::value(format!("{RESOLVED_BY_OPERATOR}{note}")),
            )
            .filter(steps::Column::OrderId.eq(order_id))
            .filter(steps::Column::Name.eq(kind.name()))
            .exec(&txn)
            .await?;
        reset_attempts(&txn, order_id, &others).await?;
        txn.commit().await?;
        tracing::info!(order_id = %order_id, step = kind.name(), "operator resolved a compensation");
        self.after_commit(&commands);
        Ok(())
    }

    /// The saga, which must be parked.
    async fn parked(
        &self,
        txn: &DatabaseTransaction,
        order_id: Uuid,
    ) -> Result<core::Saga, OperatorError> {
        match load(txn, order_id).await.map_err(database)? {
            None => Err(OperatorError::UnknownSaga(order_id)),
            Some((_, saga)) if saga.phase != Phase::Parked => Err(not_parked(order_id, saga.phase)),
            Some((_, saga)) => Ok(saga),
        }
    }

    async fn apply(
        &self,
        txn: &DatabaseTransaction,
        order_id: Uuid,
        event: core::Event,
        meta: Meta,
    ) -> Result<Vec<Command>, OperatorError> {
        apply(txn, order_id, event, meta, None, self.settings.deadline)
            .await
            .map_err(|error| match error {
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

/// A reopened compensation gets the full number of attempts again.
async fn reset_attempts(
    txn: &DatabaseTransaction,
    order_id: Uuid,
    kinds: &[StepKind],
) -> Result<(), DbErr> {
    if kinds.is_empty() {
        return Ok(());
    }
    steps::Entity::update_many()
        .col_expr(steps::Column::Attempts, Expr::value(0))
        .filter(steps::Column::OrderId.eq(order_id))
        .filter(steps::Column::Name.is_in(kinds.iter().map(|kind| kind.name())))
        .exec(txn)
        .await?;
    Ok(())
}

async fn resolved_by_operator(
    txn: &DatabaseTransaction,
    order_id: Uuid,
    kind: StepKind,
) -> Result<bool, DbErr> {
    let step = steps::Entity::find_by_id((order_id, kind.name().to_owned()))
        .one(txn)
        .await?;
    Ok(step.is_some_and(|step| step.detail.starts_with(RESOLVED_BY_OPERATOR)))
}
