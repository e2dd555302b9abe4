//! Order's tables and the queries on them.

pub mod lines;
pub mod orders;
