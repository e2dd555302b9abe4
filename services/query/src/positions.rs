//! The `positions` table: the next offset the projection applies in each partition, per
//! generation of the read model, written in the transaction that applies the events before it. The projection starts each partition
//! there (at the beginning when it has no row: a fresh database replays the topics).

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, entity::prelude::*, sea_query::OnConflict};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "positions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub generation: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub topic: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub partition: i32,
    pub next_offset: i64,
    /// When the last applied event of the partition happened.
    pub event_at: Option<DateTime<Utc>>,
    pub applied_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The positions of `generation` of the read model.
pub async fn all(db: &impl ConnectionTrait, generation: i64) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::Generation.eq(generation))
        .all(db)
        .await
}

/// The next offset `stored` has for `partition` of `topic`, if it has one.
pub fn next_offset(stored: &[Model], topic: &str, partition: i32) -> Option<i64> {
    (stored.iter())
        .find(|at| at.topic == topic && at.partition == partition)
        .map(|at| at.next_offset)
}

/// The positions of the generation reads use (asked each time: a rebuild may switch it).
pub async fn current(db: &impl ConnectionTrait) -> Result<Vec<Model>, DbErr> {
    all(db, crate::generations::current(db).await?).await
}

/// Records that `partition` of `topic` is applied up to `next_offset` (excluded).
pub async fn advance(txn: &impl ConnectionTrait, position: Model) -> Result<(), DbErr> {
    let row = ActiveModel {
        generation: Set(position.generation),
        topic: Set(position.topic),
        partition: Set(position.partition),
        next_offset: Set(position.next_offset),
        event_at: Set(position.event_at),
        applied_at: Set(position.applied_at),
    };
    Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::Generation, Column::Topic, Column::Partition])
                .update_columns([Column::NextOffset, Column::EventAt, Column::AppliedAt])
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}
