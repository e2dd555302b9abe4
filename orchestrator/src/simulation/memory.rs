//! The orchestrator's tables in memory, for the simulation to run the real runtime over: a
//! transaction works on a copy that replaces the tables when it commits, so an action either
//! happens whole or not at all. A process crash is a flag: until the restart nothing commits,
//! as if the process had died at the point the simulation chose.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use chrono::{DateTime, Utc};
use orderly_common::lease::Fence;
use orderly_proto::events::v1::EventEnvelope;
use sea_orm::DbErr;
use uuid::Uuid;

use crate::{
    core::{Phase, Step},
    runtime::mapping,
    store::{SagaUpdate, Store, Tables, history, sagas, steps},
};

#[derive(Clone, Debug, Default)]
struct Data {
    sagas: BTreeMap<Uuid, sagas::Model>,
    steps: BTreeMap<(Uuid, String), steps::Model>,
    history: Vec<history::Model>,
    outbox: Vec<EventEnvelope>,
}

#[derive(Debug, Default)]
struct Shared {
    committed: Data,
    /// The process died: nothing commits until it restarts.
    dead: bool,
}

/// The store (statements commit on their own) or one transaction on it (`staged`).
#[derive(Clone, Debug, Default)]
pub struct Memory {
    shared: Arc<Mutex<Shared>>,
    staged: Option<Arc<Mutex<Data>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn died() -> DbErr {
    DbErr::Custom("the orchestrator process died".into())
}

impl Memory {
    /// The orchestrator dies now: whatever it has not committed is lost.
    pub fn die(&self) {
        lock(&self.shared).dead = true;
    }

    pub fn restart(&self) {
        lock(&self.shared).dead = false;
    }

    /// The outbox rows committed since the last call (the relay's work, done by the world).
    pub fn take_outbox(&self) -> Vec<EventEnvelope> {
        std::mem::take(&mut lock(&self.shared).committed.outbox)
    }

    /// The order ids of every saga stored.
    pub fn saga_ids(&self) -> Vec<Uuid> {
        lock(&self.shared).committed.sagas.keys().copied().collect()
    }

    /// Runs `read` (or `write`) on the data this handle sees.
    fn with<R>(&self, write: bool, act: impl FnOnce(&mut Data) -> R) -> Result<R, DbErr> {
        if let Some(staged) = &self.staged {
            return Ok(act(&mut lock(staged)));
        }
        let mut shared = lock(&self.shared);
        if write && shared.dead {
            return Err(died());
        }
        Ok(act(&mut shared.committed))
    }
}

impl Tables for Memory {
    async fn saga(&self, order_id: Uuid) -> Result<Option<sagas::Model>, DbErr> {
        self.with(false, |data| data.sagas.get(&order_id).cloned())
    }

    async fn saga_with_steps(
        &self,
        order_id: Uuid,
    ) -> Result<Option<(sagas::Model, Vec<steps::Model>)>, DbErr> {
        self.with(false, |data| {
            let saga = data.sagas.get(&order_id)?.clone();
            let rows = data.steps.values();
            let steps = rows.filter(|row| row.order_id == order_id).cloned();
            Some((saga, steps.collect()))
        })
    }

    async fn step(&self, order_id: Uuid, name: &str) -> Result<Option<steps::Model>, DbErr> {
        self.with(false, |data| {
            data.steps.get(&(order_id, name.to_owned())).cloned()
        })
    }

    async fn insert(&self, saga: sagas::Model, steps: Vec<steps::Model>) -> Result<(), DbErr> {
        self.with(true, |data| {
            if data.sagas.contains_key(&saga.order_id) {
                return Err(DbErr::Custom(format!("saga {} exists", saga.order_id)));
            }
            for step in steps {
                data.steps.insert((step.order_id, step.name.clone()), step);
            }
            data.sagas.insert(saga.order_id, saga);
            Ok(())
        })?
    }

