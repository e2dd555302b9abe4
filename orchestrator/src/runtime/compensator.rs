//! Runs the compensations the core asked for (steps in STEP_COMPENSATING) through the
//! participants' idempotent RPCs: refund for payment, release for inventory. Each is retried
//! with exponential backoff until it succeeds; after `max_compensation_attempts` failures the
//! saga is parked, visibly, for an operator. Pending compensations are read from the database,
//! so they resume after a restart.

use std::{collections::HashMap, sync::Arc, time::Duration};

use metrics::counter;
use orderly_common::{
    Shutdown, grpc::Client, messaging::Relay, metrics as names, telemetry::propagation,
};
use orderly_proto::{
    inventory::v1::{ReleaseReservationRequest, inventory_service_client::InventoryServiceClient},
    payment::v1::{RefundPaymentRequest, payment_service_client::PaymentServiceClient},
};
use sea_orm::{
    DatabaseConnection, DbErr, TransactionTrait,
    entity::prelude::*,
    sea_query::{Expr, ExprTrait},
};
use tokio::{sync::Notify, time::Instant};
use tonic::Code;
use tracing::Instrument;

use super::{Meta, Settings, apply::apply, mapping};
use crate::{
    core::{self, Phase, Step, StepKind},
    store::{sagas, steps},
};

/// How often open compensations (retrying, or waiting on a circuit breaker) are looked at.
const TICK: Duration = Duration::from_millis(200);
/// With none open the compensator sleeps until woken; this catches steps another process
/// opened.
const IDLE_TICK: Duration = Duration::from_secs(10);

pub struct Compensator {
    pub db: DatabaseConnection,
    pub relay: Relay,
    pub inventory: Client,
    pub payment: Client,
    pub settings: Settings,
}

