//! Schema of the order service's database: orders and their priced lines, and its projections
//! of the catalogue and the accounts.

pub use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_orders_by_status;
mod m0003_decisions_notify;
mod m0004_keys_per_customer;
mod m0005_catalogue_and_accounts;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(orderly_migration_messaging::Migration),
            Box::new(m0002_orders_by_status::Migration),
            Box::new(orderly_migration_messaging::Leases),
            Box::new(orderly_migration_messaging::OutboxNotify),
            Box::new(m0003_decisions_notify::Migration),
            Box::new(m0004_keys_per_customer::Migration),
            Box::new(m0005_catalogue_and_accounts::Migration),
        ]
    }
}
