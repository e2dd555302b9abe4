//! Accounts, payments and the ledger. Every change to an account's balance or held money is a
//! ledger row, so any balance can be explained (invariant I3).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    CustomerId,
    Currency,
    BalanceMinor,
    HeldMinor,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    OrderId,
    CustomerId,
    AmountMinor,
    Currency,
    Status,
    Reason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum LedgerEntries {
    Table,
    Id,
    CustomerId,
    OrderId,
    Kind,
    BalanceChangeMinor,
    HeldChangeMinor,
    BalanceAfterMinor,
    HeldAfterMinor,
    Currency,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Accounts::CustomerId).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(Accounts::Currency).string_len(3).not_null())
                    .col(ColumnDef::new(Accounts::BalanceMinor).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Accounts::HeldMinor).big_integer().not_null().default(0))
                    .col(ColumnDef::new(Accounts::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Accounts::UpdatedAt).timestamp_with_time_zone().not_null())
                    .check(Expr::col(Accounts::BalanceMinor).gte(0))
                    .check(Expr::col(Accounts::HeldMinor).gte(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Payments::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Payments::OrderId).uuid().not_null().unique_key())
                    .col(ColumnDef::new(Payments::CustomerId).string_len(64).not_null())
                    .col(ColumnDef::new(Payments::AmountMinor).big_integer().not_null())
                    .col(ColumnDef::new(Payments::Currency).string_len(3).not_null())
                    .col(ColumnDef::new(Payments::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Payments::Reason).text().not_null().default(""))
                    .col(ColumnDef::new(Payments::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Payments::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LedgerEntries::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(LedgerEntries::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(LedgerEntries::CustomerId).string_len(64).not_null())
                    .col(ColumnDef::new(LedgerEntries::OrderId).uuid().null())
                    .col(ColumnDef::new(LedgerEntries::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(LedgerEntries::BalanceChangeMinor).big_integer().not_null())
                    .col(ColumnDef::new(LedgerEntries::HeldChangeMinor).big_integer().not_null())
                    .col(ColumnDef::new(LedgerEntries::BalanceAfterMinor).big_integer().not_null())
                    .col(ColumnDef::new(LedgerEntries::HeldAfterMinor).big_integer().not_null())
                    .col(ColumnDef::new(LedgerEntries::Currency).string_len(3).not_null())
                    .col(ColumnDef::new(LedgerEntries::CreatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(LedgerEntries::Table, LedgerEntries::CustomerId)
                            .to(Accounts::Table, Accounts::CustomerId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ledger_by_customer")
                    .table(LedgerEntries::Table)
                    .col(LedgerEntries::CustomerId)
                    .col(LedgerEntries::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(LedgerEntries::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Payments::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Accounts::Table).to_owned()).await
    }
}
