//! The notification service: tells customers the outcome of their orders, once per outcome, and
//! remembers what it sent.

mod grpc;
mod store;

use orderly_common::{
    Shutdown,
    component::{self, ComponentError},
};
use orderly_proto::notification::v1::notification_service_server::{
    NotificationServiceServer, SERVICE_NAME,
};
use tonic::service::Routes;

pub use orderly_migration_notification::Migrator;

pub const NAME: &str = "notification";
pub const DEFAULT_PORT: u16 = 50054;

pub type Config = orderly_common::config::ServiceConfig;

/// Runs the notification service until `shutdown`.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<(), ComponentError> {
    component::run::<Migrator>(NAME, DEFAULT_PORT, SERVICE_NAME, config, shutdown, |db| {
        Routes::new(NotificationServiceServer::new(grpc::NotificationApi::new(
            db,
        )))
    })
    .await
}
