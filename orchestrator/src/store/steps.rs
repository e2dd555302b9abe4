//! The `saga_steps` table: where each step of a saga stands.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "saga_steps")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub status: String,
    pub detail: String,
    pub attempts: i32,
    pub updated_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::sagas::Entity",
        from = "Column::OrderId",
        to = "super::sagas::Column::OrderId"
    )]
    Saga,
}

impl Related<super::sagas::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Saga.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
