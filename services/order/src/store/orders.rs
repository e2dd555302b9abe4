//! The `orders` table and reads of whole orders (header plus lines).

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, IntoActiveModel, QueryOrder, QuerySelect, entity::prelude::*, sea_query::Expr,
};

use super::lines;
use crate::domain::OrderStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub customer_id: String,
    pub status: String,
    pub reason: String,
    pub total_minor: i64,
    pub currency: String,
    /// The client's idempotency key scoped by the customer (see [`stored_key`]).
    pub idempotency_key: Option<String>,
    pub request_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::lines::Entity")]
    Lines,
}

impl Related<lines::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Lines.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// An order with its lines.
#[derive(Clone, Debug)]
pub struct Order {
    pub header: Model,
    pub lines: Vec<lines::Model>,
}

/// The order with its lines, in one statement (WatchOrder reads an order at least twice).
pub async fn find(db: &impl ConnectionTrait, order_id: Uuid) -> Result<Option<Order>, DbErr> {
    let found = Entity::find_by_id(order_id)
        .find_with_related(lines::Entity)
        .order_by_asc(lines::Column::LineNo)
        .all(db)
        .await?;
    Ok(found
        .into_iter()
        .next()
        .map(|(header, lines)| Order { header, lines }))
}

/// Orders ordered by id (time-ordered UUIDs), optionally filtered, after `after` when given.
pub async fn list(
    db: &impl ConnectionTrait,
    customer_id: Option<&str>,
    status: Option<OrderStatus>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Order>, DbErr> {
    let mut query = Entity::find().order_by_asc(Column::Id).limit(limit);
    if let Some(customer_id) = customer_id {
        query = query.filter(Column::CustomerId.eq(customer_id));
    }
    if let Some(status) = status {
        query = query.filter(Column::Status.eq(status.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(Column::Id.gt(after));
    }
    let headers = query.all(db).await?;
    with_lines(db, headers).await
}

/// `customer_id`'s orders changed (placed or decided) at `since` or later, oldest change
/// first, at most `limit`.
pub async fn changed_since(
    db: &impl ConnectionTrait,
    customer_id: &str,
    since: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Order>, DbErr> {
    let headers = Entity::find()
        .filter(Column::CustomerId.eq(customer_id))
        .filter(Column::UpdatedAt.gte(since))
        .order_by_asc(Column::UpdatedAt)
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    with_lines(db, headers).await
}

async fn with_lines(db: &impl ConnectionTrait, headers: Vec<Model>) -> Result<Vec<Order>, DbErr> {
    let ids: Vec<Uuid> = headers.iter().map(|header| header.id).collect();
    let lines = lines::Entity::find()
        .filter(lines::Column::OrderId.is_in(ids))
        .order_by_asc(lines::Column::LineNo)
        .all(db)
        .await?;
    let grouped = orderly_common::db::attach(headers, lines, |h| h.id, |l| l.order_id);
    Ok(grouped
        .into_iter()
        .map(|(header, lines)| Order { header, lines })
        .collect())
}

/// An idempotency key as the `orders` table keeps it: `customer/key`, so that each customer's
/// keys are their own. (One column rather than two because SQLite cannot drop the column's
/// UNIQUE constraint without rebuilding the table; customer ids never contain '/'.)
pub fn stored_key(customer_id: &str, key: &str) -> String {
    format!("{customer_id}/{key}")
}

/// The key as the client sent it.
pub fn client_key(stored: &str) -> &str {
    stored.split_once('/').map_or(stored, |(_, key)| key)
}

/// Frees the idempotency key `order_id` holds (kept past its lifetime) for a new order.
pub async fn forget_idempotency_key(
    db: &impl ConnectionTrait,
    order_id: Uuid,
) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::IdempotencyKey, Expr::value(Option::<String>::None))
        .filter(Column::Id.eq(order_id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn find_by_idempotency_key(
    db: &impl ConnectionTrait,
    key: &str,
) -> Result<Option<Order>, DbErr> {
    let Some(header) = Entity::find()
        .filter(Column::IdempotencyKey.eq(key))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(with_lines(db, vec![header]).await?.pop())
}

/// Inserts a new PENDING order with its lines (inside the caller's transaction, beside its
/// OrderPlaced outbox row).
pub async fn insert(db: &impl ConnectionTrait, order: &Order) -> Result<(), DbErr> {
    let header = order.header.clone().into_active_model();
    Entity::insert(header).exec_without_returning(db).await?;
    let lines = order
        .lines
        .iter()
        .cloned()
        .map(IntoActiveModel::into_active_model);
    lines::Entity::insert_many(lines)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// How many orders wait for their saga's decision.
pub async fn count_pending(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::Status.eq(OrderStatus::Pending.as_str()))
        .count(db)
        .await
}

/// Moves a PENDING order to its outcome. Returns false when the order is not PENDING (the
/// outcome was applied already: orders only ever move PENDING -> CONFIRMED or REJECTED) or does
/// not exist.
pub async fn decide(
    db: &impl ConnectionTrait,
    order_id: Uuid,
    status: OrderStatus,
    reason: &str,
) -> Result<bool, DbErr> {
    let updated = Entity::update_many()
        .col_expr(Column::Status, Expr::value(status.as_str()))
        .col_expr(Column::Reason, Expr::value(reason))
        .col_expr(Column::UpdatedAt, Expr::value(orderly_common::time::now()))
        .filter(Column::Id.eq(order_id))
        .filter(Column::Status.eq(OrderStatus::Pending.as_str()))
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}
