//! Saga metrics and the orchestrator's own health check. Counts come from the sagas table, so they
//! are exact (a retried transaction cannot count twice) and survive restarts; a RUNNING saga long
//! past its deadline means the deadline timer is stuck, which turns health NOT_SERVING. Both are
//! the business of the replica holding the lease: it alone exports the counts (so sums over
//! replicas count each saga once) and it runs the timer whose health this is.

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use orderly_common::{
    Shutdown, health::Health, lease::Lease, messaging::watch::sample_interval, metrics as names,
};
use sea_orm::{DatabaseConnection, DbErr, QueryOrder, QuerySelect, entity::prelude::*};

use super::mapping;
use crate::{core::Phase, store::sagas};

/// Observes how long a saga took to be decided, when the core decides it (called inside the
/// deciding transaction: a transaction retried after a conflict observes again, which a latency
/// histogram tolerates).
pub fn phase_changed(saga: &sagas::Model, phase: Phase) {
    let outcome = match phase {
        Phase::Confirmed => "confirmed",
        Phase::Rejected => "rejected",
        Phase::Running | Phase::Compensating | Phase::Parked => return,
    };
    let took = orderly_common::time::since(saga.created_at);
    histogram!(names::SAGA_DURATION, "outcome" => outcome).record(took.as_secs_f64());
}

/// Samples saga counts into metrics and reports overdue sagas to health while this replica
/// holds `lease`, until shutdown.
pub async fn run(
    db: DatabaseConnection,
    health: Health,
    stuck_after: Duration,
    mut lease: Lease,
    shutdown: Shutdown,
) {
    loop {
        let fault = if lease.fence().is_none() {
            None // another replica runs the timer, and counts
        } else {
            match sample(&db, stuck_after).await {
                Ok(fault) => fault,
                Err(error) => {
                    tracing::debug!(%error, "cannot sample sagas");
                    None // the outbox watcher reports an unreachable database
                }
            }
        };
        health.report("sagas", fault).await;
        tokio::select! {
            () = shutdown.requested() => return,
            () = lease.changed() => {}
            () = tokio::time::sleep(sample_interval(stuck_after)) => {}
        }
    }
}

async fn sample(db: &DatabaseConnection, stuck_after: Duration) -> Result<Option<String>, DbErr> {
    let by_state: Vec<(String, i64)> = sagas::Entity::find()
        .select_only()
        .column(sagas::Column::State)
        .column_as(sagas::Column::OrderId.count(), "sagas")
        .group_by(sagas::Column::State)
        .into_tuple()
        .all(db)
        .await?;
    let count = |phase: Phase| {
        by_state
            .iter()
            .find(|(state, _)| state == mapping::phase_name(phase))
            .map_or(0, |(_, sagas)| u64::try_from(*sagas).unwrap_or(0))
    };
    let started = by_state
        .iter()
        .map(|(_, sagas)| u64::try_from(*sagas).unwrap_or(0))
        .sum();
    counter!(names::SAGAS_STARTED).absolute(started);
    counter!(names::SAGAS_ENDED, "outcome" => "confirmed").absolute(count(Phase::Confirmed));
    counter!(names::SAGAS_ENDED, "outcome" => "rejected").absolute(count(Phase::Rejected));
    for phase in [Phase::Running, Phase::Compensating, Phase::Parked] {
        gauge!(names::SAGAS_OPEN, "state" => mapping::phase_name(phase)).set(count(phase) as f64);
    }

    let open = [Phase::Running, Phase::Compensating].map(mapping::phase_name);
    let oldest = sagas::Entity::find()
        .filter(sagas::Column::State.is_in(open))
        .order_by_asc(sagas::Column::CreatedAt)
        .one(db)
        .await?;
    let age = oldest
        .map(|saga| orderly_common::time::since(saga.created_at))
        .unwrap_or_default();
    gauge!(names::SAGA_OLDEST_OPEN_AGE).set(age.as_secs_f64());

    let overdue_since =
        orderly_common::time::now() - chrono::Duration::from_std(stuck_after).unwrap_or_default();
    let overdue = sagas::Entity::find()
        .filter(sagas::Column::State.eq(mapping::phase_name(Phase::Running)))
        .filter(sagas::Column::DeadlineAt.lt(overdue_since))
        .count(db)
        .await?;
    Ok((overdue > 0).then(|| {
        format!("{overdue} sagas still RUNNING more than {stuck_after:?} after their deadline")
    }))
}
