//! The orchestrator's tables: sagas, their steps and their history.

pub mod history;
pub mod sagas;
pub mod steps;