    async fn update(&self, update: SagaUpdate) -> Result<bool, DbErr> {
        self.with(true, |data| {
            let Some(saga) = data.sagas.get_mut(&update.order_id) else {
                return false;
            };
            if saga.version != update.expected_version {
                return false;
            }
            saga.state = update.state.to_owned();
            saga.reason = update.reason;
            saga.outcome_emitted = update.outcome_emitted;
            saga.version += 1;
            saga.updated_at = update.updated_at;
            if let Some(deadline) = update.deadline_at {
                saga.deadline_at = deadline;
            }
            if !update.trace_parent.is_empty() {
                saga.trace_parent = update.trace_parent;
            }
            true
        })
    }

    async fn set_step_status(
        &self,
        order_id: Uuid,
        name: &str,
        status: &'static str,
        at: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        self.with(true, |data| {
            if let Some(step) = data.steps.get_mut(&(order_id, name.to_owned())) {
                step.status = status.to_owned();
                step.updated_at = at;
            }
        })
    }

    async fn set_step_detail(
        &self,
        order_id: Uuid,
        name: &str,
        detail: String,
    ) -> Result<(), DbErr> {
        self.with(true, |data| {
            if let Some(step) = data.steps.get_mut(&(order_id, name.to_owned())) {
                step.detail = detail;
            }
        })
    }

    async fn count_failure(&self, order_id: Uuid, name: &str, error: &str) -> Result<(), DbErr> {
        self.with(true, |data| {
            if let Some(step) = data.steps.get_mut(&(order_id, name.to_owned())) {
                step.attempts += 1;
                step.detail = error.to_owned();
            }
        })
    }

    async fn reset_attempts(&self, order_id: Uuid, names: &[&str]) -> Result<(), DbErr> {
        self.with(true, |data| {
            for name in names {
                if let Some(step) = data.steps.get_mut(&(order_id, (*name).to_owned())) {
                    step.attempts = 0;
                }
            }
        })
    }

    async fn add_history(&self, entry: history::Model) -> Result<(), DbErr> {
        self.with(true, |data| data.history.push(entry))
    }

    async fn add_outbox(&self, _topic: &'static str, envelope: EventEnvelope) -> Result<(), DbErr> {
        self.with(true, |data| data.outbox.push(envelope))
    }

    /// One orchestrator: it always holds the lease.
    async fn fence(&self, _fence: &Fence) -> Result<(), DbErr> {
        Ok(())
    }

    async fn compensating(&self) -> Result<Vec<steps::Model>, DbErr> {
        let open = mapping::step_name(Step::Compensating);
        self.with(false, |data| {
            let rows = data.steps.values();
            rows.filter(|row| row.status == open).cloned().collect()
        })
    }

    async fn due(&self, now: DateTime<Utc>, limit: u64) -> Result<Vec<sagas::Model>, DbErr> {
        let running = mapping::phase_name(Phase::Running);
        self.with(false, |data| {
            let sagas = data.sagas.values();
            let due = sagas.filter(|saga| saga.state == running && saga.deadline_at <= now);
            due.take(usize::try_from(limit).unwrap_or(usize::MAX))
                .cloned()
                .collect()
        })
    }

    async fn next_deadline(&self) -> Result<Option<DateTime<Utc>>, DbErr> {
        let running = mapping::phase_name(Phase::Running);
        self.with(false, |data| {
            let sagas = data.sagas.values();
            let running = sagas.filter(|saga| saga.state == running);
            running.map(|saga| saga.deadline_at).min()
        })
    }
}

impl Store for Memory {
    type Txn = Memory;

    async fn begin(&self) -> Result<Memory, DbErr> {
        let shared = lock(&self.shared);
        if shared.dead {
            return Err(died());
        }
        Ok(Memory {
            shared: self.shared.clone(),
            staged: Some(Arc::new(Mutex::new(shared.committed.clone()))),
        })
    }

    async fn commit(txn: Memory) -> Result<(), DbErr> {
        let staged = txn
            .staged
            .ok_or_else(|| DbErr::Custom("commit outside a transaction".into()))?;
        let mut shared = lock(&txn.shared);
        if shared.dead {
            return Err(died());
        }
        shared.committed = lock(&staged).clone();
        Ok(())
    }
}
