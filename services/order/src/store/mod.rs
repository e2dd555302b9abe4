//! Order's tables and the queries on them.

pub mod accounts;
pub mod catalogue;
pub mod lines;
pub mod orders;
