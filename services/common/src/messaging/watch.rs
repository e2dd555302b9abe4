//! Watchers that turn stuck work into metrics and health: a consumer group whose lag does not
//! move, an outbox whose oldest row waits too long. Each samples on its own, from the outside
//! (the broker's committed offsets, the outbox table), so a wedged consumer or relay cannot hide.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use rdkafka::TopicPartitionList;
use sea_orm::DatabaseConnection;
use tokio::{sync::Notify, time::Instant};

use super::{Relay, outbox};
use crate::{
    Shutdown,
    health::Health,
    kafka::{Member, lag},
    lease::Lease,
};

/// How often watchers sample: often enough to notice `stuck_after` within a quarter of it.
pub fn sample_interval(stuck_after: Duration) -> Duration {
    (stuck_after / 4).clamp(Duration::from_millis(250), Duration::from_secs(5))
}

/// A consumer group member to watch, and how to tell its consumer to rejoin.
pub struct Watched {
    pub group: &'static str,
    /// Which partitions of the group's topics this replica holds, and the consumer through
    /// which the watcher asks the broker about them.
    pub member: Member,
    pub rejoin: Arc<Notify>,
}

/// Samples the group's lag on the partitions this replica holds into `orderly_consumer_lag`
/// (zero for partitions it no longer holds: another replica reports them now), and reports the
/// member faulty while one of them has lag and neither its committed offset nor the offset its
/// consumer has taken up to has moved for `stuck_after`. A stuck member's consumer is told to
/// rejoin, at most once per `stuck_after`. A member that takes messages, however slowly (on a
/// starved machine, fetches answered seconds apart), is behind but not stuck: rejoining would
/// only hand the events it is applying to another member a second time.
pub async fn consumer_lag(
    watched: Watched,
    health: Health,
    stuck_after: Duration,
    shutdown: Shutdown,
) {
    let Watched {
        group,
        member,
        rejoin,
    } = watched;
    let source = format!("consumer {group}");
    let mut last_rejoin: Option<Instant> = None;
    let mut progress = PartitionProgress::default();
    let mut reported: HashSet<(String, i32)> = HashSet::new();
    let mut last_sample = Instant::now();
    loop {
        let held = member.held().unwrap_or_default();
        let mut partitions = TopicPartitionList::new();
        for (topic, partition) in held.keys() {
            partitions.add_partition(topic, *partition);
        }
        let sampler = member.clone();
        let sampled = tokio::task::spawn_blocking(move || {
            // Asked through the member's own consumer rather than a Kafka client of the
            // watcher's own (its threads, timers and connections, for each group): the
            // broker's committed offsets and watermarks are the same whoever asks, so a
            // consumer whose work stalls still cannot hide it.
            let lags =
                sampler.ask(|consumer| lag::lags_of(consumer, partitions, Duration::from_secs(5)));
            // No consumer, between a leave and a join: it holds nothing.
            lags.unwrap_or(Ok(Vec::new()))
        })
        .await;
        let fault = match sampled {
            Ok(Ok(lags)) => {
                last_sample = Instant::now();
                for partition in &lags {
                    crate::metrics::consumer_lag(
                        group,
                        &partition.topic,
                        partition.partition,
                        partition.lag,
                    );
                }
                for (topic, partition) in reported.iter().filter(|key| !held.contains_key(*key)) {
                    crate::metrics::consumer_lag(group, topic, *partition, 0);
                }
                reported = held.keys().cloned().collect();
                // Read after the sample, which can take seconds on a loaded machine: a message
                // taken meanwhile counts.
                let positions = member.held().unwrap_or_default();
                let stuck = progress.stuck(&lags, &positions, stuck_after);
                if stuck.is_some() && last_rejoin.is_none_or(|at| at.elapsed() > stuck_after) {
                    last_rejoin = Some(Instant::now());
                    rejoin.notify_one();
                }
                stuck
            }
            Ok(Err(error)) => (last_sample.elapsed() > stuck_after).then(|| {
                format!(
                    "cannot read lag from kafka for {:?}: {error}",
                    last_sample.elapsed()
                )
            }),
            Err(_) => None,
        };
        health.report(&source, fault).await;
        tokio::select! {
            () = shutdown.requested() => return,
            () = tokio::time::sleep(sample_interval(stuck_after)) => {}
        }
    }
}

/// Since when each partition's committed offset, and the offset its consumer has taken up to,
/// have stood still.
#[derive(Default)]
struct PartitionProgress {
    since: HashMap<(String, i32), (Mark, Instant)>,
}

/// Where a partition stands: committed, and taken by this member's consumer.
type Mark = (i64, Option<i64>);

impl PartitionProgress {
    /// Describes the partitions with lag whose committed offset and consumer position (in
    /// `positions`) have not moved for `bound`. Partitions not in `lags` are forgotten: held
    /// again later, their clock starts afresh.
    fn stuck(
        &mut self,
        lags: &[lag::PartitionLag],
        positions: &HashMap<(String, i32), Option<i64>>,
        bound: Duration,
    ) -> Option<String> {
        let now = Instant::now();
        self.since.retain(|(topic, partition), _| {
            lags.iter()
                .any(|lag| lag.topic == *topic && lag.partition == *partition)
        });
        let mut stuck = Vec::new();
        for partition in lags {
            let key = (partition.topic.clone(), partition.partition);
            if partition.lag == 0 {
                // The clock starts at the first sample that sees lag, not the last without.
                self.since.remove(&key);
                continue;
            }
            let mark = (partition.committed, positions.get(&key).copied().flatten());
            let entry = self.since.entry(key).or_insert((mark, now));
            if entry.0 != mark {
                *entry = (mark, now);
            } else if now.duration_since(entry.1) > bound {
                stuck.push(format!(
                    "{}[{}] has {} uncommitted messages and has neither committed nor taken any for {:?}",
                    partition.topic,
                    partition.partition,
                    partition.lag,
                    now.duration_since(entry.1)
                ));
            }
        }
        (!stuck.is_empty()).then(|| stuck.join("; "))
    }
}

