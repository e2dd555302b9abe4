//! Notification's table and the queries on it.

pub mod notifications;
