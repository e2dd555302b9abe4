//! The payment service: customer accounts, payments against them, and a ledger that explains
//! every balance change. Money is integer minor units in the account's currency.

mod domain;
pub mod events;
mod grpc;
mod store;

use orderly_common::{
    Shutdown,
    component::{self, ComponentError},
};
use orderly_proto::payment::v1::payment_service_server::{PaymentServiceServer, SERVICE_NAME};
use tonic::service::Routes;

pub use orderly_migration_payment::Migrator;

pub const NAME: &str = "payment";
pub const DEFAULT_PORT: u16 = 50053;

pub type Config = orderly_common::config::ServiceConfig;

/// Runs the payment service until `shutdown`.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<(), ComponentError> {
    let mut started = component::start::<Migrator>(NAME, DEFAULT_PORT, config, &shutdown).await?;
    started.consume(events::CONSUMER, events::TOPICS.iter(), events::Reactions);
    let api = PaymentServiceServer::new(grpc::PaymentApi::new(started.db.clone()))
        .max_decoding_message_size(config.server.max_message_bytes());
    started.serve(SERVICE_NAME, Routes::new(api), config).await
}
