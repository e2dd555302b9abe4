//! RebuildReadModel's side: starting a rebuild (the projecting replica does the work, see
//! `projection`) and following it, as a stream of progress read from the database, so any
//! replica can answer it, until the rebuilt generation is the one reads use.

use std::{pin::Pin, time::Duration};

use futures::Stream;
use orderly_common::{ApiError, time::to_proto};
use orderly_proto::query::v1::RebuildProgress;
use sea_orm::{DatabaseConnection, DbErr};
use tonic::Status;

use crate::{
    generations,
    log::{End, Log},
    positions,
    projection::{Control, TOPICS},
};

/// How often progress is sent.
const EVERY: Duration = Duration::from_millis(500);

pub type ProgressStream = Pin<Box<dyn Stream<Item = Result<RebuildProgress, Status>> + Send>>;

/// Starts a rebuild, or finds the one under way.
pub async fn start(db: &DatabaseConnection) -> Result<generations::Model, DbErr> {
    match generations::start_rebuild(db).await {
        Ok(building) => Ok(building),
        // Another replica started one at the same moment: follow that one.
        Err(first) => generations::building(db).await?.ok_or(first),
    }
}

/// The rebuild of `building` as it goes: a message every [`EVERY`], the last one when reads
/// use it.
pub fn progress(
    db: DatabaseConnection,
    log: Log,
    control: Control,
    building: generations::Model,
) -> ProgressStream {
    let follow = Follow {
        db,
        log,
        control,
        building,
        done: false,
    };
    Box::pin(futures::stream::unfold(follow, |mut follow| async move {
        if follow.done {
            return None;
        }
        let progress = follow.next().await;
        follow.done = !matches!(&progress, Ok(progress) if !progress.switched);
        Some((progress, follow))
    }))
}

struct Follow {
    db: DatabaseConnection,
    log: Log,
    control: Control,
    building: generations::Model,
    done: bool,
}

impl Follow {
    /// The next message: at once the first time, then after [`EVERY`] (longer while the broker
    /// cannot be asked).
    async fn next(&mut self) -> Result<RebuildProgress, Status> {
        let mut wait = Duration::ZERO;
        loop {
            tokio::time::sleep(wait).await;
            wait = EVERY;
            let generation = self.building.generation;
            let model = generations::find(&self.db, generation)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| ApiError::not_found("generation", generation.to_string()))?;
            let ends = match self.log.ends(TOPICS).await {
                Ok(ends) => ends,
                Err(error) => {
                    tracing::debug!(%error, "topic ends unknown");
                    continue;
                }
            };
            let stored = positions::all(&self.db, generation)
                .await
                .map_err(ApiError::from)?;
            // Retired means a later rebuild replaced it: it was switched to before that.
            let switched = !generations::is_building(&model);
            return Ok(RebuildProgress {
                generation,
                started_at: Some(to_proto(model.started_at)),
                paused: self.control.is_paused(),
                switched,
                ..count(&ends, &stored)
            });
        }
    }
}

/// Events applied of those the log holds, and those retention deleted, per partition summed.
fn count(ends: &[End], stored: &[positions::Model]) -> RebuildProgress {
    let mut progress = RebuildProgress::default();
    for end in ends {
        let next = positions::next_offset(stored, &end.topic, end.partition).unwrap_or(end.start);
        progress.events_total += end.offset - end.start;
        progress.events_applied += (next.clamp(end.start, end.offset)) - end.start;
        progress.events_lost_to_retention += end.start;
    }
    progress
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_from_where_each_partition_starts_now() {
        let now = orderly_common::time::now();
        let end = |partition, start, offset| End {
            topic: "t".into(),
            partition,
            start,
            offset,
        };
        let at = |partition, next_offset| positions::Model {
            generation: 2,
            topic: "t".into(),
            partition,
            next_offset,
            event_at: None,
            applied_at: now,
        };
        // Partition 0 lost 5 events to retention and is applied to 8 of 5..10; partition 1 is
        // untouched; partition 2 was applied past the end asked a moment before.
        let ends = [end(0, 5, 10), end(1, 0, 4), end(2, 0, 3)];
        let progress = count(&ends, &[at(0, 8), at(2, 4)]);
        assert_eq!(progress.events_total, 5 + 4 + 3);
        assert_eq!(progress.events_applied, 3 + 3);
        assert_eq!(progress.events_lost_to_retention, 5);
    }
}
