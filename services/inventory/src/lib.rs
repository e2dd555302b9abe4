//! The inventory service: products with their price and stock, and the reservations orders hold.
//! Stock is always split three ways (available + reserved + sold) and never goes negative.

pub mod access;
mod catalogue;
mod domain;
pub mod events;
mod grpc;
mod store;

use clap::Args;
use orderly_common::{
    Shutdown,
    component::{self, ComponentError},
    config::{DependencyArgs, ServiceConfig},
    grpc::AsksOrchestrator,
    idempotency::IdempotencyArgs,
};
use orderly_proto::inventory::v1::inventory_service_server::{
    InventoryServiceServer, SERVICE_NAME,
};
use tonic::service::Routes;

pub use orderly_migration_inventory::Migrator;

pub const NAME: &str = "inventory";
pub const DEFAULT_PORT: u16 = 50052;

#[derive(Args, Clone, Debug)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,
    // The orchestrator, asked before a step of a saga is undone (I11).
    #[command(flatten)]
    pub dependencies: DependencyArgs<AsksOrchestrator>,
    #[command(flatten)]
    pub idempotency: IdempotencyArgs,
}

/// Runs the inventory service until `shutdown`.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<(), ComponentError> {
    let mut started =
        component::start::<Migrator>(NAME, DEFAULT_PORT, &config.service, &shutdown).await?;
    let rollback = (config.dependencies).rollback_check(NAME, started.tls.as_ref())?;
    started.consume(events::CONSUMER, events::TOPICS.iter(), events::Reactions);
    let keys_ttl = config.idempotency.ttl();
    started.prune_idempotency_keys(keys_ttl);
    let api = InventoryServiceServer::new(grpc::InventoryApi::new(
        started.db.clone(),
        started.relay.clone(),
        rollback,
        keys_ttl,
    ))
    .max_decoding_message_size(config.service.server.max_message_bytes());
    started
        .serve(
            SERVICE_NAME,
            Routes::new(api),
            access::RULES,
            &config.service,
        )
        .await
}
