//! gRPC plumbing: the server every component runs (its API plus health and reflection, behind
//! one stack) and the client stack for calls between services.

mod balance;
mod breaker;
mod client;
mod metrics_layer;
mod rollback;
mod server;

pub use client::{Client, InvalidEndpoint, TracedChannel};
pub use metrics_layer::code_name;
pub use rollback::{AsksOrchestrator, RollbackCheck};
pub use server::{GrpcServer, bind, serve_health_alone};
