//! The `reservations` and `reservation_items` tables: the stock each order holds.

pub mod items;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, QueryOrder, QuerySelect,
    TransactionTrait,
    entity::prelude::*,
    sea_query::{Expr, Query},
};

use crate::{domain::ReservationStatus, store::products};

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
    let items = items::Entity::find()
        .filter(items::Column::OrderId.is_in(ids))
        .order_by_asc(items::Column::Sku)
        .all(db)
        .await?;
    let grouped = orderly_common::db::attach(headers, items, |h| h.order_id, |i| i.order_id);
    Ok(grouped
        .into_iter()
        .map(|(header, items)| Reservation { header, items })
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

/// Locks, in sku order, the products named in `skus` and those the reservations of `orders`
/// hold: the rows a batch reserving for the first and settling the second will update (see
/// `Handler::lock_in_order`). One statement; PostgreSQL only (`FOR UPDATE`).
pub async fn lock_stock(
    txn: &DatabaseTransaction,
    skus: impl IntoIterator<Item = String>,
    orders: impl IntoIterator<Item = Uuid>,
) -> Result<(), DbErr> {
    let reserved = Query::select()
        .column(items::Column::Sku)
        .from(items::Entity)
        .and_where(items::Column::OrderId.is_in(orders))
        .to_owned();
    products::Entity::find()
        .select_only()
        .column(products::Column::Sku)
        .filter(
            Condition::any()
                .add(products::Column::Sku.is_in(skus))
                .add(products::Column::Sku.in_subquery(reserved)),
        )
        .order_by_asc(products::Column::Sku)
        .lock_exclusive()
        .into_tuple::<String>()
        .all(txn)
        .await?;
    Ok(())
}

/// A product an order asked for more of than is available.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shortage {
    pub sku: String,
    pub requested: i64,
    /// What was available (0 for an unknown product).
    pub available: i64,
    pub known: bool,
}

/// What reserving an order's items came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reserved {
    /// Every item is reserved.
    All,
    /// Nothing is reserved: these items fell short.
    Nothing(Vec<Shortage>),
    /// The order already has a reservation (or a refusal); nothing changed.
    AlreadyDecided,
}

/// Reserves all `items` (sku, quantity) of an order or none, inside `txn`. Each item is one
/// conditional update (`available >= quantity`), so concurrent orders can never drive stock
/// negative; a savepoint undoes the items already taken when a later one falls short.
pub async fn reserve(
    txn: &DatabaseTransaction,
    order_id: Uuid,
    items: &std::collections::BTreeMap<String, i64>,
) -> Result<Reserved, DbErr> {
    if Entity::find_by_id(order_id).one(txn).await?.is_some() {
        return Ok(Reserved::AlreadyDecided);
    }
    let savepoint = txn.begin().await?;
    let mut shortages = Vec::new();
    // Items in sku order: concurrent orders lock products in the same order, so never deadlock.
    for (sku, quantity) in items {
        let (from, to) = (products::Column::Available, products::Column::Reserved);
        if !items::shift(&savepoint, sku, *quantity, from, to).await? {
            let available = products::find(&savepoint, sku).await?;
            shortages.push(Shortage {
                sku: sku.clone(),
                requested: *quantity,
                available: available.as_ref().map_or(0, |product| product.available),
                known: available.is_some(),
            });
        }
    }
    if !shortages.is_empty() {
        savepoint.rollback().await?;
        return Ok(Reserved::Nothing(shortages));
    }
    let now = orderly_common::time::now();
    let header = ActiveModel {
        order_id: Set(order_id),
        status: Set(ReservationStatus::Reserved.as_str().to_owned()),
        reason: Set(String::new()),
        created_at: Set(now),
        updated_at: Set(now),
    };
    Entity::insert(header)
        .exec_without_returning(&savepoint)
        .await?;
    let rows = items.iter().map(|(sku, quantity)| items::ActiveModel {
        order_id: Set(order_id),
        sku: Set(sku.clone()),
        quantity: Set(*quantity),
    });
    items::Entity::insert_many(rows)
        .exec_without_returning(&savepoint)
        .await?;
    savepoint.commit().await?;
    Ok(Reserved::All)
}

/// Turns a RESERVED reservation into sold stock (the order was confirmed). Returns false when
/// there is no reservation to commit (already committed: a duplicate).
pub async fn commit(txn: &DatabaseTransaction, order_id: Uuid) -> Result<bool, DbErr> {
    let claimed = Entity::update_many()
        .col_expr(
            Column::Status,
            Expr::value(ReservationStatus::Committed.as_str()),
        )
        .col_expr(Column::UpdatedAt, Expr::value(orderly_common::time::now()))
        .filter(Column::OrderId.eq(order_id))
        .filter(Column::Status.eq(ReservationStatus::Reserved.as_str()))
        .exec(txn)
        .await?;
    if claimed.rows_affected != 1 {
        return Ok(false);
    }
    let items = items::Entity::find()
        .filter(items::Column::OrderId.eq(order_id))
        .order_by_asc(items::Column::Sku)
        .all(txn)
        .await?;
    for item in &items {
        items::mark_sold(txn, item).await?;
    }
    Ok(true)
}
