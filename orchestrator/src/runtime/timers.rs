//! Deadlines: each step under way has one (its timeout, from the definition or the default),
//! armed when the step starts. A saga still RUNNING when it passes is rejected (its finished
//! steps compensated), or, from its pivot on, keeps waiting with the deadline armed again.
//! Deadlines are stored with the saga, so they survive restarts. The timer sleeps until the
//! earliest deadline of a running saga, or until a new saga starts. One replica keeps the time:
//! the one holding the orchestrator's lease, and every expiry it writes is fenced by it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};

use orderly_common::{
    Shutdown,
    lease::{Fence, Lease},
    messaging::Relay,
    telemetry::propagation,
};
use sea_orm::DbErr;
use tokio::sync::Notify;
use tracing::Instrument;

use super::{Meta, Settings, apply::apply};
use crate::{
    core::{self, Command},
    store::{Store, Tables, sagas},
};

/// Most sagas expired in one round. The timer sleeps unwoken at most `Settings::recheck`: that
/// catches sagas another replica started (with a deadline nearer than the one it sleeps
/// until), and a database that failed a read.
const BATCH: u64 = 100;

/// When the timer looks at deadlines next, so that a consumer arming one can tell whether the
/// timer must be woken for it. Most deadlines lie beyond the timer's next look (the recheck is
/// a second by default, deadlines tens of seconds), and waking it after every commit only to find
/// nothing due cost two queries per consumer batch.
pub struct Alarm {
    /// Milliseconds since the epoch; `i64::MAX` while the timer is looking, so that a deadline
    /// committed meanwhile (which its queries may have missed) rings it once more.
    looks_at: AtomicI64,
    rung: Notify,
}

impl Default for Alarm {
    fn default() -> Self {
        Self {
            looks_at: AtomicI64::new(i64::MAX),
            rung: Notify::new(),
        }
    }
}

impl Alarm {
    /// A deadline no earlier than `earliest` was committed: wakes the timer if it would
    /// otherwise look too late.
    pub fn deadline_committed(&self, earliest: DateTime<Utc>) {
        if earliest.timestamp_millis() < self.looks_at.load(Ordering::SeqCst) {
            self.rung.notify_one();
        }
    }

    fn awake(&self) {
        self.looks_at.store(i64::MAX, Ordering::SeqCst);
    }

    fn asleep_for(&self, sleep: Duration) {
        let looks_at = i64::try_from(sleep.as_millis())
            .ok()
            .and_then(|millis| {
                orderly_common::time::now()
                    .timestamp_millis()
                    .checked_add(millis)
            })
            .unwrap_or(i64::MAX);
        self.looks_at.store(looks_at, Ordering::SeqCst);
    }
}

/// The deadline timer: it runs only in the replica that holds the orchestrator's lease.
pub struct Timer<S> {
    pub db: S,
    pub relay: Relay,
    /// Wakes the compensator.
    pub compensations: Arc<Notify>,
    /// Rung when the consumer committed a deadline earlier than the timer's next look.
    pub alarm: Arc<Alarm>,
    pub settings: Settings,
    pub lease: Lease,
}

impl<S: Store> Timer<S> {
    /// Expires sagas as their deadlines pass, while this replica holds the lease, until
    /// `shutdown`.
    pub async fn run(mut self, shutdown: Shutdown) {
        loop {
            self.alarm.awake();
            let sleep = match self.lease.fence() {
                Some(fence) => self.round(&fence).await,
                None => Duration::MAX, // another replica keeps the time
            };
            self.alarm.asleep_for(sleep);
            tokio::select! {
                () = shutdown.requested() => return,
                () = self.lease.changed() => {}
                () = self.alarm.rung.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Expires what is due; returns how long to sleep before the next deadline.
    async fn round(&self, fence: &Fence) -> Duration {
        let mut sleep = self.settings.recheck;
        match expire_due(&self.db, &self.settings, fence).await {
            Ok((expired, compensating)) => {
                if expired > 0 {
                    self.relay.wake();
                }
                if compensating {
                    self.compensations.notify_one();
                }
                if expired as u64 == BATCH {
                    return Duration::ZERO; // more are due
                }
                match self.db.next_deadline().await {
                    Ok(Some(at)) => sleep = sleep.min(orderly_common::time::until(at)),
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "cannot read the next saga deadline"),
                }
            }
            Err(error) => tracing::warn!(%error, "cannot check saga deadlines"),
        }
        sleep
    }
}

/// Rejects every RUNNING saga whose deadline passed; returns how many, and whether any of them
/// needs compensation.
async fn expire_due(
    db: &impl Store,
    settings: &Settings,
    fence: &Fence,
) -> Result<(usize, bool), DbErr> {
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
        // One saga failing (another process changed it meanwhile) does not hold up the rest.
        match expire(db, saga, settings, fence).instrument(span).await {
            Ok(commands) => {
                compensating |= commands
                    .iter()
                    .any(|command| matches!(command, Command::Compensate(_)));
            }
            Err(error) => tracing::warn!(order_id = %saga.order_id, %error, "deadline not applied"),
        }
    }
    Ok((due.len(), compensating))
}

/// Applies a passed deadline to `saga` in one transaction, fenced by the lease.
pub async fn expire<S: Store>(
    db: &S,
    saga: &sagas::Model,
    settings: &Settings,
    fence: &Fence,
) -> Result<Vec<Command>, DbErr> {
    let txn = db.begin().await?;
    txn.fence(fence).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the timer would wake now (a stored permit answers the first poll).
    async fn rung(alarm: &Alarm) -> bool {
        tokio::select! {
            biased;
            () = alarm.rung.notified() => true,
            () = std::future::ready(()) => false,
        }
    }

    #[tokio::test]
    async fn a_deadline_rings_the_alarm_only_before_the_timers_next_look() {
        let alarm = Alarm::default();
        let now = orderly_common::time::now();
        alarm.asleep_for(Duration::from_secs(10));
        alarm.deadline_committed(now + Duration::from_secs(30));
        assert!(
            !rung(&alarm).await,
            "the timer looks again before that deadline"
        );
        alarm.deadline_committed(now + Duration::from_secs(5));
        assert!(rung(&alarm).await, "the timer would look too late");
    }

    #[tokio::test]
    async fn a_deadline_committed_while_the_timer_looks_rings_it_again() {
        let alarm = Alarm::default();
        alarm.awake();
        alarm.deadline_committed(orderly_common::time::now() + Duration::from_secs(3600));
        assert!(rung(&alarm).await);
    }
}
