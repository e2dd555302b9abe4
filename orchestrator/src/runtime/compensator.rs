//! Runs the compensations the core asked for (steps in STEP_COMPENSATING) through the
//! participants' idempotent RPCs their saga definition declares. Each is retried with
//! exponential backoff (the step's retry policy) until it succeeds; after the policy's attempts
//! the saga is parked, visibly, for an operator. The core opens compensations one at a time, in
//! reverse step order (only a late success is undone alongside), so running whatever is open
//! keeps that order. Pending compensations are read from the database, so they resume after a
//! restart.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use futures::{StreamExt, stream};

use metrics::counter;
use orderly_common::{
    Shutdown,
    lease::{Fence, Lease},
    messaging::Relay,
    metrics as names,
    telemetry::propagation,
};
use orderly_saga::{Definition, StepIndex};
use sea_orm::{DbErr, entity::prelude::*};
use tokio::{sync::Notify, time::Instant};
use tonic::Code;
use tracing::Instrument;

use super::{Meta, Settings, apply::apply, mapping, participants::CompensationCalls};
use crate::{
    core::{self, Phase},
    store::{Store, Tables, sagas, steps},
};

/// How often open compensations (retrying, or waiting on a circuit breaker) are looked at. With
/// none open, the compensator sleeps until woken or `Settings::recheck` has passed.
const TICK: Duration = Duration::from_millis(200);

pub struct Compensator<S, P> {
    pub db: S,
    pub relay: Relay,
    pub participants: P,
    pub settings: Settings,
}

/// When each failing compensation (order, step name) may be tried again; shared by the orders
/// a round rolls back at once (the lock is never held across an await).
#[derive(Default)]
pub struct NotBefore(Mutex<HashMap<(Uuid, String), Instant>>);

impl NotBefore {
    fn entries(&self) -> MutexGuard<'_, HashMap<(Uuid, String), Instant>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn backing_off(&self, key: &(Uuid, String)) -> bool {
        self.entries()
            .get(key)
            .is_some_and(|at| Instant::now() < *at)
    }

    fn retry_at(&self, key: (Uuid, String), at: Instant) {
        self.entries().insert(key, at);
    }

    fn clear(&self, key: &(Uuid, String)) {
        self.entries().remove(key);
    }
}

/// One open compensation, with what its definition says about it.
struct Open<'a> {
    row: &'a steps::Model,
    saga: &'a sagas::Model,
    definition: &'a Definition,
    step: StepIndex,
}

impl Open<'_> {
    fn name(&self) -> &str {
        &self.definition.steps()[self.step].name
    }

    fn participant(&self) -> &str {
        &self.definition.steps()[self.step].participant
    }
}

