//! What the runtime does with its tables. Every method is one statement; `Tables` runs it in a
//! transaction ([`Store::begin`]) or on its own (on the store itself), so a group of them is
//! atomic exactly where the runtime asks for it.

use std::future::Future;

use chrono::{DateTime, Utc};
use orderly_common::lease::Fence;
use orderly_proto::events::v1::EventEnvelope;
use sea_orm::DbErr;
use uuid::Uuid;

use super::{history, sagas, steps};

/// A saga's new state, stored only if the row is still at `expected_version` (the consumer, the
/// timer, the compensator and the operator may touch one saga at once; the loser retries).
#[derive(Clone, Debug)]
pub struct SagaUpdate {
    pub order_id: Uuid,
    pub expected_version: i64,
    pub state: &'static str,
    pub reason: String,
    pub outcome_emitted: bool,
    /// The next step's deadline, when one was armed.
    pub deadline_at: Option<DateTime<Utc>>,
    /// The span that made the change ("" keeps the one stored).
    pub trace_parent: String,
    pub updated_at: DateTime<Utc>,
}

pub trait Tables: Sync {
    fn saga(
        &self,
        order_id: Uuid,
    ) -> impl Future<Output = Result<Option<sagas::Model>, DbErr>> + Send;

    /// The saga and its steps, in one statement: every event the saga consumes reads both.
    fn saga_with_steps(
        &self,
        order_id: Uuid,
    ) -> impl Future<Output = Result<Option<(sagas::Model, Vec<steps::Model>)>, DbErr>> + Send;

    fn step(
        &self,
        order_id: Uuid,
        name: &str,
    ) -> impl Future<Output = Result<Option<steps::Model>, DbErr>> + Send;

    /// A new saga with its steps.
    fn insert(
        &self,
        saga: sagas::Model,
        steps: Vec<steps::Model>,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Applies `update`; false when the saga changed since it was read.
    fn update(&self, update: SagaUpdate) -> impl Future<Output = Result<bool, DbErr>> + Send;

    fn set_step_status(
        &self,
        order_id: Uuid,
        name: &str,
        status: &'static str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    fn set_step_detail(
        &self,
        order_id: Uuid,
        name: &str,
        detail: String,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// One more failed attempt at the step's compensation, and why.
    fn count_failure(
        &self,
        order_id: Uuid,
        name: &str,
        error: &str,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    fn reset_attempts(
        &self,
        order_id: Uuid,
        names: &[&str],
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    fn add_history(&self, entry: history::Model) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Puts `envelope` in the outbox, published only if the transaction commits.
    fn add_outbox(
        &self,
        topic: &'static str,
        envelope: EventEnvelope,
    ) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Refuses (an error: the transaction rolls back) unless `fence` still holds: background
    /// work writes only while its replica holds the lease.
    fn fence(&self, fence: &Fence) -> impl Future<Output = Result<(), DbErr>> + Send;

    /// Every step whose compensation is open.
    fn compensating(&self) -> impl Future<Output = Result<Vec<steps::Model>, DbErr>> + Send;

    /// Up to `limit` running sagas whose deadline is at or before `now`.
    fn due(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<sagas::Model>, DbErr>> + Send;

    /// The earliest deadline of a running saga.
    fn next_deadline(&self) -> impl Future<Output = Result<Option<DateTime<Utc>>, DbErr>> + Send;
}

/// Where the tables live: the statements above on their own, or grouped in a transaction.
pub trait Store: Tables + Clone + Send + Sync + 'static {
    type Txn: Tables + Send;

    fn begin(&self) -> impl Future<Output = Result<Self::Txn, DbErr>> + Send;

    fn commit(txn: Self::Txn) -> impl Future<Output = Result<(), DbErr>> + Send;
}
