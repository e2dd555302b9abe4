//! The `reservation_items` table: how many of each product a reservation holds.

use sea_orm::{
    ConnectionTrait,
    entity::prelude::*,
    sea_query::{Expr, ExprTrait},
};

use crate::store::products;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reservation_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub sku: String,
    pub quantity: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Moves `quantity` of `sku` from one stock count to another in one conditional update, only
/// if `from` holds that much: concurrent moves can never drive a count negative. Returns
/// whether it moved.
pub async fn shift(
    db: &impl ConnectionTrait,
    sku: &str,
    quantity: i64,
    from: products::Column,
    to: products::Column,
) -> Result<bool, DbErr> {
    let moved = products::Entity::update_many()
        .col_expr(from, Expr::col(from).sub(quantity))
        .col_expr(to, Expr::col(to).add(quantity))
        .col_expr(
            products::Column::UpdatedAt,
            Expr::value(orderly_common::time::now()),
        )
        .filter(products::Column::Sku.eq(sku))
        .filter(from.gte(quantity))
        .exec(db)
        .await?;
    Ok(moved.rows_affected == 1)
}

/// Moves an item's quantity from reserved back to available (the order was rejected).
pub async fn return_to_available(db: &impl ConnectionTrait, item: &Model) -> Result<(), DbErr> {
    settle(db, item, products::Column::Available, "release").await
}

/// Moves an item's quantity from reserved to sold (the order was confirmed).
pub async fn mark_sold(db: &impl ConnectionTrait, item: &Model) -> Result<(), DbErr> {
    settle(db, item, products::Column::Sold, "sell").await
}

/// Moves a reserved item to `to`. Fewer reserved than the item holds means a bug elsewhere:
/// it surfaces as an error here instead of as negative stock.
async fn settle(
    db: &impl ConnectionTrait,
    item: &Model,
    to: products::Column,
    verb: &str,
) -> Result<(), DbErr> {
    if shift(db, &item.sku, item.quantity, products::Column::Reserved, to).await? {
        Ok(())
    } else {
        Err(DbErr::Custom(format!(
            "cannot {verb} {} of {} for order {}: fewer are reserved",
            item.quantity, item.sku, item.order_id
        )))
    }
}
