//! The read model's lag as `orderly_consumer_lag{group="query"}`: events published but not yet
//! applied, per partition, sampled every few seconds by the replica that projects. The others
//! report nothing, so a sum over replicas counts each partition once.

use std::time::Duration;

use orderly_common::{Shutdown, lease::Lease, metrics};
use sea_orm::DatabaseConnection;

use crate::{log::Log, positions, projection::TOPICS};

const EVERY: Duration = Duration::from_secs(5);

pub async fn report(db: DatabaseConnection, log: Log, lease: Lease, shutdown: Shutdown) {
    loop {
        if lease.fence().is_some()
            && let (Ok(ends), Ok(stored)) = (log.ends(TOPICS).await, positions::current(&db).await)
        {
            for end in ends {
                let next = positions::next_offset(&stored, &end.topic, end.partition).unwrap_or(0);
                let lag = (end.offset - next).max(0);
                metrics::consumer_lag(crate::NAME, &end.topic, end.partition, lag);
            }
        }
        tokio::select! {
            () = shutdown.requested() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
