//! What every component does at start: open and migrate its database, make sure the Kafka topics
//! exist, and listen for gRPC.

use std::net::SocketAddr;

use sea_orm::{DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;

use tonic::service::Routes;

use crate::{
    Shutdown,
    config::ServiceConfig,
    db,
    grpc::{self, GrpcServer},
    kafka::topics,
};

/// Why a component could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("grpc server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error(transparent)]
    Kafka(#[from] crate::kafka::KafkaError),
}

/// Starts a component whose whole job is serving one gRPC API over its own database, and serves
/// until `shutdown`. `api` builds the API from the migrated database.
pub async fn run<M: MigratorTrait>(
    name: &'static str,
    default_port: u16,
    service_name: &'static str,
    config: &ServiceConfig,
    shutdown: Shutdown,
    api: impl FnOnce(DatabaseConnection) -> Routes,
) -> Result<(), ComponentError> {
    let started = start::<M>(name, default_port, config, &shutdown).await?;
    GrpcServer::new(service_name, api(started.db))
        .serve(started.listener, &config.server, shutdown)
        .await?;
    Ok(())
}

/// Everything a component needs once started.
pub struct Started {
    pub db: DatabaseConnection,
    pub listener: TcpListener,
    pub addr: SocketAddr,
}

/// Opens the component's database (migrating it), binds its gRPC port and, in the background,
/// creates the Kafka topics it will use, retrying until the broker is reachable.
pub async fn start<M: MigratorTrait>(
    name: &'static str,
    default_port: u16,
    config: &ServiceConfig,
    shutdown: &Shutdown,
) -> Result<Started, ComponentError> {
    let db = db::connect_and_migrate::<M>(&config.database.url_for(name)).await?;
    let listener = grpc::bind(config.server.listen_addr_or(default_port)).await?;
    let addr = listener.local_addr()?;
    let (kafka, shutdown) = (config.kafka.clone(), shutdown.clone());
    tokio::spawn(async move {
        if topics::ensure_with_retry(&kafka, &topics::all(), &shutdown).await {
            tracing::debug!(component = name, "kafka topics ready");
        }
    });
    Ok(Started { db, listener, addr })
}
