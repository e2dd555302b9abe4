//! The order service: the public entry point of the saga. It stores orders with their
//! server-side prices and surfaces each order's state: PENDING, then CONFIRMED or REJECTED.

mod domain;
mod events;
mod grpc;
mod place;
mod store;

use clap::Args;
use orderly_common::{
    Shutdown,
    component::{self, ComponentError},
    config::{DependencyArgs, ServiceConfig},
};
use orderly_proto::order::v1::order_service_server::{OrderServiceServer, SERVICE_NAME};
use tonic::service::Routes;

pub use orderly_migration_order::Migrator;

pub const NAME: &str = "order";
pub const DEFAULT_PORT: u16 = 50051;

#[derive(Args, Clone, Debug)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    pub dependencies: DependencyArgs,
}

/// Runs the order service until `shutdown`.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<(), ComponentError> {
    let (inventory, payment) = config.dependencies.clients(NAME)?;
    let mut started =
        component::start::<Migrator>(NAME, DEFAULT_PORT, &config.service, &shutdown).await?;
    started.consume(events::CONSUMER, events::TOPICS, events::Outcomes);
    let placer = place::Placer {
        db: started.db.clone(),
        relay: started.relay.clone(),
        inventory,
        payment,
    };
    let api = OrderServiceServer::new(grpc::OrderApi::new(placer));
    started
        .serve(SERVICE_NAME, Routes::new(api), &config.service)
        .await
}
