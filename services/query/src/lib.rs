//! The query side: a read model of orders (each with its saga's steps and outcome) that a
//! projection keeps from the event topics in its own database, and OrderViewService, which
//! answers from it with the consistency a read asks for: EVENTUAL at once, saying how far
//! behind it is; STRICT once it has caught up with what was published when the read began.

pub mod access;
mod generations;
mod grpc;
mod lag;
mod log;
mod positions;
mod projection;
mod rebuild;
mod views;

use std::time::Duration;

use clap::Args;
use orderly_common::{
    Shutdown,
    component::{self, ComponentError},
    config::ServiceConfig,
};
use orderly_proto::query::v1::order_view_service_server::{OrderViewServiceServer, SERVICE_NAME};
use tonic::service::Routes;

pub use orderly_migration_query::Migrator;

pub const NAME: &str = "query";
pub const DEFAULT_PORT: u16 = 50056;
pub const DEFAULT_STRICT_WAIT_MS: u64 = 5_000;

#[derive(Args, Clone, Debug)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,

    /// How long a STRICT read waits for the read model to catch up before it answers
    /// DEADLINE_EXCEEDED
    #[arg(long, env = "ORDERLY_STRICT_WAIT_MS", default_value_t = DEFAULT_STRICT_WAIT_MS)]
    pub strict_wait_ms: u64,
}

/// Runs the query side until `shutdown`.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<(), ComponentError> {
    let mut started =
        component::start::<Migrator>(NAME, DEFAULT_PORT, &config.service, &shutdown).await?;
    let log = log::Log::new(&config.service.kafka)?;
    let control = projection::Control::default();
    let projection = projection::Projection {
        db: started.db.clone(),
        kafka: config.service.kafka.clone(),
        log: log.clone(),
        lease: started.housekeeping(),
        control: control.clone(),
        producer: started.producer.clone(),
        shutdown: shutdown.clone(),
    };
    started.spawn(projection.run());
    started.spawn(lag::report(
        started.db.clone(),
        log.clone(),
        started.housekeeping(),
        shutdown.clone(),
    ));
    let api = OrderViewServiceServer::new(grpc::QueryApi {
        db: started.db.clone(),
        log,
        control,
        strict_wait: Duration::from_millis(config.strict_wait_ms),
    })
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
