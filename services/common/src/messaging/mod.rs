//! Transactional messaging, one implementation for every service:
//!
//! - [`outbox`]: write outgoing events in the same database transaction as the state change;
//! - [`relay`]: publish committed outbox rows in order with an idempotent producer, woken on
//!   commit, in batches, deleting them once the broker acknowledged;
//! - [`inbox`] and [`consumer`]: apply each consumed event's effect, its outgoing events and
//!   its id in one transaction, skip duplicates, store the offset only after the commit,
//!   dead-letter what can never be processed and retry (blocking) what failed transiently.

pub mod consumer;
pub mod inbox;
pub mod outbox;
pub mod relay;
pub mod watch;

pub use consumer::{Consumed, EventConsumer, Handler, HandlerError};
pub use relay::Relay;
