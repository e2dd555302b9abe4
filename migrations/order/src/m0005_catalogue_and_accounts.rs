//! The order service's projections of inventory's catalogue and payment's accounts, fed by
//! their events: PlaceOrder prices items and checks customers from them, so orders are taken
//! while inventory or payment is down. A price is kept with its version, so an older event
//! learnt late never replaces a newer price.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum Catalogue {
    Table,
    Sku,
    UnitPriceMinor,
    Currency,
    Version,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    CustomerId,
    Currency,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Catalogue::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Catalogue::Sku)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Catalogue::UnitPriceMinor)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Catalogue::Currency).string().not_null())
                    .col(ColumnDef::new(Catalogue::Version).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Accounts::CustomerId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Accounts::Currency).string().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Accounts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Catalogue::Table).to_owned())
            .await
    }
}
