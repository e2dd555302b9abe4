//! Payment's tables and the queries on them.

pub mod accounts;
pub mod ledger;
pub mod payments;
