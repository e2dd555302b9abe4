//! The `accounts` table: the customers who have an account with payment, and its currency,
//! projected from payment's AccountOpened events and, for a customer not learnt yet, read through
//! from payment. Accounts are never closed and never change currency, so what is learnt stays
//! true.

use sea_orm::{ActiveValue::Set, ConnectionTrait, entity::prelude::*};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: String,
    pub currency: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub async fn learn(
    db: &impl ConnectionTrait,
    customer_id: &str,
    currency: &str,
) -> Result<(), DbErr> {
    let row = ActiveModel {
        customer_id: Set(customer_id.to_owned()),
        currency: Set(currency.to_owned()),
    };
    Entity::insert(row)
        .on_conflict_do_nothing_on([Column::CustomerId])
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The currency `customer_id` pays in, if their account is known.
pub async fn currency_of(
    db: &impl ConnectionTrait,
    customer_id: &str,
) -> Result<Option<String>, DbErr> {
    Ok(Entity::find_by_id(customer_id.to_owned())
        .one(db)
        .await?
        .map(|account| account.currency))
}
