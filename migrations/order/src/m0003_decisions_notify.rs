//! On PostgreSQL, deciding an order notifies `orderly_order_decided` with its id, so that every
//! order replica wakes its own WatchOrder streams on that order at once, whichever replica
//! applied the decision. SQLite has one process per database: its consumer wakes them itself.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = "
CREATE OR REPLACE FUNCTION orderly_order_decided_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('orderly_order_decided', NEW.id::text);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER order_decided_notify AFTER UPDATE OF status ON orders
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION orderly_order_decided_notify();
";

const DOWN: &str = "
DROP TRIGGER IF EXISTS order_decided_notify ON orders;
DROP FUNCTION IF EXISTS orderly_order_decided_notify();
";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        orderly_migration_messaging::on_postgres(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        orderly_migration_messaging::on_postgres(manager, DOWN).await
    }
}
