//! The notification service: tells customers the outcome of their orders, once per outcome, and
//! remembers what it sent.

pub mod access;
mod events;
mod grpc;
mod sink;
mod store;

use std::path::PathBuf;

use clap::Args;
use orderly_common::{
    Shutdown,
    component::{self, ComponentError},
    config::ServiceConfig,
};
use orderly_proto::notification::v1::notification_service_server::{
    NotificationServiceServer, SERVICE_NAME,
};
use tonic::service::Routes;

pub use orderly_migration_notification::Migrator;

pub const NAME: &str = "notification";
pub const DEFAULT_PORT: u16 = 50054;

#[derive(Args, Clone, Debug)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,

    /// JSON-lines file every notification is appended to
    /// [default: notifications.jsonl in the data directory]
    #[arg(long, env = "ORDERLY_NOTIFICATIONS_FILE")]
    pub notifications_file: Option<PathBuf>,

    /// POST each notification as JSON to this http:// URL instead of writing the file
    #[arg(long, env = "ORDERLY_NOTIFICATIONS_WEBHOOK")]
    pub notifications_webhook: Option<String>,
}

/// Runs the notification service until `shutdown`.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<(), ComponentError> {
    let sink = match &config.notifications_webhook {
        Some(url) => sink::Sink::Webhook(Box::new(
            sink::Webhook::new(url).map_err(ComponentError::Setting)?,
        )),
        None => sink::Sink::File(
            config
                .notifications_file
                .clone()
                .unwrap_or_else(|| config.service.database.data_dir.join("notifications.jsonl")),
        ),
    };
    let mut started =
        component::start::<Migrator>(NAME, DEFAULT_PORT, &config.service, &shutdown).await?;
    started.consume(
        events::CONSUMER,
        events::TOPICS.iter(),
        events::Notifier { sink },
    );
    let api = NotificationServiceServer::new(grpc::NotificationApi::new(started.db.clone()))
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
