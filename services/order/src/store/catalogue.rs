//! The `catalogue` table: each product's price as the order service knows it, projected from
//! inventory's ProductPriced events and, for a product not learnt yet, read through from
//! inventory. Each price is kept with its version: whichever way a price arrives, an older one
//! never replaces a newer one.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, entity::prelude::*, sea_query::OnConflict};

use crate::domain::pricing::Price;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "catalogue")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub sku: String,
    pub unit_price_minor: i64,
    pub currency: String,
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Keeps each of `prices` unless a newer version of it is known already.
pub async fn learn(db: &impl ConnectionTrait, prices: Vec<Model>) -> Result<(), DbErr> {
    if prices.is_empty() {
        return Ok(());
    }
    let rows = prices.into_iter().map(ActiveModel::from);
    Entity::insert_many(rows)
        .on_conflict(
            OnConflict::column(Column::Sku)
                .update_columns([Column::UnitPriceMinor, Column::Currency, Column::Version])
                .action_and_where(Expr::cust("catalogue.version < excluded.version"))
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The known price of each of `skus`; a sku not learnt yet is missing from the answer.
pub async fn prices(
    db: &impl ConnectionTrait,
    skus: &[String],
) -> Result<HashMap<String, Price>, DbErr> {
    let rows = Entity::find()
        .filter(Column::Sku.is_in(skus.iter().cloned()))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let price = Price {
                amount_minor: row.unit_price_minor,
                currency: row.currency,
            };
            (row.sku, price)
        })
        .collect())
}
