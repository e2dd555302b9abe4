//! Dead letters for operators: the orchestrator indexes every consumer's dead letters from the
//! `.dlq` topics (`index`), and SagaService lists and shows them, redrives them to their origin
//! for the consumer that refused them, or discards them, recording who did what and why
//! (`actions`, `api`).

pub mod actions;
pub mod api;
pub mod index;
mod table;

pub use actions::DeadLetters;
