//! A circuit breaker: after enough consecutive failures it refuses calls for a while, then lets
//! them through again, and the first failure after that reopens it.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

#[derive(Debug)]
pub(super) struct Breaker {
    failures_to_open: u32,
    open_for: Duration,
    consecutive_failures: AtomicU32,
    opened_at: Mutex<Option<Instant>>,
}

impl Breaker {
    pub(super) fn new(failures_to_open: u32, open_for: Duration) -> Self {
        Self {
            failures_to_open,
            open_for,
            consecutive_failures: AtomicU32::new(0),
            opened_at: Mutex::new(None),
        }
    }

    pub(super) fn allows(&self) -> bool {
        self.closes_at().is_none()
    }

    /// When an open breaker lets calls through again; `None` while it lets them through.
    pub(super) fn closes_at(&self) -> Option<Instant> {
        let opened_at = self
            .opened_at
            .lock()
            .map(|opened| *opened)
            .unwrap_or(None)?;
        Some(opened_at + self.open_for).filter(|closes| *closes > Instant::now())
    }

    pub(super) fn succeeded(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if let Ok(mut opened) = self.opened_at.lock() {
            *opened = None;
        }
    }

    pub(super) fn failed(&self) {
        // Not reset when it opens: once it lets calls through again, one failure reopens it.
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.failures_to_open
            && let Ok(mut opened) = self.opened_at.lock()
        {
            *opened = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_closes_on_success() {
        let breaker = Breaker::new(3, Duration::from_secs(60));
        breaker.failed();
        breaker.failed();
        assert!(breaker.allows());
        breaker.failed();
        assert!(!breaker.allows());
        assert!(breaker.closes_at().is_some());
        breaker.succeeded();
        assert!(breaker.allows());
    }

    #[test]
    fn one_failure_reopens_it_once_it_lets_calls_through_again() {
        let breaker = Breaker::new(2, Duration::ZERO);
        breaker.failed();
        breaker.failed();
        let first = breaker.opened_at.lock().unwrap().expect("opened");
        assert!(breaker.allows(), "open for no time at all");
        breaker.failed();
        let again = breaker.opened_at.lock().unwrap().expect("reopened");
        assert!(again > first);
    }
}
