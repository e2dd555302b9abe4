//! The inventory service: products with their price and stock, and the reservations orders hold.
//! Stock is always split three ways (available + reserved + sold) and never goes negative.

mod domain;
pub mod events;
mod grpc;
mod store;

use orderly_common::{
    Shutdown,
    component::{self, ComponentError},
};
use orderly_proto::inventory::v1::inventory_service_server::{
    InventoryServiceServer, SERVICE_NAME,
};
use tonic::service::Routes;

pub use orderly_migration_inventory::Migrator;

pub const NAME: &str = "inventory";
pub const DEFAULT_PORT: u16 = 50052;

pub type Config = orderly_common::config::ServiceConfig;

/// Runs the inventory service until `shutdown`.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<(), ComponentError> {
    let mut started = component::start::<Migrator>(NAME, DEFAULT_PORT, config, &shutdown).await?;
    started.consume(events::CONSUMER, events::TOPICS.iter(), events::Reactions);
    let api = InventoryServiceServer::new(grpc::InventoryApi::new(started.db.clone()))
        .max_decoding_message_size(config.server.max_message_bytes());
    started.serve(SERVICE_NAME, Routes::new(api), config).await
}
