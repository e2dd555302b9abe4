//! The `notifications` table: what was sent, to whom, through which sink.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, IntoActiveModel, QueryOrder, QuerySelect, TryInsertResult, entity::prelude::*,
};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: String,
    pub kind: String,
    pub channel: String,
    pub message: String,
    pub sent_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Notifications ordered by id (time-ordered UUIDs), optionally filtered, after `after`.
pub async fn list(
    db: &impl ConnectionTrait,
    order_id: Option<Uuid>,
    customer_id: Option<&str>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let mut query = Entity::find().order_by_asc(Column::Id).limit(limit);
    if let Some(order_id) = order_id {
        query = query.filter(Column::OrderId.eq(order_id));
    }
    if let Some(customer_id) = customer_id {
        query = query.filter(Column::CustomerId.eq(customer_id));
    }
    if let Some(after) = after {
        query = query.filter(Column::Id.gt(after));
    }
    query.all(db).await
}

/// Records a notification unless one was already sent for this order and kind (invariant I7).
/// Returns false for a repeat.
pub async fn record(db: &impl ConnectionTrait, notification: Model) -> Result<bool, DbErr> {
    let inserted = Entity::insert(notification.into_active_model())
        .on_conflict_do_nothing_on([Column::OrderId, Column::Kind])
        .exec_without_returning(db)
        .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(1)))
}
