//! The runtime around the pure saga core: it feeds the core every domain event of an order,
//! persists each saga (state, steps, history) with the outcome event in one transaction, turns
//! silence into failure when a saga's deadline passes, and runs the compensations the core asks
//! for until they succeed or the saga parks. All of it lives in the database, so a restarted
//! orchestrator resumes every unfinished saga, timers and compensations included.

mod apply;
mod compensator;
mod events;
mod mapping;
mod operator;
mod timers;
mod watch;

use std::{sync::Arc, time::Duration};

use orderly_common::{Shutdown, component::Started, grpc::Client};
use tokio::sync::Notify;

use apply::{Meta, NewSaga};
pub use operator::{Operator, OperatorError};

/// What the runtime needs besides the database.
#[derive(Clone)]
pub struct Settings {
    /// How long a saga may wait for its steps before it is rejected.
    pub deadline: Duration,
    /// Attempts of one compensation before the saga is parked for an operator.
    pub max_compensation_attempts: u32,
}

/// Starts the consumer, the deadline timer, the compensator and the saga watcher on `started`;
/// returns the operator's handle on parked sagas (it wakes the compensator).
pub fn start(
    started: &mut Started,
    settings: Settings,
    inventory: Client,
    payment: Client,
    shutdown: &Shutdown,
) -> Operator {
    let compensations = Arc::new(Notify::new());
    let sagas_changed = Arc::new(Notify::new());
    let reactions = events::Reactions {
        settings: settings.clone(),
        compensations: compensations.clone(),
        compensation_due: Default::default(),
        sagas_changed: sagas_changed.clone(),
    };
    started.consume(events::CONSUMER, events::TOPICS, reactions);
    started.spawn(timers::run(
        started.db.clone(),
        started.relay.clone(),
        compensations.clone(),
        sagas_changed,
        settings.clone(),
        shutdown.clone(),
    ));
    let operator = Operator {
        db: started.db.clone(),
        relay: started.relay.clone(),
        compensations: compensations.clone(),
        settings: settings.clone(),
    };
    let compensator = compensator::Compensator {
        db: started.db.clone(),
        relay: started.relay.clone(),
        inventory,
        payment,
        settings,
    };
    started.spawn(compensator.run(compensations, shutdown.clone()));
    started.spawn(watch::run(
        started.db.clone(),
        started.health.clone(),
        started.stuck_after,
        shutdown.clone(),
    ));
    operator
}
