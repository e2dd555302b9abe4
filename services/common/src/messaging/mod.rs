//! Transactional messaging, one implementation for every service:
//!
//! - [`outbox`]: write outgoing events in the same database transaction as the state change;
//! - [`relay`]: publish committed outbox rows in order with an idempotent producer, woken on
//!   commit, in batches, deleting them once the broker acknowledged;
//! - [`inbox`] and [`consumer`]: apply each consumed event's effect, its outgoing events and
//!   its id in the transaction of its batch, skip duplicates, store offsets only after the
//!   commit, retry (blocking) what failed transiently;
//! - [`dead_letter`]: what can never be processed goes to a dead-letter topic with its origin;
//! - [`notifications`]: on PostgreSQL, what one replica commits wakes the others at once.

pub mod consumer;
pub mod dead_letter;
pub mod inbox;
pub mod notifications;
pub mod outbox;
pub mod relay;
pub mod watch;

pub use consumer::{Consumed, EventConsumer, Handler, HandlerError};
pub use relay::Relay;
