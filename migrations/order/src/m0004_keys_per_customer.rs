//! Idempotency keys become each customer's own: `orders.idempotency_key` holds
//! `customer_id/key` (customer ids never contain '/'), so another customer's key is another key.
//! Widened on PostgreSQL to fit a customer id and a key; SQLite does not enforce the length.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const WIDEN: &str = "ALTER TABLE orders ALTER COLUMN idempotency_key TYPE varchar(200)";

const SCOPE: &str = "UPDATE orders SET idempotency_key = customer_id || '/' || idempotency_key
    WHERE idempotency_key IS NOT NULL";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        orderly_migration_messaging::on_postgres(manager, WIDEN).await?;
        manager.get_connection().execute_unprepared(SCOPE).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Back to one key space for all customers, where two customers' orders under one key
        // would clash: the keys are forgotten (a retry after going back places a new order).
        manager
            .get_connection()
            .execute_unprepared("UPDATE orders SET idempotency_key = NULL")
            .await?;
        Ok(())
    }
}
