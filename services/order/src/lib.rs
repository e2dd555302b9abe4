//! The order service: the public entry point of the saga. It stores orders with their
//! server-side prices and surfaces each order's state: PENDING, then CONFIRMED or REJECTED.

mod domain;
mod grpc;
mod store;

use orderly_common::{
    Shutdown,
    component::{self, ComponentError},
};
use orderly_proto::order::v1::order_service_server::{OrderServiceServer, SERVICE_NAME};
use tonic::service::Routes;

pub use orderly_migration_order::Migrator;

pub const NAME: &str = "order";
pub const DEFAULT_PORT: u16 = 50051;

pub type Config = orderly_common::config::ServiceConfig;

/// Runs the order service until `shutdown`.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<(), ComponentError> {
    component::run::<Migrator>(NAME, DEFAULT_PORT, SERVICE_NAME, config, shutdown, |db| {
        Routes::new(OrderServiceServer::new(grpc::OrderApi::new(db)))
    })
    .await
}
