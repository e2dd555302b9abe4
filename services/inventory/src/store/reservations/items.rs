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

/// Moves an item's quantity from reserved back to available. The guard on `reserved` means a
/// bug elsewhere surfaces as an error here instead of as negative stock.
pub async fn return_to_available(db: &impl ConnectionTrait, item: &Model) -> Result<(), DbErr> {
    let moved = products::Entity::update_many()
        .col_expr(
            products::Column::Reserved,
            Expr::col(products::Column::Reserved).sub(item.quantity),
        )
        .col_expr(
            products::Column::Available,
            Expr::col(products::Column::Available).add(item.quantity),
        )
        .col_expr(
            products::Column::UpdatedAt,
            Expr::value(orderly_common::time::now()),
        )
        .filter(products::Column::Sku.eq(&item.sku))
        .filter(products::Column::Reserved.gte(item.quantity))
        .exec(db)
        .await?;
    if moved.rows_affected == 1 {
        Ok(())
    } else {
        Err(DbErr::Custom(format!(
            "cannot release {} of {} for order {}: fewer are reserved",
            item.quantity, item.sku, item.order_id
        )))
    }
}

/// Moves `quantity` of `sku` from available to reserved if that much is available.
pub async fn take_from_available(
    db: &impl ConnectionTrait,
    sku: &str,
    quantity: i64,
) -> Result<bool, DbErr> {
    let taken = products::Entity::update_many()
        .col_expr(
            products::Column::Available,
            Expr::col(products::Column::Available).sub(quantity),
        )
        .col_expr(
            products::Column::Reserved,
            Expr::col(products::Column::Reserved).add(quantity),
        )
        .col_expr(
            products::Column::UpdatedAt,
            Expr::value(orderly_common::time::now()),
        )
        .filter(products::Column::Sku.eq(sku))
        .filter(products::Column::Available.gte(quantity))
        .exec(db)
        .await?;
    Ok(taken.rows_affected == 1)
}

/// Moves an item's quantity from reserved to sold (the order was confirmed).
pub async fn mark_sold(db: &impl ConnectionTrait, item: &Model) -> Result<(), DbErr> {
    let moved = products::Entity::update_many()
        .col_expr(
            products::Column::Reserved,
            Expr::col(products::Column::Reserved).sub(item.quantity),
        )
        .col_expr(
            products::Column::Sold,
            Expr::col(products::Column::Sold).add(item.quantity),
        )
        .col_expr(
            products::Column::UpdatedAt,
            Expr::value(orderly_common::time::now()),
        )
        .filter(products::Column::Sku.eq(&item.sku))
        .filter(products::Column::Reserved.gte(item.quantity))
        .exec(db)
        .await?;
    if moved.rows_affected == 1 {
        Ok(())
    } else {
        Err(DbErr::Custom(format!(
            "cannot sell {} of {} for order {}: fewer are reserved",
            item.quantity, item.sku, item.order_id
        )))
    }
}
