//! Generations of the read model, so that it can be rebuilt from the log beside the one reads
//! use and switched to when caught up: `read_models` says which generation is current (and which
//! is being built), and the views and positions belong to a generation each.
//!
//! The tables of `m0001` are dropped and made again with a generation: the read model is only
//! ever a projection of the topics, and the projection replays them into generation 1 from the
//! beginning, as it does on a fresh database.

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum ReadModels {
    Table,
    Generation,
    State,
    StartedAt,
    SwitchedAt,
}

#[derive(DeriveIden)]
enum OrderViews {
    Table,
    Generation,
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
    Generation,
    Topic,
    Partition,
    NextOffset,
    EventAt,
    AppliedAt,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

fn timestamp(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Positions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(OrderViews::Table).to_owned())
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReadModels::Table)
                    .col(
                        ColumnDef::new(ReadModels::Generation)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    // building, current or retired
                    .col(ColumnDef::new(ReadModels::State).string().not_null())
                    .col(timestamp(ReadModels::StartedAt))
                    .col(
                        ColumnDef::new(ReadModels::SwitchedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OrderViews::Table)
                    .col(
                        ColumnDef::new(OrderViews::Generation)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(OrderViews::OrderId).uuid().not_null())
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
                    .col(timestamp(OrderViews::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(OrderViews::Generation)
                            .col(OrderViews::OrderId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Positions::Table)
                    .col(
                        ColumnDef::new(Positions::Generation)
                            .big_integer()
                            .not_null(),
                    )
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
                    .col(timestamp(Positions::AppliedAt))
                    .primary_key(
                        Index::create()
                            .col(Positions::Generation)
                            .col(Positions::Topic)
                            .col(Positions::Partition),
                    )
                    .to_owned(),
            )
            .await?;
        let first = Query::insert()
            .into_table(ReadModels::Table)
            .columns([
                ReadModels::Generation,
                ReadModels::State,
                ReadModels::StartedAt,
            ])
            .values_panic([1.into(), "current".into(), Expr::current_timestamp()])
            .to_owned();
        manager.exec_stmt(first).await
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "the read model's generations cannot be undone: drop the database and let the \
             projection replay the topics"
                .into(),
        ))
    }
}
