//! The payment service: customer accounts, payments against them, and a ledger that explains
//! every balance change. Money is integer minor units in the account's currency.

pub mod access;
mod accounts_feed;
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
use orderly_proto::payment::v1::payment_service_server::{PaymentServiceServer, SERVICE_NAME};
use tonic::service::Routes;

pub use orderly_migration_payment::Migrator;

pub const NAME: &str = "payment";
pub const DEFAULT_PORT: u16 = 50053;

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

/// Runs the payment service until `shutdown`.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<(), ComponentError> {
    let mut started =
        component::start::<Migrator>(NAME, DEFAULT_PORT, &config.service, &shutdown).await?;
    let rollback = (config.dependencies).rollback_check(NAME, started.tls.as_ref())?;
    started.consume(events::CONSUMER, events::TOPICS.iter(), events::Reactions);
    let keys_ttl = config.idempotency.ttl();
    started.prune_idempotency_keys(keys_ttl);
    let api = PaymentServiceServer::new(grpc::PaymentApi::new(
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
