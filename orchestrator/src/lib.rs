//! The saga orchestrator: follows every event of each order's saga, decides its outcome, runs
//! compensations, and shows each saga's state, steps and history through SagaService.

mod grpc;
mod store;

use orderly_common::{
    Shutdown,
    component::{self, ComponentError},
};
use orderly_proto::saga::v1::saga_service_server::{SERVICE_NAME, SagaServiceServer};
use tonic::service::Routes;

pub use orderly_migration_orchestrator::Migrator;

pub const NAME: &str = "orchestrator";
pub const DEFAULT_PORT: u16 = 50055;

pub type Config = orderly_common::config::ServiceConfig;

/// Runs the orchestrator service until `shutdown`.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<(), ComponentError> {
    component::run::<Migrator>(NAME, DEFAULT_PORT, SERVICE_NAME, config, shutdown, |db| {
        Routes::new(SagaServiceServer::new(grpc::SagaApi::new(db)))
    })
    .await
}
