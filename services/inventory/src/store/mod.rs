//! Inventory's tables and the queries on them.

pub mod products;
pub mod reservations;
