//! Idempotency keys for requests that change something and name no id of their own (Deposit,
//! Restock): a client that retries under the same key is answered what the first request was
//! answered, and nothing happens twice. (PlaceOrder keeps its key on the order itself.)
//!
//! A key belongs to a scope, the RPC and what it acts on (the account, the product): the same
//! key sent for another account is another key, and learns nothing of the first. The key is
//! recorded in the transaction of the effect, with a digest of the request (the same key with a
//! different request is refused, naming the key) and the response a replay answers with. Keys
//! are kept for `--idempotency-ttl-secs` (a day by default), then forgotten: a retry that late
//! is a new request. The table is `idempotency_keys`, one of the shared migrations.

use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;
use futures::future::BoxFuture;
use prost::Message;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DatabaseTransaction, SqlErr,
    TransactionTrait, entity::prelude::*,
};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// A day, as payment APIs keep theirs: long enough for any client's retries.
pub const DEFAULT_TTL_SECS: u64 = 24 * 60 * 60;

/// The longest key accepted: a UUID or a client's own request id fits many times over.
pub const MAX_KEY_LEN: usize = 128;

/// How long idempotency keys are kept.
#[derive(Args, Clone, Copy, Debug)]
pub struct IdempotencyArgs {
    /// How long an idempotency key is kept: a retry under the same key within this time is
    /// answered as the first request was, a later one is a new request
    #[arg(long, env = "ORDERLY_IDEMPOTENCY_TTL_SECS", default_value_t = DEFAULT_TTL_SECS,
          value_parser = clap::value_parser!(u64).range(1..=365 * 24 * 60 * 60))]
    pub idempotency_ttl_secs: u64,
}

impl Default for IdempotencyArgs {
    fn default() -> Self {
        Self {
            idempotency_ttl_secs: DEFAULT_TTL_SECS,
        }
    }
}

impl IdempotencyArgs {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.idempotency_ttl_secs)
    }
}

/// The key field of a request: empty is no key, a key too long is refused naming the field.
pub fn key_field(key: &str) -> Result<Option<&str>, ApiError> {
    if key.len() > MAX_KEY_LEN {
        return Err(ApiError::invalid(
            "idempotency_key",
            format!("is longer than {MAX_KEY_LEN} characters"),
        ));
    }
    Ok(Some(key).filter(|key| !key.is_empty()))
}

/// When keys recorded now stop answering: `ttl` ago.
pub fn kept_since(ttl: Duration) -> DateTime<Utc> {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    crate::time::now()
        .checked_sub_signed(ttl)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub request_digest: Vec<u8>,
    pub response: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A request made under an idempotency key.
#[derive(Clone, Debug)]
pub struct Keyed {
    scope: String,
    key: String,
    digest: Vec<u8>,
    ttl: Duration,
}

impl Keyed {
    /// `request` to `rpc` acting on `subject`, under `key` (the request's own key field, which
    /// the digest leaves out: `request` is passed with it emptied); `None` without a key.
    pub fn new(
        rpc: &str,
        subject: &str,
        key: &str,
        request: &impl Message,
        ttl: Duration,
    ) -> Result<Option<Self>, ApiError> {
        let Some(key) = key_field(key)? else {
            return Ok(None);
        };
        Ok(Some(Self {
            scope: format!("{rpc}/{subject}"),
            key: key.to_owned(),
            digest: Sha256::digest(request.encode_to_vec()).to_vec(),
            ttl,
        }))
    }

    /// The response saved for this key if it was answered within the time keys are kept;
    /// `None` for a new request. A key kept for a different request is refused.
    async fn replay<M: Message + Default>(
        &self,
        db: &impl ConnectionTrait,
    ) -> Result<Option<M>, ApiError> {
        let Some(saved) = Entity::find_by_id((self.scope.clone(), self.key.clone()))
            .filter(Column::CreatedAt.gte(kept_since(self.ttl)))
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        if saved.request_digest != self.digest {
            return Err(ApiError::invalid(
                "idempotency_key",
                format!(
                    "{:?} was already used for a different request in the last {} s",
                    self.key,
                    self.ttl.as_secs()
                ),
            ));
        }
        M::decode(saved.response.as_slice())
            .map(Some)
            .map_err(|error| ApiError::Internal(Box::new(error)))
    }

    /// Records the key with `response` in the effect's transaction; an expired record of the
    /// same key is replaced.
    async fn record(
        &self,
        txn: &DatabaseTransaction,
        response: &impl Message,
    ) -> Result<(), DbErr> {
        Entity::delete_many()
            .filter(Column::Scope.eq(self.scope.as_str()))
            .filter(Column::Key.eq(self.key.as_str()))
            .filter(Column::CreatedAt.lt(kept_since(self.ttl)))
            .exec(txn)
            .await?;
        let row = ActiveModel {
            scope: Set(self.scope.clone()),
            key: Set(self.key.clone()),
            request_digest: Set(self.digest.clone()),
            response: Set(response.encode_to_vec()),
            created_at: Set(crate::time::now()),
        };
        Entity::insert(row).exec_without_returning(txn).await?;
        Ok(())
    }
}

/// Runs `effect` (what the request does, in the transaction it is given; it returns the
/// response) in one transaction and, under a key, records the response there too. A key
/// already answered is answered the same, without running `effect`; of two requests racing
/// under one key, the second to commit fails on the key's primary key, rolls back and answers
/// as the first.
pub async fn once<M, F>(
    db: &DatabaseConnection,
    keyed: Option<Keyed>,
    effect: F,
) -> Result<M, ApiError>
where
    M: Message + Default,
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, Result<M, ApiError>> + Send,
{
    if let Some(keyed) = &keyed
        && let Some(saved) = keyed.replay(db).await?
    {
        return Ok(saved);
    }
    let txn = db.begin().await?;
    let response = effect(&txn).await?;
    let Some(keyed) = keyed else {
        txn.commit().await?;
        return Ok(response);
    };
    let recorded = match keyed.record(&txn, &response).await {
        Ok(()) => txn.commit().await,
        Err(error) => {
            drop(txn); // rolls the effect back
            Err(error)
        }
    };
    match recorded {
        Ok(()) => Ok(response),
        Err(error) if matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            keyed.replay(db).await?.ok_or_else(|| error.into())
        }
        Err(error) => Err(error.into()),
    }
}

/// Forgets keys recorded before `before`, so the table does not grow for ever.
pub async fn prune(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let deleted = Entity::delete_many()
        .filter(Column::CreatedAt.lt(before))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}
