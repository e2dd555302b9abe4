//! Schema of the query side's database: the read model of orders and the position the
//! projection has applied the event topics to, in generations (a rebuild projects a new one
//! beside the one reads use).

pub use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_generations;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(orderly_migration_messaging::Migration),
            Box::new(orderly_migration_messaging::Leases),
            Box::new(orderly_migration_messaging::OutboxNotify),
            Box::new(m0001_initial::Migration),
            Box::new(m0002_generations::Migration),
        ]
    }
}
