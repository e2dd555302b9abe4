//! Shared plumbing for every Orderly component: configuration, telemetry, shutdown, the gRPC
//! server stack, databases and Kafka. Services hold their domain; this crate holds the rest,
//! once.

pub mod auth;
pub mod component;
pub mod config;
pub mod db;
pub mod error;
pub mod failpoints;
pub mod group_commit;
pub mod grpc;
pub mod health;
pub mod idempotency;
pub mod kafka;
pub mod lease;
pub mod messaging;
pub mod metrics;
pub mod reload;
pub mod shutdown;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod validate;

pub use error::ApiError;
pub use shutdown::Shutdown;
