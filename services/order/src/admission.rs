//! Overload handled at the door. PlaceOrder answers at once and the saga decides later, so
//! without a check a burst beyond what the system can decide piles up PENDING orders that wait
//! past their saga deadline and are rejected after all. Admission estimates how long the orders
//! already waiting will take to be decided (how many wait, over the rate at which orders are
//! being decided) and, while that exceeds a bound, refuses new ones with RESOURCE_EXHAUSTED and a
//! hint of when to retry. The figures come from the database, so every replica sees every
//! order; they are sampled once a second while orders wait, and not at all when none do.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use orderly_common::{ApiError, Shutdown};
use sea_orm::DatabaseConnection;
use tokio::{sync::Notify, time::Instant};

use crate::store::orders;

const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// How much waiting work admission lets in.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The longest the waiting orders may take to be decided; zero turns admission off.
    pub max_wait: Duration,
    /// Orders that may always wait, whatever the measured rate (a cold start has none).
    pub floor: u64,
}

/// Admission control for PlaceOrder, shared by the API and its sampler.
#[derive(Clone)]
pub struct Admission {
    backlog: Arc<Mutex<Backlog>>,
    placed: Arc<Notify>,
    limits: Limits,
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        Self {
            backlog: Arc::default(),
            placed: Arc::default(),
            limits,
        }
    }

    /// Refuses a new order while the ones waiting would not be decided within the bound.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.limits.max_wait.is_zero() {
            return Ok(());
        }
        self.lock().admit(&self.limits)
    }

    /// Counts an order this process just stored.
    pub fn placed(&self) {
        self.lock().placed_since += 1;
        self.placed.notify_one();
    }

    /// Samples the PENDING orders once a second while there are any, until `shutdown`.
    pub async fn sample(self, db: DatabaseConnection, shutdown: Shutdown) {
        if self.limits.max_wait.is_zero() {
            return;
        }
        let mut last = Instant::now();
        loop {
            if self.lock().is_idle() {
                tokio::select! {
                    () = self.placed.notified() => {}
                    () = shutdown.requested() => return,
                }
            }
            tokio::select! {
                () = tokio::time::sleep(SAMPLE_EVERY) => {}
                () = shutdown.requested() => return,
            }
            match orders::count_pending(&db).await {
                Ok(waiting) => self.lock().sampled(waiting, last.elapsed()),
                Err(error) => tracing::warn!(%error, "cannot count pending orders"),
            }
            last = Instant::now();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What admission knows: the orders waiting at the last sample, those placed here since, and
/// how fast orders are being decided.
#[derive(Debug, Default)]
struct Backlog {
    waiting: u64,
    placed_since: u64,
    /// Decisions per second, smoothed over samples.
    rate: f64,
}

impl Backlog {
    fn is_idle(&self) -> bool {
        self.waiting == 0 && self.placed_since == 0
    }

    /// A new count of waiting orders, `elapsed` after the previous one.
    fn sampled(&mut self, waiting: u64, elapsed: Duration) {
        let decided = (self.waiting + self.placed_since).saturating_sub(waiting);
        let observed = decided as f64 / elapsed.as_secs_f64().max(0.001);
        self.rate = 0.5 * self.rate + 0.5 * observed;
        self.waiting = waiting;
        self.placed_since = 0;
    }

    fn admit(&self, limits: &Limits) -> Result<(), ApiError> {
        let waiting = self.waiting + self.placed_since;
        let allowed = limits
            .floor
            .max((self.rate * limits.max_wait.as_secs_f64()) as u64);
        if waiting < allowed {
            return Ok(());
        }
        // Long enough for the excess to be decided at the current rate.
        let excess = (waiting - allowed + 1) as f64;
        let retry_after = if self.rate > 0.0 {
            Duration::from_secs_f64(excess / self.rate)
        } else {
            SAMPLE_EVERY
        };
        Err(ApiError::Overloaded {
            reason: format!(
                "overloaded: {waiting} orders wait for a decision, decided at {:.0}/s",
                self.rate
            ),
            retry_after: retry_after.clamp(Duration::from_millis(50), Duration::from_secs(5)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_wait: Duration::from_secs(5),
        floor: 100,
    };

    #[test]
    fn a_cold_start_admits_up_to_the_floor() {
        let mut backlog = Backlog {
            placed_since: 99,
            ..Backlog::default()
        };
        assert!(backlog.admit(&LIMITS).is_ok());
        backlog.placed_since = 100;
        let refused = backlog.admit(&LIMITS).unwrap_err();
        assert!(
            matches!(refused, ApiError::Overloaded { retry_after, .. } if retry_after == SAMPLE_EVERY)
        );
    }

    #[test]
    fn the_measured_rate_sets_how_many_may_wait() {
        let mut backlog = Backlog {
            placed_since: 1_000,
            ..Backlog::default()
        };
        // 400 decided in a second, twice: the rate settles towards 400/s.
        backlog.sampled(600, Duration::from_secs(1));
        assert_eq!(backlog.rate, 200.0);
        backlog.placed_since = 400;
        backlog.sampled(600, Duration::from_secs(1));
        assert_eq!(backlog.rate, 300.0);
        // 300/s for 5 s: 1,500 may wait.
        backlog.placed_since = 899;
        assert!(backlog.admit(&LIMITS).is_ok());
        backlog.placed_since = 1_000;
        let Err(ApiError::Overloaded { retry_after, .. }) = backlog.admit(&LIMITS) else {
            panic!("admitted past the bound");
        };
        // 101 over the bound at 300/s.
        assert_eq!(retry_after.as_millis(), 336);
    }

    #[test]
    fn nothing_waiting_is_idle() {
        let mut backlog = Backlog::default();
        assert!(backlog.is_idle());
        backlog.placed_since = 1;
        assert!(!backlog.is_idle());
        backlog.sampled(0, Duration::from_secs(1));
        assert!(backlog.is_idle());
    }
}