impl Compensator {
    pub async fn run(self, wake: Arc<Notify>, shutdown: Shutdown) {
        // When each failing compensation may be tried again (in memory: after a restart every
        // open compensation is simply tried at once).
        let mut not_before: HashMap<(Uuid, StepKind), Instant> = HashMap::new();
        loop {
            let tick = match self.round(&mut not_before).await {
                Ok(0) => IDLE_TICK,
                Ok(_) => TICK,
                Err(error) => {
                    tracing::warn!(%error, "compensation round failed");
                    TICK
                }
            };
            tokio::select! {
                () = shutdown.requested() => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// Attempts every open compensation that is due; returns how many are open (parked sagas'
    /// wait for an operator, who wakes the compensator, and do not count).
    async fn round(
        &self,
        not_before: &mut HashMap<(Uuid, StepKind), Instant>,
    ) -> Result<usize, DbErr> {
        let open = steps::Entity::find()
            .filter(steps::Column::Status.eq(mapping::step_name(Step::Compensating)))
            .all(&self.db)
            .await?;
        let mut count = 0;
        for step in open {
            let Some(kind) = StepKind::from_name(&step.name) else {
                continue;
            };
            let key = (step.order_id, kind);
            if not_before.get(&key).is_some_and(|at| Instant::now() < *at) {
                count += 1; // backing off: tried again at a later tick
                continue;
            }
            let Some(saga) = sagas::Entity::find_by_id(step.order_id)
                .one(&self.db)
                .await?
            else {
                continue;
            };
            if saga.state == mapping::phase_name(Phase::Parked) {
                continue; // waits for an operator
            }
            count += 1;
            if self.client(kind).failing_fast() {
                // The participant keeps failing and calls are refused for now: waiting is not
                // an attempt, or every saga would park without the participant ever being asked.
                continue;
            }
            let span = tracing::info_span!(
                "saga.compensate",
                otel.name = %format_args!("compensate {}", kind.name()),
                component = crate::NAME,
                order_id = %step.order_id,
                step = kind.name(),
                trace_id = tracing::field::Empty,
            );
            propagation::adopt_parent(&span, propagation::traceparent_parent(&saga.trace_parent));
            self.attempt(kind, &step, &saga, not_before)
                .instrument(span)
                .await?;
        }
        Ok(count)
    }

    /// One attempt at one compensation, recorded in the saga (done, or parked when it keeps
    /// failing) or scheduled again with backoff.
    async fn attempt(
        &self,
        kind: StepKind,
        step: &steps::Model,
        saga: &sagas::Model,
        not_before: &mut HashMap<(Uuid, StepKind), Instant>,
    ) -> Result<(), DbErr> {
        let key = (step.order_id, kind);
        match self.compensate(kind, step.order_id, &saga.reason).await {
            Ok(detail) => {
                orderly_common::crash_point!("compensator.after_rpc");
                not_before.remove(&key);
                counter!(names::COMPENSATION_ATTEMPTS, "step" => kind.name(), "result" => "ok")
                    .increment(1);
                self.record(step.order_id, core::Event::Compensated(kind), detail)
                    .await?;
                counter!(names::COMPENSATIONS, "step" => kind.name()).increment(1);
            }
            Err(error) => {
                counter!(names::COMPENSATION_ATTEMPTS, "step" => kind.name(), "result" => "failed")
                    .increment(1);
                let attempts = self.count_failure(step, &error).await?;
                tracing::warn!(order_id = %step.order_id, step = kind.name(), attempts, %error, "compensation failed");
                if attempts >= self.settings.max_compensation_attempts {
                    not_before.remove(&key);
                    let failing = core::Event::CompensationFailing {
                        step: kind,
                        reason: error.clone(),
                    };
                    self.record(
                        step.order_id,
                        failing,
                        format!("parked after {attempts} attempts: {error}"),
                    )
                    .await?;
                    counter!(names::SAGAS_PARKED).increment(1);
                } else {
                    not_before.insert(key, Instant::now() + backoff(attempts));
                }
            }
        }
        Ok(())
    }

    fn client(&self, kind: StepKind) -> &Client {
        match kind {
            StepKind::Payment => &self.payment,
            StepKind::Inventory => &self.inventory,
        }
    }

    /// Calls the participant's compensation RPC; both are idempotent, so retries are safe.
    async fn compensate(
        &self,
        kind: StepKind,
        order_id: Uuid,
        reason: &str,
    ) -> Result<String, String> {
        let (order_id, reason) = (order_id.to_string(), reason.to_owned());
        let answer = match kind {
            StepKind::Payment => {
                self.payment
                    .idempotent(
                        "orderly.payment.v1.PaymentService/RefundPayment",
                        |channel| {
                            let request = RefundPaymentRequest {
                                order_id: order_id.clone(),
                                reason: reason.clone(),
                            };
                            async move {
                                PaymentServiceClient::new(channel)
                                    .refund_payment(request)
                                    .await
                                    .map(drop)
                            }
                        },
                    )
                    .await
            }
            StepKind::Inventory => {
                self.inventory
                    .idempotent(
                        "orderly.inventory.v1.InventoryService/ReleaseReservation",
                        |channel| {
                            let request = ReleaseReservationRequest {
                                order_id: order_id.clone(),
                                reason: reason.clone(),
                            };
                            async move {
                                InventoryServiceClient::new(channel)
                                    .release_reservation(request)
                                    .await
                                    .map(drop)
                            }
                        },
                    )
                    .await
            }
        };
        match answer {
            Ok(()) => Ok(format!("{} compensated", kind.name())),
            // Nothing was held there: nothing to give back.
            Err(status) if status.code() == Code::NotFound => {
                Ok(format!("{} had nothing to compensate", kind.name()))
            }
            Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
        }
    }

    async fn record(&self, order_id: Uuid, event: core::Event, note: String) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        let event_type = match &event {
            core::Event::Compensated(_) => "Compensated",
            _ => "CompensationFailing",
        };
        let meta = Meta {
            event_id: String::new(),
            event_type: event_type.into(),
            note,
        };
        apply(&txn, order_id, event, meta, None, self.settings.deadline).await?;
        txn.commit().await?;
        self.relay.wake();
        Ok(())
    }

    async fn count_failure(&self, step: &steps::Model, error: &str) -> Result<u32, DbErr> {
        steps::Entity::update_many()
            .col_expr(
                steps::Column::Attempts,
                Expr::col(steps::Column::Attempts).add(1),
            )
            .col_expr(steps::Column::Detail, Expr::value(error))
            .filter(steps::Column::OrderId.eq(step.order_id))
            .filter(steps::Column::Name.eq(&step.name))
            .exec(&self.db)
            .await?;
        Ok(u32::try_from(step.attempts + 1).unwrap_or(u32::MAX))
    }
}

/// 100 ms, 200 ms, 400 ms, ... capped at 10 s.
fn backoff(attempts: u32) -> Duration {
    let doublings = Ord::min(attempts, 7);
    Ord::min(
        Duration::from_millis(100 << doublings),
        Duration::from_secs(10),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(30), Duration::from_secs(10));
    }
}
