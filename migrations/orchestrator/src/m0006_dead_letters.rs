//! The dead letters of every consumer, indexed from the `.dlq` topics for operators, and each
//! action taken on them (who, when, what, why).

use sea_orm_migration::prelude::*;

#[derive(DeriveIden)]
enum DeadLetters {
    Table,
    Id,
    Topic,
    Partition,
    Offset,
    Consumer,
    Error,
    EventId,
    EventType,
    Key,
    Payload,
    Headers,
    DeadLetteredAt,
    State,
}

#[derive(DeriveIden)]
enum DeadLetterActions {
    Table,
    Seq,
    DeadLetterId,
    Action,
    Actor,
    Note,
    At,
}

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeadLetters::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(DeadLetters::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(DeadLetters::Topic).string().not_null())
                    .col(ColumnDef::new(DeadLetters::Partition).integer().not_null())
                    .col(ColumnDef::new(DeadLetters::Offset).big_integer().not_null())
                    .col(ColumnDef::new(DeadLetters::Consumer).string().not_null())
                    .col(ColumnDef::new(DeadLetters::Error).text().not_null())
                    .col(ColumnDef::new(DeadLetters::EventId).string().not_null())
                    .col(ColumnDef::new(DeadLetters::EventType).string().not_null())
                    .col(ColumnDef::new(DeadLetters::Key).string().not_null())
                    .col(ColumnDef::new(DeadLetters::Payload).blob().not_null())
                    .col(ColumnDef::new(DeadLetters::Headers).text().not_null())
                    .col(
                        ColumnDef::new(DeadLetters::DeadLetteredAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(DeadLetters::State).string().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("dead_letters_by_time")
                    .table(DeadLetters::Table)
                    .col(DeadLetters::DeadLetteredAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DeadLetterActions::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(DeadLetterActions::Seq)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(DeadLetterActions::DeadLetterId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DeadLetterActions::Action)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(DeadLetterActions::Actor).string().not_null())
                    .col(ColumnDef::new(DeadLetterActions::Note).text().not_null())
                    .col(
                        ColumnDef::new(DeadLetterActions::At)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("dead_letter_actions_by_letter")
                    .table(DeadLetterActions::Table)
                    .col(DeadLetterActions::DeadLetterId)
                    .col(DeadLetterActions::Seq)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DeadLetterActions::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(DeadLetters::Table).to_owned())
            .await
    }
}
