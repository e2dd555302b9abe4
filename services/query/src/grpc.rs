//! The OrderViewService API: an order from the read model, EVENTUAL (at once, with how stale)
//! or STRICT (once the read model has caught up with what was published when the read began).

use std::time::Duration;

use orderly_common::{ApiError, auth::Caller, time::to_proto, validate};
use orderly_proto::{
    common::v1::Money,
    query::v1::{
        Consistency, GetOrderViewRequest, GetOrderViewResponse, OrderView, PauseProjectionRequest,
        Position, ProjectionState, RebuildReadModelRequest, ResumeProjectionRequest, Staleness,
        order_view_service_server::OrderViewService,
    },
};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::{
    generations,
    log::{End, Log},
    positions,
    projection::{Control, TOPICS},
    rebuild, views,
};

/// How often a STRICT read looks at the positions again while it waits, for a projection
/// running in another replica (this process's own wakes it at once).
const STRICT_RECHECK: Duration = Duration::from_millis(50);

pub struct QueryApi {
    pub db: DatabaseConnection,
    pub log: Log,
    pub control: Control,
    /// How long a STRICT read waits for the read model to catch up.
    pub strict_wait: Duration,
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl OrderViewService for QueryApi {
    async fn get_order_view(
        &self,
        request: Request<GetOrderViewRequest>,
    ) -> Reply<GetOrderViewResponse> {
        let order_id = validate::uuid("order_id", &request.get_ref().order_id)?;
        let consistency = match request.get_ref().consistency() {
            Consistency::Strict => Consistency::Strict,
            Consistency::Eventual | Consistency::Unspecified => Consistency::Eventual,
        };
        let staleness = if consistency == Consistency::Strict {
            self.caught_up().await?
        } else {
            self.staleness().await?
        };
        let generation = generations::current(&self.db)
            .await
            .map_err(ApiError::from)?;
        let view = views::find(&self.db, generation, order_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::not_found("order", order_id.to_string()))?;
        Caller::check_acts_for(&request, &view.customer_id)?;
        Ok(Response::new(GetOrderViewResponse {
            order: Some(view_message(view)),
            consistency: consistency.into(),
            staleness: Some(staleness),
        }))
    }

    async fn pause_projection(
        &self,
        _request: Request<PauseProjectionRequest>,
    ) -> Reply<ProjectionState> {
        self.control.set_paused(true);
        tracing::info!("projection paused");
        self.state().await
    }

    async fn resume_projection(
        &self,
        _request: Request<ResumeProjectionRequest>,
    ) -> Reply<ProjectionState> {
        self.control.set_paused(false);
        tracing::info!("projection resumed");
        self.state().await
    }

    type RebuildReadModelStream = rebuild::ProgressStream;

    async fn rebuild_read_model(
        &self,
        _request: Request<RebuildReadModelRequest>,
    ) -> Reply<Self::RebuildReadModelStream> {
        let building = rebuild::start(&self.db).await.map_err(ApiError::from)?;
        self.control.rebuild_asked();
        tracing::info!(generation = building.generation, "rebuild asked");
        Ok(Response::new(rebuild::progress(
            self.db.clone(),
            self.log.clone(),
            self.control.clone(),
            building,
        )))
    }
}

impl QueryApi {
    async fn state(&self) -> Reply<ProjectionState> {
        Ok(Response::new(ProjectionState {
            paused: self.control.is_paused(),
            staleness: Some(self.staleness().await?),
        }))
    }

    /// How far behind the topics the read model is now (the broker asked where they end).
    async fn staleness(&self) -> Result<Staleness, ApiError> {
        let ends = match self.log.ends(TOPICS).await {
            Ok(ends) => Some(ends),
            Err(error) => {
                tracing::debug!(%error, "topic ends unknown");
                None
            }
        };
        let stored = positions::current(&self.db).await?;
        Ok(staleness(ends.as_deref(), &stored))
    }

    /// Waits until the read model has applied everything published when it was called.
    async fn caught_up(&self) -> Result<Staleness, Status> {
        let ends = (self.log.ends(TOPICS).await)
            .map_err(|error| ApiError::Dependency(format!("broker: {error}")))?;
        let deadline = tokio::time::Instant::now() + self.strict_wait;
        let mut applied = self.control.applied();
        loop {
            let stored = positions::current(&self.db).await.map_err(ApiError::from)?;
            let staleness = staleness(Some(&ends), &stored);
            if staleness.events_behind == 0 {
                return Ok(staleness);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Status::deadline_exceeded(format!(
                    "the read model is still {} events behind after {:?}{}; read EVENTUAL, or \
                     again later",
                    staleness.events_behind,
                    self.strict_wait,
                    if self.control.is_paused() {
                        " (its projection is paused)"
                    } else {
                        ""
                    },
                )));
            }
            tokio::select! {
                _ = applied.changed() => {}
                () = tokio::time::sleep(STRICT_RECHECK) => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// The positions against the topics' ends (when known): events not applied yet, per partition
/// and in all, and the latest times.
fn staleness(ends: Option<&[End]>, stored: &[positions::Model]) -> Staleness {
    let next_of =
        |topic: &str, partition: i32| positions::next_offset(stored, topic, partition).unwrap_or(0);
    let positions: Vec<Position> = match ends {
        Some(ends) => (ends.iter())
            .map(|end| Position {
                topic: end.topic.clone(),
                partition: end.partition,
                next_offset: next_of(&end.topic, end.partition),
                end_offset: end.offset,
            })
            .collect(),
        None => (stored.iter())
            .map(|at| Position {
                topic: at.topic.clone(),
                partition: at.partition,
                next_offset: at.next_offset,
                end_offset: -1,
            })
            .collect(),
    };
    let events_behind = match ends {
        Some(_) => (positions.iter())
            .map(|at| (at.end_offset - at.next_offset).max(0))
            .sum(),
        None => -1,
    };
    Staleness {
        events_behind,
        last_event_at: stored
            .iter()
            .filter_map(|at| at.event_at)
            .max()
            .map(to_proto),
        last_applied_at: stored.iter().map(|at| at.applied_at).max().map(to_proto),
        positions,
    }
}

fn view_message(view: views::Model) -> OrderView {
    OrderView {
        order_id: view.order_id.to_string(),
        customer_id: view.customer_id,
        status: view.status,
        total: Some(Money {
            amount_minor: view.total_minor,
            currency: view.currency,
        }),
        reason: view.reason,
        inventory: view.inventory,
        payment: view.payment,
        placed_at: view.placed_at.map(to_proto),
        updated_at: Some(to_proto(view.updated_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(topic: &str, partition: i32, offset: i64) -> End {
        End {
            topic: topic.into(),
            partition,
            start: 0,
            offset,
        }
    }

    #[test]
    fn events_behind_count_every_partition_from_its_position_or_its_start() {
        let now = orderly_common::time::now();
        let stored = vec![positions::Model {
            generation: 1,
            topic: "a".into(),
            partition: 0,
            next_offset: 7,
            event_at: Some(now),
            applied_at: now,
        }];
        let ends = [end("a", 0, 10), end("a", 1, 4)];
        let staleness = staleness(Some(&ends), &stored);
        assert_eq!(staleness.events_behind, 3 + 4);
        assert_eq!(staleness.positions.len(), 2);
        assert_eq!(staleness.last_applied_at, Some(to_proto(now)));
        assert_eq!(super::staleness(None, &stored).events_behind, -1);
    }
}
