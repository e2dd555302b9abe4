//! The read model (`order_views`: what the events say of each order) and, in the same
//! database, the position the projection applied each partition to (`positions`), written in
//! the transaction that applies the events: the read model and its position never disagree, and
//! a fresh database replays the topics from the beginning.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum OrderViews {
    Table,
    OrderId,
    CustomerId,
    Status,
    TotalMinor,
    Currency,
    Reason,
    Inventory,
    Payment,
    PlacedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Positions {
    Table,
    Topic,
    Partition,
    NextOffset,
    EventAt,
    AppliedAt,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OrderViews::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(OrderViews::OrderId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(OrderViews::CustomerId).string().not_null())
                    .col(ColumnDef::new(OrderViews::Status).string().not_null())
                    .col(
                        ColumnDef::new(OrderViews::TotalMinor)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(OrderViews::Currency).string().not_null())
                    .col(ColumnDef::new(OrderViews::Reason).text().not_null())
                    .col(ColumnDef::new(OrderViews::Inventory).string().not_null())
                    .col(ColumnDef::new(OrderViews::Payment).string().not_null())
                    .col(
                        ColumnDef::new(OrderViews::PlacedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(OrderViews::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Positions::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Positions::Topic).string().not_null())
                    .col(ColumnDef::new(Positions::Partition).integer().not_null())
                    .col(
                        ColumnDef::new(Positions::NextOffset)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Positions::EventAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Positions::AppliedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(Positions::Topic)
                            .col(Positions::Partition),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Positions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(OrderViews::Table).to_owned())
            .await
    }
}
