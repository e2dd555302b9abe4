//! The `inbox` table: which events each consumer has applied.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, TryInsertResult, entity::prelude::*};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub consumer: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: Uuid,
    pub processed_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Records that `consumer` applied the events `event_ids`, inside the transaction applying
/// them, in one statement for a whole batch. Returns the ones not recorded before; the others
/// are duplicates and must not be applied again. An id listed twice is returned once.
pub async fn record(
    db: &impl ConnectionTrait,
    consumer: &str,
    event_ids: &[Uuid],
) -> Result<HashSet<Uuid>, DbErr> {
    let now = crate::time::now();
    let rows = event_ids.iter().map(|event_id| ActiveModel {
        consumer: Set(consumer.to_owned()),
        event_id: Set(*event_id),
        processed_at: Set(now),
    });
    let inserted = Entity::insert_many(rows)
        .on_conflict_do_nothing_on([Column::Consumer, Column::EventId])
        .exec_with_returning_keys(db)
        .await?;
    Ok(match inserted {
        TryInsertResult::Inserted(keys) => keys.into_iter().map(|(_, event_id)| event_id).collect(),
        TryInsertResult::Empty | TryInsertResult::Conflicted => HashSet::new(),
    })
}

/// Forgets ids older than `before`: redeliveries come within minutes, not days, and the table
/// must not grow forever.
pub async fn prune(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let deleted = Entity::delete_many()
        .filter(Column::ProcessedAt.lt(before))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}
