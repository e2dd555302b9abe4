//! Orders and their lines. Money is integer minor units plus a currency code.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Orders {
    Table,
    Id,
    CustomerId,
    Status,
    Reason,
    TotalMinor,
    Currency,
    IdempotencyKey,
    RequestHash,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OrderLines {
    Table,
    OrderId,
    LineNo,
    Sku,
    Quantity,
    UnitPriceMinor,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Orders::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Orders::CustomerId).string_len(64).not_null())
                    .col(ColumnDef::new(Orders::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Orders::Reason).text().not_null().default(""))
                    .col(ColumnDef::new(Orders::TotalMinor).big_integer().not_null())
                    .col(ColumnDef::new(Orders::Currency).string_len(3).not_null())
                    .col(
                        ColumnDef::new(Orders::IdempotencyKey)
                            .string_len(128)
                            .null()
                            .unique_key(),
                    )
                    .col(
                        ColumnDef::new(Orders::RequestHash)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Orders::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Orders::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("orders_by_customer")
                    .table(Orders::Table)
                    .col(Orders::CustomerId)
                    .col(Orders::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OrderLines::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(OrderLines::OrderId).uuid().not_null())
                    .col(ColumnDef::new(OrderLines::LineNo).integer().not_null())
                    .col(ColumnDef::new(OrderLines::Sku).string_len(64).not_null())
                    .col(
                        ColumnDef::new(OrderLines::Quantity)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(OrderLines::UnitPriceMinor)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(OrderLines::OrderId)
                            .col(OrderLines::LineNo),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(OrderLines::Table, OrderLines::OrderId)
                            .to(Orders::Table, Orders::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OrderLines::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Orders::Table).to_owned())
            .await
    }
}
