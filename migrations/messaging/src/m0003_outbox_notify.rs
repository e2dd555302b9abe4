//! On PostgreSQL, a commit that adds outbox rows notifies `orderly_outbox`, so the relay that
//! publishes (one replica's, whichever wrote the rows) wakes at once rather than at its next
//! tick. One notification per statement, and PostgreSQL folds those of one transaction into
//! one. SQLite has one process per database, whose own commits wake its relay: nothing to do.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = "
CREATE OR REPLACE FUNCTION orderly_outbox_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('orderly_outbox', '');
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION orderly_outbox_notify();
";

const DOWN: &str = "
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS orderly_outbox_notify();
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::on_postgres(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::on_postgres(manager, DOWN).await
    }
}
