//! The saga orchestrator: follows every event of each order's saga, decides its outcome, runs
//! compensations, and shows each saga's state, steps and history through SagaService.

mod core;
mod grpc;
mod runtime;
#[cfg(test)]
mod simulation;
mod store;

use std::time::Duration;

use clap::Args;
use orderly_common::{
    Shutdown,
    component::{self, ComponentError},
    config::{DependencyArgs, ServiceConfig},
};
use orderly_proto::saga::v1::saga_service_server::{SERVICE_NAME, SagaServiceServer};
use tonic::service::Routes;

pub use orderly_migration_orchestrator::Migrator;

pub const NAME: &str = "orchestrator";
pub const DEFAULT_PORT: u16 = 50055;

#[derive(Args, Clone, Debug)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    pub dependencies: DependencyArgs,

    /// How long a saga waits for inventory and payment before it is rejected
    #[arg(long, env = "ORDERLY_SAGA_DEADLINE_MS", default_value_t = 30_000)]
    pub saga_deadline_ms: u64,

    /// Failed attempts of one compensation before its saga is parked for an operator
    #[arg(long, env = "ORDERLY_COMPENSATION_MAX_ATTEMPTS", default_value_t = 10)]
    pub compensation_max_attempts: u32,
}

/// Runs the orchestrator until `shutdown`.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<(), ComponentError> {
    let (inventory, payment) = config.dependencies.clients(NAME)?;
    let mut started =
        component::start::<Migrator>(NAME, DEFAULT_PORT, &config.service, &shutdown).await?;
    let settings = runtime::Settings {
        deadline: Duration::from_millis(config.saga_deadline_ms),
        max_compensation_attempts: config.compensation_max_attempts,
    };
    let operator = runtime::start(&mut started, settings, inventory, payment, &shutdown);
    let api = SagaServiceServer::new(grpc::SagaApi::new(started.db.clone(), operator));
    started
        .serve(SERVICE_NAME, Routes::new(api), &config.service)
        .await
}
