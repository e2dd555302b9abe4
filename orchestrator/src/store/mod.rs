//! The orchestrator's tables (sagas, their steps and their history) and the operations the
//! runtime performs on them, as traits: SQL through sea-orm in production, an in-memory copy in
//! the deterministic simulation, so both run the same runtime code.

pub mod history;
pub mod sagas;
mod sql;
pub mod steps;
mod tables;

pub use tables::{SagaUpdate, Store, Tables};
