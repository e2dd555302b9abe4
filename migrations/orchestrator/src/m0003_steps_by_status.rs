//! The compensator looks for open compensations several times a second: an index on the step
//! status keeps that a lookup instead of a scan of every step ever recorded.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SagaSteps {
    Table,
    Status,
    OrderId,
}

const INDEX: &str = "saga_steps_by_status";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(SagaSteps::Table)
                    .col(SagaSteps::Status)
                    .col(SagaSteps::OrderId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(SagaSteps::Table).to_owned())
            .await
    }
}
