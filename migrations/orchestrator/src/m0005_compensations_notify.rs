//! On PostgreSQL, a saga step opened for compensation notifies `orderly_compensation_opened`,
//! so the replica running compensations (the lease holder) starts it at once, whichever replica's
//! consumer opened it, rather than at its next look. SQLite has one process per database, whose
//! own consumer wakes its compensator: nothing to do.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = "
CREATE OR REPLACE FUNCTION orderly_compensation_opened_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('orderly_compensation_opened', NEW.order_id::text);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER compensation_opened_notify AFTER INSERT OR UPDATE OF status ON saga_steps
    FOR EACH ROW WHEN (NEW.status = 'STEP_COMPENSATING')
    EXECUTE FUNCTION orderly_compensation_opened_notify();
";

const DOWN: &str = "
DROP TRIGGER IF EXISTS compensation_opened_notify ON saga_steps;
DROP FUNCTION IF EXISTS orderly_compensation_opened_notify();
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
