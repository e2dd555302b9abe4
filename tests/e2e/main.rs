//! End-to-end tests over real processes: the `orderly` binary, the embedded Kafka broker,
//! SQLite and PostgreSQL, and real gRPC clients (tonic and grpcurl).

// Helpers outside #[test] functions unwrap too: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod admin_api;
mod admission;
mod auth;
mod balancing;
mod batch_locks;
mod broker;
mod ctl;
mod dead_letters;
mod dev;
mod evolving;
mod faults_crash;
mod faults_data;
mod faults_network;
mod fencing;
mod forged_events;
mod grpcurl;
mod idempotency;
mod jwks_url;
mod lanes;
mod limits;
mod migrate;
mod observability;
mod rate_limits;
mod reads;
mod rebuild;
mod replicas;
mod saga;
mod scale_out;
mod shutdown;
mod soak;
mod three_step;
mod tls;
mod watch;
