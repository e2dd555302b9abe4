//! The `payments` table: at most one payment per order.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, QueryOrder, QuerySelect,
    TransactionTrait,
    entity::prelude::*,
    sea_query::{Expr, Query},
};

use super::{
    accounts::{self, HoldRefused},
    ledger,
};
use crate::domain::{LedgerKind, PaymentStatus};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub order_id: Uuid,
    pub customer_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub async fn find_by_order(
    db: &impl ConnectionTrait,
    order_id: Uuid,
) -> Result<Option<Model>, DbErr> {
    Entity::find()
        .filter(Column::OrderId.eq(order_id))
        .one(db)
        .await
}

/// Payments ordered by id (time-ordered UUIDs), optionally filtered, after `after` when given.
pub async fn list(
    db: &impl ConnectionTrait,
    customer_id: Option<&str>,
    order_id: Option<Uuid>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let mut query = Entity::find().order_by_asc(Column::Id).limit(limit);
    if let Some(customer_id) = customer_id {
        query = query.filter(Column::CustomerId.eq(customer_id));
    }
    if let Some(order_id) = order_id {
        query = query.filter(Column::OrderId.eq(order_id));
    }
    if let Some(after) = after {
        query = query.filter(Column::Id.gt(after));
    }
    query.all(db).await
}

/// Gives an order's money back, in one transaction: held money for an AUTHORIZED payment,
/// captured money for a CAPTURED one. Idempotent: a payment already REFUNDED (or DECLINED) is
/// returned unchanged.
pub async fn refund(
    db: &DatabaseConnection,
    order_id: Uuid,
    reason: &str,
) -> Result<Option<Model>, DbErr> {
    let txn = db.begin().await?;
    let Some(payment) = find_by_order(&txn, order_id).await? else {
        return Ok(None);
    };
    let status = PaymentStatus::parse(&payment.status).ok_or_else(|| {
        DbErr::Custom(format!(
            "payment {} has unknown status {}",
            payment.id, payment.status
        ))
    })?;
    let Some((balance_change, held_change)) = status.refund_movement(payment.amount_minor) else {
        return Ok(Some(payment));
    };
    // Claim the payment in the status we read: of two concurrent refunds only one moves money.
    let claimed = Entity::update_many()
        .col_expr(
            Column::Status,
            Expr::value(PaymentStatus::Refunded.as_str()),
        )
        .col_expr(Column::Reason, Expr::value(reason))
        .col_expr(Column::UpdatedAt, Expr::value(orderly_common::time::now()))
        .filter(Column::Id.eq(payment.id))
        .filter(Column::Status.eq(status.as_str()))
        .exec(&txn)
        .await?;
    if claimed.rows_affected == 1 {
        let account =
            accounts::apply(&txn, &payment.customer_id, balance_change, held_change).await?;
        ledger::record(
            &txn,
            &account,
            Some(order_id),
            LedgerKind::Refund,
            balance_change,
            held_change,
        )
        .await?;
    }
    let refunded = find_by_order(&txn, order_id).await?;
    txn.commit().await?;
    Ok(refunded)
}

/// Locks, in customer order, the accounts of `customers` and of the payments of `orders`: the
/// rows a batch authorizing for the first and capturing the second will update (see
/// `Handler::lock_in_order`). One statement; PostgreSQL only (`FOR UPDATE`).
pub async fn lock_accounts(
    txn: &DatabaseTransaction,
    customers: impl IntoIterator<Item = String>,
    orders: impl IntoIterator<Item = Uuid>,
) -> Result<(), DbErr> {
    let paying = Query::select()
        .column(Column::CustomerId)
        .from(Entity)
        .and_where(Column::OrderId.is_in(orders))
        .to_owned();
    accounts::Entity::find()
        .select_only()
        .column(accounts::Column::CustomerId)
        .filter(
            Condition::any()
                .add(accounts::Column::CustomerId.is_in(customers))
                .add(accounts::Column::CustomerId.in_subquery(paying)),
        )
        .order_by_asc(accounts::Column::CustomerId)
        .lock_exclusive()
        .into_tuple::<String>()
        .all(txn)
        .await?;
    Ok(())
}

/// What authorizing an order's amount came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorization {
    Authorized(Model),
    Declined(String),
    /// The order already has a payment; nothing changed.
    AlreadyDecided,
}

/// Holds `amount` of the customer's balance for the order, or declines (recording a DECLINED
/// payment), inside `txn`. The balance moves in one conditional update, so concurrent orders
/// can never overdraw it.
pub async fn authorize(
    txn: &DatabaseTransaction,
    order_id: Uuid,
    customer_id: &str,
    amount_minor: i64,
    currency: &str,
) -> Result<Authorization, DbErr> {
    if find_by_order(txn, order_id).await?.is_some() {
        return Ok(Authorization::AlreadyDecided);
    }
    let held = accounts::hold(txn, customer_id, amount_minor, currency).await?;
    let (status, reason) = match &held {
        Ok(_) => (PaymentStatus::Authorized, String::new()),
        Err(HoldRefused::NoAccount) => (
            PaymentStatus::Declined,
            format!("customer {customer_id} has no account"),
        ),
        Err(HoldRefused::WrongCurrency(holds)) => (
            PaymentStatus::Declined,
            format!("account {customer_id} holds {holds}, the order costs {currency}"),
        ),
        Err(HoldRefused::InsufficientFunds { balance_minor }) => (
            PaymentStatus::Declined,
            format!("insufficient funds: balance {balance_minor}, order total {amount_minor}"),
        ),
    };
    let now = orderly_common::time::now();
    let payment = ActiveModel {
        id: Set(Uuid::now_v7()),
        order_id: Set(order_id),
        customer_id: Set(customer_id.to_owned()),
        amount_minor: Set(amount_minor),
        currency: Set(currency.to_owned()),
        status: Set(status.as_str().to_owned()),
        reason: Set(reason.clone()),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let payment = payment.insert(txn).await?;
    Ok(match held {
        Ok(account) => {
            ledger::record(
                txn,
                &account,
                Some(order_id),
                LedgerKind::Authorize,
                -amount_minor,
                amount_minor,
            )
            .await?;
            Authorization::Authorized(payment)
        }
        Err(_) => Authorization::Declined(reason),
    })
}

/// Takes an AUTHORIZED payment's held money (the order was confirmed). Returns false when
/// there is nothing to capture (already captured: a duplicate).
pub async fn capture(txn: &DatabaseTransaction, order_id: Uuid) -> Result<bool, DbErr> {
    let claimed = Entity::update_many()
        .col_expr(
            Column::Status,
            Expr::value(PaymentStatus::Captured.as_str()),
        )
        .col_expr(Column::UpdatedAt, Expr::value(orderly_common::time::now()))
        .filter(Column::OrderId.eq(order_id))
        .filter(Column::Status.eq(PaymentStatus::Authorized.as_str()))
        .exec_with_returning(txn)
        .await?;
    let Some(payment) = claimed.into_iter().next() else {
        return Ok(false);
    };
    let account = accounts::apply(txn, &payment.customer_id, 0, -payment.amount_minor).await?;
    ledger::record(
        txn,
        &account,
        Some(order_id),
        LedgerKind::Capture,
        0,
        -payment.amount_minor,
    )
    .await?;
    Ok(true)
}