/// A component's outbox, and the lease of the replica that publishes it.
pub struct Outbox {
    pub component: &'static str,
    pub db: DatabaseConnection,
    pub publisher: Lease,
    /// Knows the rows it published that wait to be deleted: they are not backlog.
    pub relay: Relay,
}

/// Samples the outbox backlog into `orderly_outbox_backlog`, and reports the outbox faulty while
/// its oldest row has waited longer than `stuck_after` (or the database cannot be read as long).
/// Only the replica that publishes the outbox (the holder of its lease) does: the backlog is
/// shared, so the others report none and sums over replicas count it once, and only the
/// replica whose relay is stuck reports it.
pub async fn outbox(watched: Outbox, health: Health, stuck_after: Duration, shutdown: Shutdown) {
    let Outbox {
        component,
        db,
        mut publisher,
        relay,
    } = watched;
    let mut last_read = Instant::now();
    loop {
        if publisher.fence().is_none() {
            crate::metrics::outbox_backlog(component, 0);
            health.report("outbox", None).await;
            last_read = Instant::now();
            tokio::select! {
                () = shutdown.requested() => return,
                () = publisher.changed() => continue,
            }
        }
        // Counted before the rows: a delete in between then shows less backlog, never more.
        let published = relay.published_not_deleted();
        let fault = match outbox::standing(&db).await {
            Ok((rows, oldest)) => {
                last_read = Instant::now();
                let backlog = rows.saturating_sub(published);
                crate::metrics::outbox_backlog(component, backlog);
                let waited = oldest.map(crate::time::since).unwrap_or_default();
                (waited > stuck_after)
                    .then(|| format!("{backlog} events unpublished, the oldest for {waited:?}"))
            }
            Err(error) => (last_read.elapsed() > stuck_after).then(|| {
                format!(
                    "cannot read the outbox for {:?}: {error}",
                    last_read.elapsed()
                )
            }),
        };
        health.report("outbox", fault).await;
        tokio::select! {
            () = shutdown.requested() => return,
            () = tokio::time::sleep(sample_interval(stuck_after)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(committed: i64, lag: i64) -> Vec<lag::PartitionLag> {
        vec![lag::PartitionLag {
            topic: "orders".into(),
            partition: 0,
            committed,
            lag,
        }]
    }

    /// The consumer has taken the partition up to `position`.
    fn taken(position: i64) -> HashMap<(String, i32), Option<i64>> {
        HashMap::from([(("orders".into(), 0), Some(position))])
    }

    #[tokio::test(start_paused = true)]
    async fn only_lag_that_does_not_move_is_stuck() {
        let bound = Duration::from_secs(10);
        let mut progress = PartitionProgress::default();
        assert_eq!(progress.stuck(&partition(5, 3), &taken(5), bound), None);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(progress.stuck(&partition(5, 3), &taken(5), bound).is_some());
        // It moved: not stuck, and the clock starts again.
        assert_eq!(progress.stuck(&partition(6, 2), &taken(6), bound), None);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(progress.stuck(&partition(6, 2), &taken(6), bound), None);
        // No lag is never stuck, however long the offset stands still.
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(progress.stuck(&partition(8, 0), &taken(8), bound), None);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(progress.stuck(&partition(8, 0), &taken(8), bound), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_starts_when_lag_is_first_seen() {
        let bound = Duration::from_secs(10);
        let mut progress = PartitionProgress::default();
        assert_eq!(progress.stuck(&partition(5, 0), &taken(5), bound), None);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(progress.stuck(&partition(5, 3), &taken(5), bound), None);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(progress.stuck(&partition(5, 3), &taken(5), bound), None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(progress.stuck(&partition(5, 3), &taken(5), bound).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_consumer_taking_messages_slowly_is_behind_not_stuck() {
        let bound = Duration::from_secs(10);
        let mut progress = PartitionProgress::default();
        assert_eq!(progress.stuck(&partition(5, 30), &taken(5), bound), None);
        // Nothing committed for 16 s, but a fetch every 8 s hands it more.
        tokio::time::advance(Duration::from_secs(8)).await;
        assert_eq!(progress.stuck(&partition(5, 30), &taken(9), bound), None);
        tokio::time::advance(Duration::from_secs(8)).await;
        assert_eq!(progress.stuck(&partition(5, 30), &taken(14), bound), None);
        // Then it takes nothing more: stuck once the bound has passed.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(
            progress
                .stuck(&partition(5, 30), &taken(14), bound)
                .is_some()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_partition_held_again_starts_its_clock_afresh() {
        let bound = Duration::from_secs(10);
        let mut progress = PartitionProgress::default();
        assert_eq!(progress.stuck(&partition(5, 3), &taken(5), bound), None);
        // Another replica holds it for a while, without committing anything.
        assert_eq!(progress.stuck(&[], &HashMap::new(), bound), None);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(progress.stuck(&partition(5, 3), &taken(5), bound), None);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(progress.stuck(&partition(5, 3), &taken(5), bound).is_some());
    }
}
