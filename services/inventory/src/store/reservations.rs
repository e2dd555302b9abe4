//! The `reservations` and `reservation_items` tables: the stock each order holds.

pub mod items;

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, QueryOrder, QuerySelect, TransactionTrait,
    entity::prelude::*, sea_query::Expr,
};

use crate::domain::ReservationStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reservations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    pub status: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A reservation with its items.
#[derive(Clone, Debug)]
pub struct Reservation {
    pub header: Model,
    pub items: Vec<items::Model>,
}

/// Reservations ordered by order id, optionally filtered, after `after` when given.
pub async fn list(
    db: &impl ConnectionTrait,
    order_id: Option<Uuid>,
    status: Option<ReservationStatus>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Reservation>, DbErr> {
    let mut query = Entity::find().order_by_asc(Column::OrderId).limit(limit);
    if let Some(order_id) = order_id {
        query = query.filter(Column::OrderId.eq(order_id));
    }
    if let Some(status) = status {
        query = query.filter(Column::Status.eq(status.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(Column::OrderId.gt(after));
    }
    let headers = query.all(db).await?;
    with_items(db, headers).await
}

async fn with_items(
    db: &impl ConnectionTrait,
    headers: Vec<Model>,
) -> Result<Vec<Reservation>, DbErr> {
    let ids: Vec<Uuid> = headers.iter().map(|header| header.order_id).collect();
    let mut all_items = items::Entity::find()
        .filter(items::Column::OrderId.is_in(ids))
        .order_by_asc(items::Column::Sku)
        .all(db)
        .await?;
    Ok(headers
        .into_iter()
        .map(|header| {
            let (mine, rest) = all_items
                .drain(..)
                .partition(|item| item.order_id == header.order_id);
            all_items = rest;
            Reservation {
                header,
                items: mine,
            }
        })
        .collect())
}

pub async fn find(db: &impl ConnectionTrait, order_id: Uuid) -> Result<Option<Reservation>, DbErr> {
    let Some(header) = Entity::find_by_id(order_id).one(db).await? else {
        return Ok(None);
    };
    Ok(with_items(db, vec![header]).await?.pop())
}

/// Gives a RESERVED reservation's stock back to available, in one transaction. Idempotent: a
/// reservation already RELEASED (or COMMITTED) is returned unchanged, for the caller to judge.
pub async fn release(
    db: &DatabaseConnection,
    order_id: Uuid,
    reason: &str,
) -> Result<Option<Reservation>, DbErr> {
    let txn = db.begin().await?;
    // Claim the reservation first: of two concurrent releases only one sees a row change, so
    // stock is returned once.
    let claimed = Entity::update_many()
        .col_expr(
            Column::Status,
            Expr::value(ReservationStatus::Released.as_str()),
        )
        .col_expr(Column::Reason, Expr::value(reason))
        .col_expr(Column::UpdatedAt, Expr::value(orderly_common::time::now()))
        .filter(Column::OrderId.eq(order_id))
        .filter(Column::Status.eq(ReservationStatus::Reserved.as_str()))
        .exec(&txn)
        .await?;
    let Some(reservation) = find(&txn, order_id).await? else {
        return Ok(None);
    };
    if claimed.rows_affected == 1 {
        for item in &reservation.items {
            items::return_to_available(&txn, item).await?;
        }
    }
    txn.commit().await?;
    Ok(Some(reservation))
}
