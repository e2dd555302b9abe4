//! Deadlines: each step under way has one (its timeout, from the definition or the default),
//! armed when the step starts. A saga still RUNNING when it passes is rejected (its finished
//! steps compensated), or, from its pivot on, keeps waiting with the deadline armed again. Deadlines are stored with the saga, so they survive restarts. The timer sleeps
//! until the earliest deadline of a running saga, or until a new saga starts: with nothing
//! running it does nothing at all.

use std::{sync::Arc, time::Duration};

use orderly_common::{Shutdown, messaging::Relay, telemetry::propagation};
use sea_orm::DbErr;
use tokio::sync::Notify;
use tracing::Instrument;

use super::{Meta, Settings, apply::apply};
use crate::{
    core::{self, Command},
    store::{Store, sagas},
};

const BATCH: u64 = 100;
/// The longest the timer sleeps unwoken: it catches sagas another process started, and a
/// database that failed a read.
const SAFETY_TICK: Duration = Duration::from_secs(10);

/// Expires sagas as their deadlines pass until `shutdown`; `started` wakes it when the consumer
/// committed events (a saga may have started, with a deadline to watch).
pub async fn run(
    db: impl Store,
    relay: Relay,
    compensations: Arc<Notify>,
    started: Arc<Notify>,
    settings: Settings,
    shutdown: Shutdown,
) {
    loop {
        let mut sleep = SAFETY_TICK;
        match expire_due(&db, &settings).await {
            Ok((expired, compensating)) => {
                if expired > 0 {
                    relay.wake();
                }
                if compensating {
                    compensations.notify_one();
                }
                if expired as u64 == BATCH {
                    continue; // more are due
                }
                match db.next_deadline().await {
                    Ok(Some(at)) => sleep = sleep.min(orderly_common::time::until(at)),
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "cannot read the next saga deadline"),
                }
            }
            Err(error) => tracing::warn!(%error, "cannot check saga deadlines"),
        }
        tokio::select! {
            () = shutdown.requested() => return,
            () = started.notified() => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Rejects every RUNNING saga whose deadline passed; returns how many, and whether any of them
/// needs compensation.
async fn expire_due(db: &impl Store, settings: &Settings) -> Result<(usize, bool), DbErr> {
    let due = db.due(orderly_common::time::now(), BATCH).await?;
    let mut compensating = false;
    for saga in &due {
        let span = tracing::info_span!(
            "saga.deadline",
            component = crate::NAME,
            order_id = %saga.order_id,
            trace_id = tracing::field::Empty,
        );
        propagation::adopt_parent(&span, propagation::traceparent_parent(&saga.trace_parent));
        let commands = expire(db, saga, settings).instrument(span).await?;
        compensating |= commands
            .iter()
            .any(|command| matches!(command, Command::Compensate(_)));
    }
    Ok((due.len(), compensating))
}

/// Applies a passed deadline to `saga` in one transaction.
pub async fn expire<S: Store>(
    db: &S,
    saga: &sagas::Model,
    settings: &Settings,
) -> Result<Vec<Command>, DbErr> {
    let txn = db.begin().await?;
    let meta = Meta {
        event_id: String::new(),
        event_type: "DeadlinePassed".into(),
        note: format!("deadline {} passed", saga.deadline_at.to_rfc3339()),
    };
    let commands = apply(
        &txn,
        saga.order_id,
        |_| Some(core::Event::DeadlinePassed),
        meta,
        None,
        settings,
    )
    .await?;
    S::commit(txn).await?;
    tracing::info!(order_id = %saga.order_id, "saga deadline passed");
    Ok(commands)
}
