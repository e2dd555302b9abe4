//! The outbox and inbox tables, shared by every database owner: each service's migrator lists
//! [`Migration`] after its own first migration.
//!
//! - `outbox`: events written in the same transaction as the state change that caused them;
//!   the relay publishes them in `seq` order and deletes them once the broker acknowledged.
//! - `inbox`: ids of events a consumer has applied, written in the same transaction as the
//!   effect, so a redelivered event is recognised and skipped.
//! - `leases` ([`Leases`], listed after): which replica does a piece of background work now.
//! - [`OutboxNotify`] (listed after): on PostgreSQL, commits that add outbox rows notify the
//!   publishing relay.
//! - [`IdempotencyKeys`] (listed after, by the services whose requests take keys): the keys
//!   of requests already answered, with their responses.

use sea_orm_migration::prelude::*;

mod m0002_leases;
mod m0003_outbox_notify;
mod m0004_idempotency_keys;

pub use m0002_leases::Migration as Leases;
pub use m0003_outbox_notify::Migration as OutboxNotify;
pub use m0004_idempotency_keys::Migration as IdempotencyKeys;

/// Runs `sql` on PostgreSQL only: triggers that notify other replicas (SQLite has one process
/// per database, which hears its own commits).
pub async fn on_postgres(manager: &SchemaManager<'_>, sql: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
        manager.get_connection().execute_unprepared(sql).await?;
    }
    Ok(())
}

/// Every shared migration in order, for a new database owner (a saga participant built on the
/// shared crate) to list before its own. Orderly's services list them one by one, where each
/// came into their history.
pub fn all() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(Migration),
        Box::new(Leases),
        Box::new(OutboxNotify),
        Box::new(IdempotencyKeys),
    ]
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Seq,
    EventId,
    Topic,
    Key,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Inbox {
    Table,
    Consumer,
    EventId,
    ProcessedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Outbox::Seq)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Outbox::EventId)
                            .uuid()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(Outbox::Topic).string_len(128).not_null())
                    .col(ColumnDef::new(Outbox::Key).string_len(64).not_null())
                    .col(ColumnDef::new(Outbox::Payload).binary().not_null())
                    .col(
                        ColumnDef::new(Outbox::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Inbox::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Inbox::Consumer).string_len(64).not_null())
                    .col(ColumnDef::new(Inbox::EventId).uuid().not_null())
                    .col(
                        ColumnDef::new(Inbox::ProcessedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(Index::create().col(Inbox::Consumer).col(Inbox::EventId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("inbox_by_age")
                    .table(Inbox::Table)
                    .col(Inbox::ProcessedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Inbox::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }
}
