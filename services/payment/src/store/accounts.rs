//! The `accounts` table: each customer's spendable balance and the money held for orders.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, TryInsertResult,
    entity::prelude::*,
    sea_query::{Expr, ExprTrait},
};

use super::ledger;
use crate::domain::LedgerKind;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub customer_id: String,
    pub currency: String,
    pub balance_minor: i64,
    pub held_minor: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub async fn find(db: &impl ConnectionTrait, customer_id: &str) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id(customer_id.to_owned()).one(db).await
}

/// Opens an empty account. Returns the existing account instead when one is already open for
/// the customer (the caller checks its currency), and whether this call opened it.
pub async fn open(
    db: &impl ConnectionTrait,
    customer_id: &str,
    currency: &str,
) -> Result<(Model, bool), DbErr> {
    let now = orderly_common::time::now();
    let row = ActiveModel {
        customer_id: Set(customer_id.to_owned()),
        currency: Set(currency.to_owned()),
        balance_minor: Set(0),
        held_minor: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let inserted = Entity::insert(row)
        .on_conflict_do_nothing_on([Column::CustomerId])
        .exec_without_returning(db)
        .await?;
    let account = find(db, customer_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(customer_id.to_owned()))?;
    let opened = matches!(inserted, TryInsertResult::Inserted(rows) if rows > 0);
    Ok((account, opened))
}

/// Why a deposit was refused.
pub enum DepositRefused {
    UnknownAccount,
    WrongCurrency(String),
    WouldOverflow,
}

/// Adds money to the balance and writes the ledger entry (in the caller's transaction).
pub async fn deposit(
    txn: &impl ConnectionTrait,
    customer_id: &str,
    amount_minor: i64,
    currency: &str,
) -> Result<Result<Model, DepositRefused>, DbErr> {
    let updated = Entity::update_many()
        .col_expr(
            Column::BalanceMinor,
            Expr::col(Column::BalanceMinor).add(amount_minor),
        )
        .col_expr(Column::UpdatedAt, Expr::value(orderly_common::time::now()))
        .filter(Column::CustomerId.eq(customer_id))
        .filter(Column::Currency.eq(currency))
        // Balance and held money together stay within i64, so that a refund (held money back
        // into the balance) always fits: past it SQLite turns the column into a REAL.
        .filter(
            Expr::col(Column::BalanceMinor)
                .add(Expr::col(Column::HeldMinor))
                .lte(i64::MAX - amount_minor),
        )
        .exec(txn)
        .await?;
    let Some(account) = find(txn, customer_id).await? else {
        return Ok(Err(DepositRefused::UnknownAccount));
    };
    if updated.rows_affected != 1 {
        return Ok(Err(if account.currency != currency {
            DepositRefused::WrongCurrency(account.currency)
        } else {
            DepositRefused::WouldOverflow
        }));
    }
    ledger::record(txn, &account, None, LedgerKind::Deposit, amount_minor, 0).await?;
    Ok(Ok(account))
}

/// Applies a (balance, held) movement and returns the account after it.
pub async fn apply(
    db: &impl ConnectionTrait,
    customer_id: &str,
    balance_change: i64,
    held_change: i64,
) -> Result<Model, DbErr> {
    let updated = Entity::update_many()
        .col_expr(
            Column::BalanceMinor,
            Expr::col(Column::BalanceMinor).add(balance_change),
        )
        .col_expr(
            Column::HeldMinor,
            Expr::col(Column::HeldMinor).add(held_change),
        )
        .col_expr(Column::UpdatedAt, Expr::value(orderly_common::time::now()))
        .filter(Column::CustomerId.eq(customer_id))
        .filter(Column::BalanceMinor.gte(-balance_change))
        .filter(Column::HeldMinor.gte(-held_change))
        .exec_with_returning(db)
        .await?;
    updated.into_iter().next().ok_or_else(|| {
        DbErr::Custom(format!(
            "account {customer_id} cannot move balance by {balance_change} and held by {held_change}"
        ))
    })
}

/// Why money could not be held for an order.
pub enum HoldRefused {
    NoAccount,
    WrongCurrency(String),
    InsufficientFunds { balance_minor: i64 },
}

/// Moves `amount_minor` from the balance to held money if the account is in `currency` and its
/// balance covers it, in one conditional update that returns the account after it; otherwise
/// says why not.
pub async fn hold(
    db: &impl ConnectionTrait,
    customer_id: &str,
    amount_minor: i64,
    currency: &str,
) -> Result<Result<Model, HoldRefused>, DbErr> {
    let held = Entity::update_many()
        .col_expr(
            Column::BalanceMinor,
            Expr::col(Column::BalanceMinor).sub(amount_minor),
        )
        .col_expr(
            Column::HeldMinor,
            Expr::col(Column::HeldMinor).add(amount_minor),
        )
        .col_expr(Column::UpdatedAt, Expr::value(orderly_common::time::now()))
        .filter(Column::CustomerId.eq(customer_id))
        .filter(Column::Currency.eq(currency))
        .filter(Column::BalanceMinor.gte(amount_minor))
        .exec_with_returning(db)
        .await?;
    if let Some(account) = held.into_iter().next() {
        return Ok(Ok(account));
    }
    Ok(Err(match find(db, customer_id).await? {
        None => HoldRefused::NoAccount,
        Some(account) if account.currency != currency => {
            HoldRefused::WrongCurrency(account.currency)
        }
        Some(account) => HoldRefused::InsufficientFunds {
            balance_minor: account.balance_minor,
        },
    }))
}
