//! The `read_models` table: the read model's generations. Reads use the current one; a rebuild
//! projects a new one (building) from the beginning of the topics beside it, and is switched to
//! in one transaction when it has caught up, which retires the old one.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, QueryOrder, TransactionTrait,
    entity::prelude::*, sea_query::Expr,
};

use crate::{positions, views};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "read_models")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub generation: i64,
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub switched_at: Option<DateTime<Utc>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

const BUILDING: &str = "building";
const CURRENT: &str = "current";
const RETIRED: &str = "retired";

/// The generation reads use.
pub async fn current(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let current = Entity::find()
        .filter(Column::State.eq(CURRENT))
        .one(db)
        .await?;
    current
        .map(|model| model.generation)
        .ok_or_else(|| DbErr::RecordNotFound("the read model has no current generation".into()))
}

/// The generation being rebuilt, if any.
pub async fn building(db: &impl ConnectionTrait) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::State.eq(BUILDING))
        .one(db)
        .await
}

/// `generation`, whatever its state.
pub async fn find(db: &impl ConnectionTrait, generation: i64) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(generation).one(db).await
}

/// Starts a rebuild, a new generation after every other, unless one is under way: the one
/// being built either way.
pub async fn start_rebuild(db: &DatabaseConnection) -> Result<Model, DbErr> {
    let txn = db.begin().await?;
    if let Some(under_way) = building(&txn).await? {
        return Ok(under_way);
    }
    let last = Entity::find()
        .order_by_desc(Column::Generation)
        .one(&txn)
        .await?
        .map_or(0, |model| model.generation);
    let started = Model {
        generation: last + 1,
        state: BUILDING.into(),
        started_at: orderly_common::time::now(),
        switched_at: None,
    };
    // Two replicas starting one at once: the second insert fails on the key and the caller
    // asks again, finding the first.
    Entity::insert(ActiveModel {
        generation: Set(started.generation),
        state: Set(started.state.clone()),
        started_at: Set(started.started_at),
        switched_at: Set(None),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(started)
}

/// Makes `generation` (being built) the one reads use and retires the current one, in `txn`.
pub async fn switch(txn: &impl ConnectionTrait, generation: i64) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::State, Expr::value(RETIRED))
        .filter(Column::State.eq(CURRENT))
        .exec(txn)
        .await?;
    Entity::update_many()
        .col_expr(Column::State, Expr::value(CURRENT))
        .col_expr(Column::SwitchedAt, Expr::value(orderly_common::time::now()))
        .filter(Column::Generation.eq(generation))
        .exec(txn)
        .await?;
    Ok(())
}

pub fn is_building(model: &Model) -> bool {
    model.state == BUILDING
}

/// Deletes the views and positions of retired generations (their rows in `read_models` stay, a
/// record of when each was replaced).
pub async fn purge_retired(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let retired: Vec<i64> = Entity::find()
        .filter(Column::State.eq(RETIRED))
        .all(db)
        .await?
        .into_iter()
        .map(|model| model.generation)
        .collect();
    if retired.is_empty() {
        return Ok(());
    }
    views::Entity::delete_many()
        .filter(views::Column::Generation.is_in(retired.clone()))
        .exec(db)
        .await?;
    positions::Entity::delete_many()
        .filter(positions::Column::Generation.is_in(retired))
        .exec(db)
        .await?;
    Ok(())
}
