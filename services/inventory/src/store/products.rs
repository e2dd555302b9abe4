//! The `products` table: price and the three stock counts of each product.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, QueryOrder, QuerySelect,
    entity::prelude::*,
    sea_query::{Expr, ExprTrait, OnConflict},
};

use crate::domain::MAX_STOCK;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "products")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub sku: String,
    pub name: String,
    pub unit_price_minor: i64,
    pub currency: String,
    pub available: i64,
    pub reserved: i64,
    pub sold: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Raised by every upsert: the version of the price the catalogue's events carry.
    pub version: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Creates the product with no stock, or updates its name and price; stock is untouched.
pub async fn upsert(
    db: &impl ConnectionTrait,
    sku: &str,
    name: &str,
    unit_price_minor: i64,
    currency: &str,
) -> Result<Model, DbErr> {
    let now = orderly_common::time::now();
    let row = ActiveModel {
        sku: Set(sku.to_owned()),
        name: Set(name.to_owned()),
        unit_price_minor: Set(unit_price_minor),
        currency: Set(currency.to_owned()),
        available: Set(0),
        reserved: Set(0),
        sold: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        version: Set(1),
    };
    Entity::insert(row)
        .on_conflict(
            OnConflict::column(Column::Sku)
                .update_columns([
                    Column::Name,
                    Column::UnitPriceMinor,
                    Column::Currency,
                    Column::UpdatedAt,
                ])
                .value(Column::Version, Expr::col((Entity, Column::Version)).add(1))
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    find(db, sku)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(sku.to_owned()))
}

pub async fn find(db: &impl ConnectionTrait, sku: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(sku.to_owned()).one(db).await
}

/// The products among `skus`, in one query; skus that name none are left out.
pub async fn find_many(db: &impl ConnectionTrait, skus: &[&str]) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::Sku.is_in(skus.iter().copied()))
        .all(db)
        .await
}

/// Why a restock was refused.
pub enum RestockRefused {
    UnknownProduct,
    WouldOverflow,
}

/// Adds `quantity` to available stock in one conditional update, so concurrent restocks and
/// reservations never lose an update.
pub async fn restock(
    db: &impl ConnectionTrait,
    sku: &str,
    quantity: u32,
) -> Result<Result<Model, RestockRefused>, DbErr> {
    let quantity = i64::from(quantity);
    let updated = Entity::update_many()
        .col_expr(
            Column::Available,
            Expr::col(Column::Available).add(quantity),
        )
        .col_expr(Column::UpdatedAt, Expr::value(orderly_common::time::now()))
        .filter(Column::Sku.eq(sku))
        .filter(
            Expr::col(Column::Available)
                .add(Expr::col(Column::Reserved))
                .add(Expr::col(Column::Sold))
                .add(quantity)
                .lte(MAX_STOCK),
        )
        .exec(db)
        .await?;
    match (updated.rows_affected, find(db, sku).await?) {
        (1, Some(product)) => Ok(Ok(product)),
        (_, None) => Ok(Err(RestockRefused::UnknownProduct)),
        (_, Some(_)) => Ok(Err(RestockRefused::WouldOverflow)),
    }
}

/// Products ordered by sku, after `after` when given.
pub async fn list(
    db: &impl ConnectionTrait,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let mut query = Entity::find().order_by_asc(Column::Sku).limit(limit);
    if let Some(after) = after {
        query = query.filter(Column::Sku.gt(after));
    }
    query.all(db).await
}
