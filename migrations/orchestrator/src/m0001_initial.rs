//! Saga instances, the state of each step and the history of what happened to each saga.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sagas {
    Table,
    OrderId,
    CustomerId,
    TotalMinor,
    Currency,
    State,
    Reason,
    DeadlineAt,
    Version,
    OutcomeEmitted,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SagaSteps {
    Table,
    OrderId,
    Name,
    Status,
    Detail,
    Attempts,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SagaHistory {
    Table,
    Id,
    OrderId,
    EventId,
    EventType,
    Note,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sagas::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Sagas::OrderId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Sagas::CustomerId).string_len(64).not_null())
                    .col(ColumnDef::new(Sagas::TotalMinor).big_integer().not_null())
                    .col(ColumnDef::new(Sagas::Currency).string_len(3).not_null())
                    .col(ColumnDef::new(Sagas::State).string_len(32).not_null())
                    .col(ColumnDef::new(Sagas::Reason).text().not_null().default(""))
                    .col(
                        ColumnDef::new(Sagas::DeadlineAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Sagas::Version)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(Sagas::OutcomeEmitted)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(Sagas::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Sagas::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sagas_by_state")
                    .table(Sagas::Table)
                    .col(Sagas::State)
                    .col(Sagas::OrderId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SagaSteps::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(SagaSteps::OrderId).uuid().not_null())
                    .col(ColumnDef::new(SagaSteps::Name).string_len(32).not_null())
                    .col(ColumnDef::new(SagaSteps::Status).string_len(32).not_null())
                    .col(
                        ColumnDef::new(SagaSteps::Detail)
                            .text()
                            .not_null()
                            .default(""),
                    )
                    .col(
                        ColumnDef::new(SagaSteps::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(SagaSteps::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(Index::create().col(SagaSteps::OrderId).col(SagaSteps::Name))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SagaSteps::Table, SagaSteps::OrderId)
                            .to(Sagas::Table, Sagas::OrderId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SagaHistory::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SagaHistory::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SagaHistory::OrderId).uuid().not_null())
                    .col(
                        ColumnDef::new(SagaHistory::EventId)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SagaHistory::EventType)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(SagaHistory::Note).text().not_null())
                    .col(
                        ColumnDef::new(SagaHistory::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(SagaHistory::Table, SagaHistory::OrderId)
                            .to(Sagas::Table, Sagas::OrderId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SagaHistory::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(SagaSteps::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Sagas::Table).to_owned())
            .await
    }
}
