//! Schema of the orchestrator's database: saga instances, their steps and history, and the
//! dead letters it indexes.

pub use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_saga_trace_parent;
mod m0003_steps_by_status;
mod m0004_saga_definition_version;
mod m0005_compensations_notify;
mod m0006_dead_letters;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(orderly_migration_messaging::Migration),
            Box::new(m0002_saga_trace_parent::Migration),
            Box::new(m0003_steps_by_status::Migration),
            Box::new(m0004_saga_definition_version::Migration),
            Box::new(orderly_migration_messaging::Leases),
            Box::new(orderly_migration_messaging::OutboxNotify),
            Box::new(m0005_compensations_notify::Migration),
            Box::new(m0006_dead_letters::Migration),
        ]
    }
}
