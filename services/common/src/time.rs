//! Conversions between database timestamps and protobuf `Timestamp`s.

use chrono::{DateTime, Utc};

pub fn to_proto(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        // Always below 2e9, so it fits.
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// Now, rounded to microseconds: what PostgreSQL stores, so a value read back equals the value
/// written on every backend.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// How long ago `at` was (zero if it lies in the future).
pub fn since(at: DateTime<Utc>) -> std::time::Duration {
    (now() - at).to_std().unwrap_or_default()
}

/// How long until `at` (zero if it has passed).
pub fn until(at: DateTime<Utc>) -> std::time::Duration {
    (at - now()).to_std().unwrap_or_default()
}
