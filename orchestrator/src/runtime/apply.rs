//! One step of a saga, in the caller's transaction: load it (or create it from its first
//! event), run the core's transition, store the new state, its steps and a history entry, and
//! put the outcome event in the outbox when the core decides one.

use std::time::Duration;

use orderly_common::{
    kafka::{envelope, topics},
    messaging::outbox,
    telemetry::propagation,
};
use orderly_proto::{
    common::v1::Money,
    events::v1::{SagaConfirmed, SagaRejected, event_envelope::Payload},
};
use sea_orm::{
    ActiveValue::Set, DatabaseTransaction, DbErr, IntoActiveModel, entity::prelude::*,
    sea_query::Expr,
};

use super::{mapping, watch};
use crate::{
    core::{self, Command, StepKind},
    store::{history, sagas, steps},
};

/// What a saga is created with, from whichever of its events arrives first.
#[derive(Clone, Debug)]
pub struct NewSaga {
    pub customer_id: String,
    pub total: Money,
}

/// Where a step of the saga came from, for its history.
#[derive(Clone, Debug)]
pub struct Meta {
    pub event_id: String,
    pub event_type: String,
    pub note: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Database(#[from] DbErr),
    /// The event cannot apply to this saga (unknown saga, broken row).
    #[error("{0}")]
    Invalid(String),
    /// The core refused the event in the saga's current state.
    #[error(transparent)]
    Refused(#[from] core::Error),
}

/// The timer and the compensator run outside a consumer: to them every failure is a database
/// error to retry.
impl From<ApplyError> for DbErr {
    fn from(error: ApplyError) -> Self {
        match error {
            ApplyError::Database(error) => error,
            ApplyError::Invalid(reason) => DbErr::Custom(reason),
            ApplyError::Refused(error) => DbErr::Custom(error.to_string()),
        }
    }
}

/// Applies `event` to the order's saga; returns the commands the caller must act on after the
/// commit (compensations to run; outcomes are already in the outbox).
pub async fn apply(
    txn: &DatabaseTransaction,
    order_id: Uuid,
    event: core::Event,
    meta: Meta,
    create: Option<NewSaga>,
    deadline: Duration,
) -> Result<Vec<Command>, ApplyError> {
    let (header, saga) = match load(txn, order_id).await? {
        Some(found) => found,
        None => {
            let new = create
                .ok_or_else(|| ApplyError::Invalid(format!("no saga for order {order_id}")))?;
            insert(txn, order_id, &new, deadline).await?
        }
    };
    let (next, commands) = core::transition(&saga, event)?;
    save(txn, &header, &saga, &next).await?;
    let note = if next.phase == saga.phase {
        meta.note
    } else {
        watch::phase_changed(&header, next.phase);
        format!(
            "{}; saga {} -> {}",
            meta.note,
            mapping::phase_name(saga.phase),
            mapping::phase_name(next.phase)
        )
    };
    history::Entity::insert(history::ActiveModel {
        id: Set(Uuid::now_v7()),
        order_id: Set(order_id),
        event_id: Set(meta.event_id),
        event_type: Set(meta.event_type),
        note: Set(note),
        at: Set(orderly_common::time::now()),
    })
    .exec_without_returning(txn)
    .await?;
    for command in &commands {
        let payload = match command {
            Command::EmitConfirmed => Payload::SagaConfirmed(SagaConfirmed {
                customer_id: header.customer_id.clone(),
                total: Some(Money {
                    amount_minor: header.total_minor,
                    currency: header.currency.clone(),
                }),
            }),
            Command::EmitRejected { reason } => Payload::SagaRejected(SagaRejected {
                customer_id: header.customer_id.clone(),
                reason: reason.clone(),
            }),
            Command::Compensate(_) => continue,
        };
        tracing::info!(order_id = %order_id, outcome = envelope::event_type(&payload), reason = next.reason, "saga decided");
        outbox::add(txn, topics::SAGAS, &envelope::wrap(order_id, payload)).await?;
    }
    Ok(commands)
}

/// The saga row and the core's view of it.
pub async fn load(
    txn: &DatabaseTransaction,
    order_id: Uuid,
) -> Result<Option<(sagas::Model, core::Saga)>, ApplyError> {
    let Some(header) = sagas::Entity::find_by_id(order_id).one(txn).await? else {
        return Ok(None);
    };
    let rows = steps::Entity::find()
        .filter(steps::Column::OrderId.eq(order_id))
        .all(txn)
        .await?;
    let step_of = |kind: StepKind| {
        let row = rows.iter().find(|row| row.name == kind.name());
        row.and_then(|row| mapping::step(&row.status))
            .ok_or_else(|| {
                ApplyError::Invalid(format!("saga {order_id} has no valid {} step", kind.name()))
            })
    };
    let saga = core::Saga {
        phase: mapping::phase(&header.state).ok_or_else(|| {
            ApplyError::Invalid(format!(
                "saga {order_id} has unknown state {}",
                header.state
            ))
        })?,
        inventory: step_of(StepKind::Inventory)?,
        payment: step_of(StepKind::Payment)?,
        reason: header.reason.clone(),
        outcome_emitted: header.outcome_emitted,
    };
    Ok(Some((header, saga)))
}

async fn insert(
    txn: &DatabaseTransaction,
    order_id: Uuid,
    new: &NewSaga,
    deadline: Duration,
) -> Result<(sagas::Model, core::Saga), ApplyError> {
    let now = orderly_common::time::now();
    let saga = core::Saga::default();
    let header = sagas::Model {
        order_id,
        customer_id: new.customer_id.clone(),
        total_minor: new.total.amount_minor,
        currency: new.total.currency.clone(),
        state: mapping::phase_name(saga.phase).to_owned(),
        reason: String::new(),
        deadline_at: now + deadline,
        version: 0,
        outcome_emitted: false,
        created_at: now,
        updated_at: now,
        trace_parent: propagation::current_traceparent(),
    };
    sagas::Entity::insert(header.clone().into_active_model())
        .exec_without_returning(txn)
        .await?;
    let rows = StepKind::FORWARD.map(|kind| steps::ActiveModel {
        order_id: Set(order_id),
        name: Set(kind.name().to_owned()),
        status: Set(mapping::step_name(saga.step(kind)).to_owned()),
        detail: Set(String::new()),
        attempts: Set(0),
        updated_at: Set(now),
    });
    steps::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok((header, saga))
}

/// Stores `next` if the row is still the version that was loaded (the consumer, the timer and
/// the compensator may touch one saga at once; the loser retries).
async fn save(
    txn: &DatabaseTransaction,
    header: &sagas::Model,
    before: &core::Saga,
    next: &core::Saga,
) -> Result<(), ApplyError> {
    let now = orderly_common::time::now();
    let mut update = sagas::Entity::update_many();
    let trace_parent = propagation::current_traceparent();
    if !trace_parent.is_empty() {
        update = update.col_expr(sagas::Column::TraceParent, Expr::value(trace_parent));
    }
    let updated = update
        .col_expr(
            sagas::Column::State,
            Expr::value(mapping::phase_name(next.phase)),
        )
        .col_expr(sagas::Column::Reason, Expr::value(next.reason.clone()))
        .col_expr(
            sagas::Column::OutcomeEmitted,
            Expr::value(next.outcome_emitted),
        )
        .col_expr(sagas::Column::Version, Expr::value(header.version + 1))
        .col_expr(sagas::Column::UpdatedAt, Expr::value(now))
        .filter(sagas::Column::OrderId.eq(header.order_id))
        .filter(sagas::Column::Version.eq(header.version))
        .exec(txn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(DbErr::Custom(format!(
            "saga {} changed concurrently; retrying",
            header.order_id
        ))
        .into());
    }
    for kind in StepKind::FORWARD {
        if before.step(kind) != next.step(kind) {
            steps::Entity::update_many()
                .col_expr(
                    steps::Column::Status,
                    Expr::value(mapping::step_name(next.step(kind))),
                )
                .col_expr(steps::Column::UpdatedAt, Expr::value(now))
                .filter(steps::Column::OrderId.eq(header.order_id))
                .filter(steps::Column::Name.eq(kind.name()))
                .exec(txn)
                .await?;
        }
    }
    Ok(())
}
