//! One step of a saga, in the caller's transaction: load it (or create it from its first
//! event), run the core's transition under the definition version the saga started with, store
//! the new state, its steps, its next deadline and a history entry, and put the outcome event in
//! the outbox when the core decides one.

use std::sync::Arc;

use orderly_common::{
    kafka::{envelope, topics},
    telemetry::propagation,
};
use orderly_proto::{
    common::v1::Money,
    events::v1::{SagaConfirmed, SagaRejected, saga_event::Event as Outcome},
};
use orderly_saga::Definition;
use sea_orm::{DbErr, entity::prelude::*};

use super::{Settings, mapping, watch};
use crate::{
    core::{self, Command},
    store::{SagaUpdate, Tables, history, sagas, steps},
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

/// A saga as stored, with the definition it runs under.
pub struct Loaded {
    pub header: sagas::Model,
    pub definition: Arc<Definition>,
    pub saga: core::Saga,
}

/// Applies an event to the order's saga; returns the commands the caller must act on after the
/// commit (compensations to run; outcomes are already in the outbox). `event` turns the input
/// into a core event under the saga's own definition; `None` means that version of the saga
/// has no step the event belongs to (an event of a newer version's step): it is recorded in the
/// history and changes nothing.
pub async fn apply(
    txn: &impl Tables,
    order_id: Uuid,
    event: impl FnOnce(&Definition) -> Option<core::Event>,
    meta: Meta,
    create: Option<NewSaga>,
    settings: &Settings,
) -> Result<Vec<Command>, ApplyError> {
    // A saga created by this event is written once, in the state the event leaves it in.
    let (
        Loaded {
            header,
            definition,
            saga,
        },
        created,
    ) = match load(txn, order_id, settings).await? {
        Some(found) => (found, false),
        None => {
            let new = create
                .ok_or_else(|| ApplyError::Invalid(format!("no saga for order {order_id}")))?;
            (new_saga(order_id, &new, settings), true)
        }
    };
    let Some(event) = event(&definition) else {
        if created {
            insert(txn, &header, &definition, &saga).await?;
        }
        let note = format!(
            "{}; not a step of {} v{}: ignored",
            meta.note,
            definition.name(),
            definition.version()
        );
        record(txn, order_id, meta, note).await?;
        return Ok(Vec::new());
    };
    let (next, commands) = core::transition(&definition, &saga, event)?;
    let deadline = commands.iter().find_map(|command| match command {
        Command::ArmDeadline(step) => {
            Some(orderly_common::time::now() + settings.timeout(&definition, *step))
        }
        _ => None,
    });
    if created {
        let header = sagas::Model {
            state: mapping::phase_name(next.phase).to_owned(),
            reason: next.reason.clone(),
            outcome_emitted: next.outcome_emitted,
            deadline_at: deadline.unwrap_or(header.deadline_at),
            ..header.clone()
        };
        insert(txn, &header, &definition, &next).await?;
    } else {
        save(txn, &header, &definition, &saga, &next, deadline).await?;
    }
    let note = if next.phase == saga.phase {
        meta.note.clone()
    } else {
        watch::phase_changed(&header, next.phase);
        format!(
            "{}; saga {} -> {}",
            meta.note,
            mapping::phase_name(saga.phase),
            mapping::phase_name(next.phase)
        )
    };
    record(txn, order_id, meta, note).await?;
    for command in &commands {
        let payload = match command {
            Command::EmitConfirmed => Outcome::SagaConfirmed(SagaConfirmed {
                customer_id: header.customer_id.clone(),
                total: Some(Money {
                    amount_minor: header.total_minor,
                    currency: header.currency.clone(),
                }),
            }),
            Command::EmitRejected { reason } => Outcome::SagaRejected(SagaRejected {
                customer_id: header.customer_id.clone(),
                reason: reason.clone(),
            }),
            Command::Compensate(_) | Command::ArmDeadline(_) => continue,
        };
        let payload = envelope::Payload::Saga(payload);
        tracing::info!(order_id = %order_id, outcome = envelope::event_type(&payload), reason = next.reason, "saga decided");
        txn.add_outbox(topics::SAGAS, envelope::wrap(order_id, payload))
            .await?;
    }
    Ok(commands)
}

/// Adds an entry to the saga's history.
async fn record(txn: &impl Tables, order_id: Uuid, meta: Meta, note: String) -> Result<(), DbErr> {
    txn.add_history(history::Model {
        id: Uuid::now_v7(),
        order_id,
        event_id: meta.event_id,
        event_type: meta.event_type,
        note,
        at: orderly_common::time::now(),
    })
    .await
}

/// The saga row, its definition and the core's view of it.
pub async fn load(
    txn: &impl Tables,
    order_id: Uuid,
    settings: &Settings,
) -> Result<Option<Loaded>, ApplyError> {
    let Some((header, rows)) = txn.saga_with_steps(order_id).await? else {
        return Ok(None);
    };
    let definition = settings.definition(&header)?;
    let steps = definition
        .steps()
        .iter()
        .map(|step| {
            let row = rows.iter().find(|row| row.name == step.name);
            row.and_then(|row| mapping::step(&row.status))
                .ok_or_else(|| {
                    ApplyError::Invalid(format!("saga {order_id} has no valid {} step", step.name))
                })
        })
        .collect::<Result<_, _>>()?;
    let saga = core::Saga {
        phase: mapping::phase(&header.state).ok_or_else(|| {
            ApplyError::Invalid(format!(
                "saga {order_id} has unknown state {}",
                header.state
            ))
        })?,
        steps,
        reason: header.reason.clone(),
        outcome_emitted: header.outcome_emitted,
    };
    Ok(Some(Loaded {
        header,
        definition,
        saga,
    }))
}

/// A new saga under the latest definition, its first step under way; not stored yet.
fn new_saga(order_id: Uuid, new: &NewSaga, settings: &Settings) -> Loaded {
    let now = orderly_common::time::now();
    let definition = settings.versions.latest().clone();
    let saga = core::Saga::new(&definition);
    let header = sagas::Model {
        order_id,
        customer_id: new.customer_id.clone(),
        total_minor: new.total.amount_minor,
        currency: new.total.currency.clone(),
        state: mapping::phase_name(saga.phase).to_owned(),
        reason: String::new(),
        deadline_at: now + settings.timeout(&definition, 0),
        version: 0,
        outcome_emitted: false,
        created_at: now,
        updated_at: now,
        trace_parent: propagation::current_traceparent(),
        definition_version: i32::try_from(definition.version()).unwrap_or(i32::MAX),
    };
    Loaded {
        header,
        definition,
        saga,
    }
}

/// Stores a new saga: its row and one row per step, as `saga` has them.
async fn insert(
    txn: &impl Tables,
    header: &sagas::Model,
    definition: &Definition,
    saga: &core::Saga,
) -> Result<(), DbErr> {
    let rows = definition
        .steps()
        .iter()
        .enumerate()
        .map(|(index, step)| steps::Model {
            order_id: header.order_id,
            name: step.name.clone(),
            status: mapping::step_name(saga.step(index)).to_owned(),
            detail: String::new(),
            attempts: 0,
            updated_at: header.updated_at,
        });
    txn.insert(header.clone(), rows.collect()).await
}

/// Stores `next` (and the next step's deadline, when one was armed) if the row is still the
/// version that was loaded.
async fn save(
    txn: &impl Tables,
    header: &sagas::Model,
    definition: &Definition,
    before: &core::Saga,
    next: &core::Saga,
    deadline: Option<DateTimeUtc>,
) -> Result<(), ApplyError> {
    let now = orderly_common::time::now();
    let update = SagaUpdate {
        order_id: header.order_id,
        expected_version: header.version,
        state: mapping::phase_name(next.phase),
        reason: next.reason.clone(),
        outcome_emitted: next.outcome_emitted,
        deadline_at: deadline,
        trace_parent: propagation::current_traceparent(),
        updated_at: now,
    };
    if !txn.update(update).await? {
        return Err(DbErr::Custom(format!(
            "saga {} changed concurrently; retrying",
            header.order_id
        ))
        .into());
    }
    for (index, step) in definition.steps().iter().enumerate() {
        if before.step(index) != next.step(index) {
            let status = mapping::step_name(next.step(index));
            txn.set_step_status(header.order_id, &step.name, status, now)
                .await?;
        }
    }
    Ok(())
}
