//! The runtime around the pure saga core: it feeds the core every domain event of an order,
//! persists each saga (state, steps, history) with the outcome event in one transaction, turns
//! silence into failure when a saga's deadline passes, and runs the compensations the core asks
//! for until they succeed or the saga parks. All of it lives in the database, so a restarted
//! orchestrator resumes every unfinished saga, timers and compensations included. With several
//! replicas, every one consumes (its share of the partitions) and the one holding the lease
//! runs the timer and the compensations, and exports the saga counts.

pub(crate) mod apply;
pub(crate) mod compensator;
pub(crate) mod events;
pub(crate) mod mapping;
mod operator;
pub(crate) mod participants;
pub(crate) mod timers;
mod watch;

use std::{sync::Arc, time::Duration};

use orderly_common::{Shutdown, component::Started, lease::Lease, messaging::notifications};
use orderly_saga::{Definition, RetryPolicy, StepIndex, Versions};
use sea_orm::DbErr;
use tokio::sync::Notify;

use apply::{ApplyError, Meta, NewSaga};
pub use operator::{Operator, OperatorError};
pub use participants::Participants;

use crate::store::sagas;

/// The lease under which one replica at a time runs the deadline timer and the compensations.
const LEASE: &str = "orchestrator.sagas";
/// Notified on PostgreSQL when a saga step is opened for compensation (migration m0005).
const COMPENSATION_OPENED: &str = "orderly_compensation_opened";

/// What the runtime needs besides the database.
#[derive(Clone)]
pub struct Settings {
    /// Every version of the saga this orchestrator can run; new sagas start under the latest.
    pub versions: Versions,
    /// How long a step may take to answer when its definition sets no timeout.
    pub default_timeout: Duration,
    /// How compensations are retried when their step's definition sets no policy.
    pub default_retry: RetryPolicy,
    /// How often the lease holder looks for deadlines and compensations nobody told it of.
    pub recheck: Duration,
    /// How many orders' compensations run at once.
    pub compensations_at_once: usize,
}

/// How many orders' compensations run at once by default on SQLite (`--compensations-at-once`).
pub const COMPENSATIONS_AT_ONCE: u16 = 32;

/// How many orders' compensations run at once on `backend` unless configured. On SQLite (one
/// writer, commits shared) many at once cut the tail of rejected orders under load. On
/// PostgreSQL, each in its own transaction beside the consumers', 100 orders/s offered on two
/// cores decided 81-87/s with none refused at 4, against 73-80/s with 75-101 refused at 32.
pub fn compensations_at_once(backend: sea_orm::DatabaseBackend) -> u16 {
    match backend {
        sea_orm::DatabaseBackend::Postgres => 4,
        _ => COMPENSATIONS_AT_ONCE,
    }
}

impl Settings {
    pub fn timeout(&self, definition: &Definition, step: StepIndex) -> Duration {
        definition
            .step(step)
            .and_then(|step| step.timeout)
            .unwrap_or(self.default_timeout)
    }

    /// The shortest time any step of any version may take: no deadline armed now falls
    /// sooner than now plus this.
    pub fn shortest_timeout(&self) -> Duration {
        self.versions
            .all()
            .flat_map(|definition| {
                (0..definition.steps().len()).map(|step| self.timeout(definition, step))
            })
            .min()
            .unwrap_or(self.default_timeout)
    }

    pub fn retry(&self, definition: &Definition, step: StepIndex) -> RetryPolicy {
        definition
            .step(step)
            .and_then(|step| step.retry)
            .unwrap_or(self.default_retry)
    }

    /// The definition `saga` started under. One this build does not know (a newer build
    /// started it, then was rolled back) is an error retried until such a build runs: the saga
    /// must not be lost, nor finished under another definition.
    fn definition(&self, saga: &sagas::Model) -> Result<Arc<Definition>, ApplyError> {
        let known = u32::try_from(saga.definition_version)
            .ok()
            .and_then(|version| self.versions.get(version));
        known.cloned().ok_or_else(|| {
            ApplyError::Database(DbErr::Custom(format!(
                "saga {} started under {} v{}, which this orchestrator does not know",
                saga.order_id,
                self.versions.latest().name(),
                saga.definition_version
            )))
        })
    }
}

/// Starts the consumer, the deadline timer, the compensator and the saga watcher on `started`;
/// returns the operator's handle on parked sagas (it wakes the compensator).
pub fn start(
    started: &mut Started,
    settings: Settings,
    participants: Participants,
    shutdown: &Shutdown,
) -> Operator {
    let compensations = Arc::new(Notify::new());
    let alarm = Arc::new(timers::Alarm::default());
    let reactions = events::Reactions {
        settings: settings.clone(),
        compensations: compensations.clone(),
        compensation_due: Default::default(),
        alarm: alarm.clone(),
        deadlines_from: events::NO_DEADLINE.into(),
    };
    let topics = events::topics(&settings.versions);
    started.consume(events::CONSUMER, topics, reactions);
    let (lease, keeper) = Lease::keep(
        started.db.clone(),
        LEASE,
        started.holder.clone(),
        shutdown.clone(),
    );
    started.spawn(keeper);
    let timer = timers::Timer {
        db: started.db.clone(),
        relay: started.relay.clone(),
        compensations: compensations.clone(),
        alarm,
        settings: settings.clone(),
        lease: lease.clone(),
    };
    started.spawn(timer.run(shutdown.clone()));
    let operator = Operator {
        db: started.db.clone(),
        relay: started.relay.clone(),
        compensations: compensations.clone(),
        settings: settings.clone(),
    };
    let compensator = compensator::Compensator {
        db: started.db.clone(),
        relay: started.relay.clone(),
        participants,
        settings,
    };
    started.spawn(watch::run(
        started.db.clone(),
        started.health.clone(),
        started.stuck_after,
        lease.clone(),
        shutdown.clone(),
    ));
    // Compensations another replica's consumer opens wake this compensator too (PostgreSQL).
    let opened = compensations.clone();
    started.spawn(notifications::listen(
        started.db.clone(),
        COMPENSATION_OPENED,
        "compensation",
        move |_| opened.notify_one(),
        shutdown.clone(),
    ));
    started.spawn(compensator.run(compensations, lease, shutdown.clone()));
    operator
}