impl<S: Store, P: CompensationCalls> Compensator<S, P> {
    /// Runs compensations while this replica holds `lease` (the one the deadline timer runs
    /// under), until `shutdown`.
    pub async fn run(self, wake: Arc<Notify>, mut lease: Lease, shutdown: Shutdown) {
        // When each failing compensation may be tried again (in memory: after a restart, or a
        // takeover, every open compensation is simply tried at once).
        let not_before = NotBefore::default();
        loop {
            let tick = match lease.fence() {
                None => Duration::MAX, // another replica runs them
                Some(fence) => match self.round(&not_before, &fence).await {
                    Ok(0) => self.settings.recheck,
                    Ok(_) => TICK,
                    Err(error) => {
                        tracing::warn!(%error, "compensation round failed");
                        TICK
                    }
                },
            };
            tokio::select! {
                () = shutdown.requested() => return,
                () = lease.changed() => {}
                () = wake.notified() => {}
                () = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// Attempts every open compensation that is due, several orders at once and each order's
    /// in the order the core opened them; returns how many are open (parked sagas' wait for an
    /// operator, who wakes the compensator, and do not count).
    async fn round(&self, not_before: &NotBefore, fence: &Fence) -> Result<usize, DbErr> {
        let open = self.db.compensating().await?;
        // Oldest order first (ids are UUIDv7) when more are open than run at once.
        let mut by_order: BTreeMap<Uuid, Vec<steps::Model>> = BTreeMap::new();
        for row in open {
            by_order.entry(row.order_id).or_default().push(row);
        }
        // Every order's attempt runs to its end (none is dropped halfway when another fails).
        let counted: Vec<Result<usize, DbErr>> = stream::iter(by_order.into_values())
            .map(|rows| self.roll_back(rows, not_before, fence))
            // Several orders at once (`Settings::compensations_at_once`): each compensation waits on
            // a participant (which asks this orchestrator whether the saga rolls back) and on a
            // commit; taken one at a time, a burst of rejected orders queues behind that trip.
            .buffer_unordered(self.settings.compensations_at_once)
            .collect()
            .await;
        counted.into_iter().sum()
    }

    /// Attempts one order's open compensations that are due, in turn; returns how many are open.
    async fn roll_back(
        &self,
        rows: Vec<steps::Model>,
        not_before: &NotBefore,
        fence: &Fence,
    ) -> Result<usize, DbErr> {
        let mut count = 0;
        for row in rows {
            if not_before.backing_off(&(row.order_id, row.name.clone())) {
                count += 1; // tried again at a later tick
                continue;
            }
            count += usize::from(self.try_now(&row, not_before, fence).await?);
        }
        Ok(count)
    }

    /// Tries the open compensation `row` now, unless its saga is parked (it waits for an
    /// operator), its definition version is unknown here or its participant is failing fast;
    /// returns whether it is still work for a later round. What it records is fenced.
    pub async fn try_now(
        &self,
        row: &steps::Model,
        not_before: &NotBefore,
        fence: &Fence,
    ) -> Result<bool, DbErr> {
        let Some(saga) = self.db.saga(row.order_id).await? else {
            return Ok(false);
        };
        if saga.state == mapping::phase_name(Phase::Parked) {
            return Ok(false);
        }
        let definition = match self.settings.definition(&saga) {
            Ok(definition) => definition,
            Err(error) => {
                // Left for a build that knows its version; the others still run.
                tracing::warn!(order_id = %row.order_id, %error, "compensation not run");
                return Ok(true);
            }
        };
        let Some(step) = definition.index_of(&row.name) else {
            return Ok(false); // not a step of its saga's definition: nothing to run
        };
        let open = Open {
            row,
            saga: &saga,
            definition: &definition,
            step,
        };
        if self.participants.failing_fast(open.participant()) {
            // The participant keeps failing and calls are refused for now: waiting is not
            // an attempt, or every saga would park without the participant ever being asked.
            return Ok(true);
        }
        let span = tracing::info_span!(
            "saga.compensate",
            otel.name = %format_args!("compensate {}", open.name()),
            component = crate::NAME,
            order_id = %row.order_id,
            step = open.name(),
            trace_id = tracing::field::Empty,
        );
        propagation::adopt_parent(&span, propagation::traceparent_parent(&saga.trace_parent));
        self.attempt(&open, not_before, fence)
            .instrument(span)
            .await?;
        Ok(true)
    }

    /// One attempt at one compensation, recorded in the saga (done, or parked when it keeps
    /// failing) or scheduled again with backoff.
    async fn attempt(
        &self,
        open: &Open<'_>,
        not_before: &NotBefore,
        fence: &Fence,
    ) -> Result<(), DbErr> {
        let (order_id, step, name) = (open.row.order_id, open.step, open.name().to_owned());
        let key = (order_id, name.clone());
        match self.compensate(open).await {
            Ok(detail) => {
                orderly_common::crash_point!("compensator.after_rpc");
                not_before.clear(&key);
                counter!(names::COMPENSATION_ATTEMPTS, "step" => name.clone(), "result" => "ok")
                    .increment(1);
                self.record(order_id, core::Event::Compensated(step), detail, fence)
                    .await?;
                counter!(names::COMPENSATIONS, "step" => name).increment(1);
            }
            Err(error) => {
                counter!(names::COMPENSATION_ATTEMPTS, "step" => name.clone(), "result" => "failed")
                    .increment(1);
                let attempts = self.count_failure(open.row, &error, fence).await?;
                tracing::warn!(order_id = %order_id, step = name, attempts, %error, "compensation failed");
                let policy = self.settings.retry(open.definition, step);
                if attempts >= policy.max_attempts {
                    not_before.clear(&key);
                    let failing = core::Event::CompensationFailing {
                        step,
                        reason: error.clone(),
                    };
                    self.record(
                        order_id,
                        failing,
                        format!("parked after {attempts} attempts: {error}"),
                        fence,
                    )
                    .await?;
                    counter!(names::SAGAS_PARKED).increment(1);
                } else {
                    not_before.retry_at(key, Instant::now() + policy.backoff(attempts));
                }
            }
        }
        Ok(())
    }

    /// Calls the step's compensation RPC (idempotent, so retries are safe).
    async fn compensate(&self, open: &Open<'_>) -> Result<String, String> {
        let name = open.name();
        let Some(compensation) = &open.definition.steps()[open.step].compensation else {
            // The core never compensates a step its definition cannot undo.
            return Err(format!("{name} has no compensation"));
        };
        let order_id = open.row.order_id.to_string();
        let answer = self
            .participants
            .compensate(
                open.participant(),
                compensation,
                &order_id,
                &open.saga.reason,
            )
            .await;
        match answer {
            Ok(()) => Ok(format!("{name} compensated")),
            // Nothing was held there: nothing to give back.
            Err(status) if status.code() == Code::NotFound => {
                Ok(format!("{name} had nothing to compensate"))
            }
            Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
        }
    }

    async fn record(
        &self,
        order_id: Uuid,
        event: core::Event,
        note: String,
        fence: &Fence,
    ) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        txn.fence(fence).await?;
        let event_type = match &event {
            core::Event::Compensated(_) => "Compensated",
            _ => "CompensationFailing",
        };
        let meta = Meta {
            event_id: String::new(),
            event_type: event_type.into(),
            note,
        };
        apply(&txn, order_id, |_| Some(event), meta, None, &self.settings).await?;
        S::commit(txn).await?;
        self.relay.wake();
        Ok(())
    }

    /// Counts a failed attempt; returns how many there have been, as stored.
    async fn count_failure(
        &self,
        step: &steps::Model,
        error: &str,
        fence: &Fence,
    ) -> Result<u32, DbErr> {
        let txn = self.db.begin().await?;
        txn.fence(fence).await?;
        txn.count_failure(step.order_id, &step.name, error).await?;
        let counted = txn.step(step.order_id, &step.name).await?;
        S::commit(txn).await?;
        let attempts = counted.map_or(step.attempts + 1, |row| row.attempts);
        Ok(u32::try_from(attempts).unwrap_or(u32::MAX))
    }
}
