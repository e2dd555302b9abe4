//! The tables in SQL, through sea-orm: the database connection is the store, its transactions
//! the units of work.

use chrono::{DateTime, Utc};
use orderly_common::{
    lease::{self, Fence},
    messaging::outbox,
};
use orderly_proto::events::v1::EventEnvelope;
use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, IntoActiveModel, QueryOrder,
    QuerySelect, TransactionTrait,
    entity::prelude::*,
    sea_query::{Expr, ExprTrait},
};

use super::{SagaUpdate, Store, Tables, history, sagas, steps};
use crate::{core::Phase, runtime::mapping};

fn running() -> &'static str {
    mapping::phase_name(Phase::Running)
}

impl<C: ConnectionTrait + Sync> Tables for C {
    async fn saga(&self, order_id: Uuid) -> Result<Option<sagas::Model>, DbErr> {
        sagas::Entity::find_by_id(order_id).one(self).await
    }

    async fn saga_with_steps(
        &self,
        order_id: Uuid,
    ) -> Result<Option<(sagas::Model, Vec<steps::Model>)>, DbErr> {
        let found = sagas::Entity::find_by_id(order_id)
            .find_with_related(steps::Entity)
            .all(self)
            .await?;
        Ok(found.into_iter().next())
    }

    async fn step(&self, order_id: Uuid, name: &str) -> Result<Option<steps::Model>, DbErr> {
        steps::Entity::find_by_id((order_id, name.to_owned()))
            .one(self)
            .await
    }

    async fn insert(&self, saga: sagas::Model, steps: Vec<steps::Model>) -> Result<(), DbErr> {
        sagas::Entity::insert(saga.into_active_model())
            .exec_without_returning(self)
            .await?;
        steps::Entity::insert_many(steps.into_iter().map(IntoActiveModel::into_active_model))
            .exec_without_returning(self)
            .await?;
        Ok(())
    }

    async fn update(&self, update: SagaUpdate) -> Result<bool, DbErr> {
        let mut statement = sagas::Entity::update_many();
        if !update.trace_parent.is_empty() {
            statement =
                statement.col_expr(sagas::Column::TraceParent, Expr::value(update.trace_parent));
        }
        if let Some(deadline) = update.deadline_at {
            statement = statement.col_expr(sagas::Column::DeadlineAt, Expr::value(deadline));
        }
        let updated = statement
            .col_expr(sagas::Column::State, Expr::value(update.state))
            .col_expr(sagas::Column::Reason, Expr::value(update.reason))
            .col_expr(
                sagas::Column::OutcomeEmitted,
                Expr::value(update.outcome_emitted),
            )
            .col_expr(
                sagas::Column::Version,
                Expr::value(update.expected_version + 1),
            )
            .col_expr(sagas::Column::UpdatedAt, Expr::value(update.updated_at))
            .filter(sagas::Column::OrderId.eq(update.order_id))
            .filter(sagas::Column::Version.eq(update.expected_version))
            .exec(self)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    async fn set_step_status(
        &self,
        order_id: Uuid,
        name: &str,
        status: &'static str,
        at: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        steps::Entity::update_many()
            .col_expr(steps::Column::Status, Expr::value(status))
            .col_expr(steps::Column::UpdatedAt, Expr::value(at))
            .filter(steps::Column::OrderId.eq(order_id))
            .filter(steps::Column::Name.eq(name))
            .exec(self)
            .await?;
        Ok(())
    }

    async fn set_step_detail(
        &self,
        order_id: Uuid,
        name: &str,
        detail: String,
    ) -> Result<(), DbErr> {
        steps::Entity::update_many()
            .col_expr(steps::Column::Detail, Expr::value(detail))
            .filter(steps::Column::OrderId.eq(order_id))
            .filter(steps::Column::Name.eq(name))
            .exec(self)
            .await?;
        Ok(())
    }

    async fn count_failure(&self, order_id: Uuid, name: &str, error: &str) -> Result<(), DbErr> {
        steps::Entity::update_many()
            .col_expr(
                steps::Column::Attempts,
                Expr::col(steps::Column::Attempts).add(1),
            )
            .col_expr(steps::Column::Detail, Expr::value(error))
            .filter(steps::Column::OrderId.eq(order_id))
            .filter(steps::Column::Name.eq(name))
            .exec(self)
            .await?;
        Ok(())
    }

    async fn reset_attempts(&self, order_id: Uuid, names: &[&str]) -> Result<(), DbErr> {
        if names.is_empty() {
            return Ok(());
        }
        steps::Entity::update_many()
            .col_expr(steps::Column::Attempts, Expr::value(0))
            .filter(steps::Column::OrderId.eq(order_id))
            .filter(steps::Column::Name.is_in(names.iter().copied()))
            .exec(self)
            .await?;
        Ok(())
    }

    async fn add_history(&self, entry: history::Model) -> Result<(), DbErr> {
        history::Entity::insert(history::ActiveModel {
            id: Set(entry.id),
            order_id: Set(entry.order_id),
            event_id: Set(entry.event_id),
            event_type: Set(entry.event_type),
            note: Set(entry.note),
            at: Set(entry.at),
        })
        .exec_without_returning(self)
        .await?;
        Ok(())
    }

    async fn add_outbox(&self, topic: &'static str, envelope: EventEnvelope) -> Result<(), DbErr> {
        outbox::add(self, topic, &envelope).await
    }

    async fn fence(&self, fence: &Fence) -> Result<(), DbErr> {
        lease::fence(self, fence).await
    }

    async fn compensating(&self) -> Result<Vec<steps::Model>, DbErr> {
        let open = mapping::step_name(crate::core::Step::Compensating);
        steps::Entity::find()
            .filter(steps::Column::Status.eq(open))
            .all(self)
            .await
    }

    async fn due(&self, now: DateTime<Utc>, limit: u64) -> Result<Vec<sagas::Model>, DbErr> {
        sagas::Entity::find()
            .filter(sagas::Column::State.eq(running()))
            .filter(sagas::Column::DeadlineAt.lte(now))
            .limit(limit)
            .all(self)
            .await
    }

    async fn next_deadline(&self) -> Result<Option<DateTime<Utc>>, DbErr> {
        let next = sagas::Entity::find()
            .filter(sagas::Column::State.eq(running()))
            .order_by_asc(sagas::Column::DeadlineAt)
            .one(self)
            .await?;
        Ok(next.map(|saga| saga.deadline_at))
    }
}

impl Store for DatabaseConnection {
    type Txn = DatabaseTransaction;

    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        TransactionTrait::begin(self).await
    }

    async fn commit(txn: DatabaseTransaction) -> Result<(), DbErr> {
        txn.commit().await
    }
}
