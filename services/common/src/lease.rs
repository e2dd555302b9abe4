//! Leases: exactly one replica at a time does a piece of background work (publishing the
//! outbox; the orchestrator's deadline timer and compensations), and a former holder cannot
//! write after it lost the lease.
//!
//! A lease is a row in the component's own database (`leases`): who holds it, until when, and
//! its epoch, which goes up each time another process takes it over. A holder renews it every
//! third of its time to live; when the holder dies (or stalls past the time to live) another
//! replica takes it over within about that long. Every write the work makes is fenced
//! ([`fence`]): in the same transaction, the lease row is touched on condition that this
//! process still holds it under the epoch it acted on. On PostgreSQL that row lock also makes
//! a takeover wait for a write in flight; a paused former holder that wakes up finds the epoch
//! moved and its write is refused. Why leases in the database and not the Kafka partitions a
//! replica holds: see DESIGN-NOTES.md, "Who does background work".

use std::{sync::Arc, time::Duration};

use ::metrics::gauge;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, entity::prelude::*, sea_query::Expr};
use tokio::sync::watch;

use crate::{Shutdown, metrics};

/// How long a holder that stopped renewing keeps a lease: another replica takes over within
/// about that long after it died (the same as a Kafka consumer's session timeout, so a dead
/// replica's partitions and its background work move at about the same time).
const TTL: Duration = Duration::from_secs(6);

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "leases")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub holder: String,
    pub epoch: i64,
    pub expires_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What a fenced write proves: that `holder` holds lease `name` under `epoch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub name: &'static str,
    pub holder: Arc<str>,
    pub epoch: i64,
}

/// One lease as this process sees it: whether it holds it now, and under which epoch.
#[derive(Clone)]
pub struct Lease {
    held: watch::Receiver<Option<Fence>>,
}

impl Lease {
    /// Keeps lease `name` for `holder` (see [`holder_id`]) until `shutdown`: takes it when it
    /// is free or expired, renews it every third of its time to live, and lets it go at
    /// shutdown.
    pub fn keep(
        db: DatabaseConnection,
        name: &'static str,
        holder: String,
        shutdown: Shutdown,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (tell, held) = watch::channel(None);
        let holder: Arc<str> = holder.into();
        let task = keep(db, name, holder, tell, shutdown);
        (Self { held }, task)
    }

    /// The fence to act under, if this process holds the lease now.
    pub fn fence(&self) -> Option<Fence> {
        self.held.borrow().clone()
    }

    /// Waits until the lease is taken or lost.
    pub async fn changed(&mut self) {
        if self.held.changed().await.is_err() {
            std::future::pending::<()>().await; // the keeper stopped: at shutdown
        }
    }
}

/// A process as a lease holder: its host and the port it serves on. No two live processes
/// share both, and a process restarted in its place (a container restarted in its pod, a
/// component restarted on its port) is the same holder, so it takes its lease back at once
/// instead of waiting for it to expire.
pub fn holder_id(port: u16) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{port}")
}

async fn keep(
    db: DatabaseConnection,
    name: &'static str,
    holder: Arc<str>,
    tell: watch::Sender<Option<Fence>>,
    shutdown: Shutdown,
) {
    let renew_every = TTL / 3;
    loop {
        let renewing = tell.borrow().as_ref().map(|fence| fence.epoch);
        let held = match try_hold(&db, name, &holder, renewing, TTL).await {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(lease = name, %error, "cannot renew the lease");
                // Still ours until it expires, as far as anyone can tell; a fenced write
                // refuses it if another replica took it over meanwhile.
                tell.borrow().as_ref().map(|fence| fence.epoch)
            }
        };
        let fence = held.map(|epoch| Fence {
            name,
            holder: holder.clone(),
            epoch,
        });
        tell.send_if_modified(|current| {
            if *current == fence {
                return false;
            }
            match &fence {
                Some(fence) => tracing::info!(lease = name, epoch = fence.epoch, "lease taken"),
                None if current.is_some() => tracing::info!(lease = name, "lease lost"),
                None => {}
            }
            *current = fence;
            true
        });
        let held = if tell.borrow().is_some() { 1.0 } else { 0.0 };
        gauge!(metrics::LEASE_HELD, "lease" => name).set(held);
        tokio::select! {
            () = shutdown.requested() => break,
            () = tokio::time::sleep(renew_every) => {}
        }
    }
    // Let another replica take over at once rather than after the time to live.
    if tell.borrow().is_some()
        && let Err(error) = release(&db, name, &holder).await
    {
        tracing::warn!(lease = name, %error, "cannot release the lease");
    }
    tell.send_replace(None);
    gauge!(metrics::LEASE_HELD, "lease" => name).set(0.0);
}

/// Takes or renews the lease (held under epoch `renewing`, as far as this process knows);
/// returns the epoch it is held under, or `None` when another process holds it. Every change is
/// a compare-and-set on the row as read, so two processes taking an expired lease at once
/// cannot both win.
async fn try_hold(
    db: &DatabaseConnection,
    name: &str,
    holder: &str,
    renewing: Option<i64>,
    ttl: Duration,
) -> Result<Option<i64>, DbErr> {
    let now = crate::time::now();
    let expires_at = now + ttl;
    // The common case, a holder renewing what it still holds, in one statement rather than a
    // read and a write: a holder and epoch unchanged since this process took it mean nobody
    // took it over in between, expired or not.
    if let Some(epoch) = renewing {
        let renewed = Entity::update_many()
            .col_expr(Column::ExpiresAt, Expr::value(expires_at))
            .filter(Column::Name.eq(name))
            .filter(Column::Holder.eq(holder))
            .filter(Column::Epoch.eq(epoch))
            .exec(db)
            .await?;
        if renewed.rows_affected == 1 {
            return Ok(Some(epoch));
        }
    }
    let Some(row) = Entity::find_by_id(name).one(db).await? else {
        let row = ActiveModel {
            name: sea_orm::Set(name.to_owned()),
            holder: sea_orm::Set(holder.to_owned()),
            epoch: sea_orm::Set(1),
            expires_at: sea_orm::Set(expires_at),
        };
        let inserted = Entity::insert(row)
            .on_conflict_do_nothing_on([Column::Name])
            .exec_without_returning(db)
            .await?;
        return Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(1)).then_some(1));
    };
    let ours = row.holder == holder;
    if !ours && row.expires_at > now {
        return Ok(None);
    }
    let epoch = if ours { row.epoch } else { row.epoch + 1 };
    let updated = Entity::update_many()
        .col_expr(Column::Holder, Expr::value(holder))
        .col_expr(Column::Epoch, Expr::value(epoch))
        .col_expr(Column::ExpiresAt, Expr::value(expires_at))
        .filter(Column::Name.eq(name))
        .filter(Column::Holder.eq(row.holder))
        .filter(Column::Epoch.eq(row.epoch))
        .filter(Column::ExpiresAt.eq(row.expires_at))
        .exec(db)
        .await?;
    Ok((updated.rows_affected == 1).then_some(epoch))
}

/// Gives the lease up (it expires now).
async fn release(db: &DatabaseConnection, name: &str, holder: &str) -> Result<(), DbErr> {
    Entity::update_many()
        .col_expr(Column::ExpiresAt, Expr::value(crate::time::now()))
        .filter(Column::Name.eq(name))
        .filter(Column::Holder.eq(holder))
        .exec(db)
        .await?;
    Ok(())
}

/// In the caller's transaction: refuses (an error, so the transaction is rolled back) unless
/// `fence` still holds, and keeps the lease from being taken over until the transaction ends.
pub async fn fence(txn: &impl ConnectionTrait, fence: &Fence) -> Result<(), DbErr> {
    let touched = Entity::update_many()
        .col_expr(Column::Epoch, Expr::col(Column::Epoch))
        .filter(Column::Name.eq(fence.name))
        .filter(Column::Holder.eq(fence.holder.as_ref()))
        .filter(Column::Epoch.eq(fence.epoch))
        .exec(txn)
        .await?;
    if touched.rows_affected == 1 {
        Ok(())
    } else {
        Err(DbErr::Custom(format!(
            "lease {} lost: another replica holds it now (this one acted under epoch {})",
            fence.name, fence.epoch
        )))
    }
}
