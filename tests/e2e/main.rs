//! End-to-end tests over real processes: the `orderly` binary, the embedded Kafka broker,
//! SQLite and PostgreSQL, and real gRPC clients (tonic and grpcurl).

#[path = "../support/mod.rs"]
mod support;

mod admin_api;
mod broker;
mod dev;
mod grpcurl;
mod migrate;
