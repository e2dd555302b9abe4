//! Schema of the inventory service's database: products with price and stock, and reservations.

pub use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_product_versions;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(orderly_migration_messaging::Migration),
            Box::new(orderly_migration_messaging::Leases),
            Box::new(orderly_migration_messaging::OutboxNotify),
            Box::new(orderly_migration_messaging::IdempotencyKeys),
            Box::new(m0002_product_versions::Migration),
        ]
    }
}
