//! A version on each product, raised by every change of it: the catalogue's events carry it, so
//! the order service's projection keeps the newest price whatever order it learns them in.
//! Products that exist get version 1.

use sea_orm_migration::prelude::*;

use crate::m0001_initial::Products;

#[derive(DeriveIden)]
enum Version {
    Version,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Products::Table)
                    .add_column(
                        ColumnDef::new(Version::Version)
                            .big_integer()
                            .not_null()
                            .default(1),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Products::Table)
                    .drop_column(Version::Version)
                    .to_owned(),
            )
            .await
    }
}
