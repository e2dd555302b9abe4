//! Products (price and stock) and the reservations orders hold. The CHECK constraints are the
//! last line of defence for invariant I2: stock counts can never go negative.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Products {
    Table,
    Sku,
    Name,
    UnitPriceMinor,
    Currency,
    Available,
    Reserved,
    Sold,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Reservations {
    Table,
    OrderId,
    Status,
    Reason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ReservationItems {
    Table,
    OrderId,
    Sku,
    Quantity,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Products::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Products::Sku)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Products::Name).string_len(200).not_null())
                    .col(
                        ColumnDef::new(Products::UnitPriceMinor)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Products::Currency).string_len(3).not_null())
                    .col(
                        ColumnDef::new(Products::Available)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Products::Reserved)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Products::Sold)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Products::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Products::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .check(Expr::col(Products::Available).gte(0))
                    .check(Expr::col(Products::Reserved).gte(0))
                    .check(Expr::col(Products::Sold).gte(0))
                    .check(Expr::col(Products::UnitPriceMinor).gt(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Reservations::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Reservations::OrderId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Reservations::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Reservations::Reason)
                            .text()
                            .not_null()
                            .default(""),
                    )
                    .col(
                        ColumnDef::new(Reservations::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Reservations::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReservationItems::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(ReservationItems::OrderId).uuid().not_null())
                    .col(
                        ColumnDef::new(ReservationItems::Sku)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ReservationItems::Quantity)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(ReservationItems::OrderId)
                            .col(ReservationItems::Sku),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ReservationItems::Table, ReservationItems::OrderId)
                            .to(Reservations::Table, Reservations::OrderId),
                    )
                    .check(Expr::col(ReservationItems::Quantity).gt(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ReservationItems::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Reservations::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Products::Table).to_owned())
            .await
    }
}
