//! The `ledger_entries` table: one row per change to an account, with the balances after it, so
//! every balance can be explained by summing its entries.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, entity::prelude::*};

use super::accounts;
use crate::domain::LedgerKind;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: String,
    pub order_id: Option<Uuid>,
    pub kind: String,
    pub balance_change_minor: i64,
    pub held_change_minor: i64,
    pub balance_after_minor: i64,
    pub held_after_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Records a change that has just been applied to `after`.
pub async fn record(
    db: &impl ConnectionTrait,
    after: &accounts::Model,
    order_id: Option<Uuid>,
    kind: LedgerKind,
    balance_change: i64,
    held_change: i64,
) -> Result<(), DbErr> {
    let entry = ActiveModel {
        id: Set(Uuid::now_v7()),
        customer_id: Set(after.customer_id.clone()),
        order_id: Set(order_id),
        kind: Set(kind.as_str().to_owned()),
        balance_change_minor: Set(balance_change),
        held_change_minor: Set(held_change),
        balance_after_minor: Set(after.balance_minor),
        held_after_minor: Set(after.held_minor),
        currency: Set(after.currency.clone()),
        created_at: Set(orderly_common::time::now()),
    };
    Entity::insert(entry).exec_without_returning(db).await?;
    Ok(())
}
