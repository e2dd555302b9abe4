//! Per-caller rate limits: each token's subject has a token bucket of `--rate-limit-burst`
//! requests refilled at `--rate-limit-per-sec` (GCRA, the `governor` crate). A request past it
//! is refused with RESOURCE_EXHAUSTED before anything is decoded, with the time until the next
//! one is let in as gRPC's retry pushback. Components calling each other (by their certificates)
//! are not limited: that traffic is the sagas' own, and refusing it would only delay decisions
//! the system has already taken on.

use std::{
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use metrics::counter;
use tonic::{Status, metadata::MetadataValue};

use super::Principal;
use crate::{error::RETRY_PUSHBACK, metrics::RATE_LIMITED};

/// Forgetting callers whose buckets are full again is a sweep over all of them: done once per
/// this many requests.
const SWEEP_EVERY: u64 = 4096;

/// The buckets of every caller a server has seen lately.
pub struct RateLimits {
    buckets: DefaultKeyedRateLimiter<String>,
    quota: String,
    checked: AtomicU64,
}

impl RateLimits {
    /// `per_second` requests a second per caller, `burst` at once; `None` (no limit) when
    /// either is 0.
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let (per_second, burst) = (NonZeroU32::new(per_second)?, NonZeroU32::new(burst)?);
        Some(Self {
            buckets: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            quota: format!("{per_second} requests a second (bursts of {burst})"),
            checked: AtomicU64::new(0),
        })
    }

    /// Takes a request of `principal` out of its bucket, or says when to come back.
    pub fn admit(&self, method: &str, principal: &Principal) -> Result<(), Status> {
        let Principal::Token { subject, .. } = principal else {
            return Ok(());
        };
        if self.checked.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.buckets.retain_recent();
        }
        let Err(not_until) = self.buckets.check_key(subject) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        // At least a millisecond: a pushback of 0 would tell clients not to retry at all.
        let millis = wait.as_millis().max(1);
        counter!(RATE_LIMITED, "method" => method.to_owned()).increment(1);
        // Debug, not warn: a client past its limit sends many, and each is counted.
        tracing::debug!(method, caller = %principal, retry_in_ms = %millis, "rate limited");
        let mut status = Status::resource_exhausted(format!(
            "{principal} is over its rate limit of {}: retry in {millis} ms",
            self.quota
        ));
        if let Ok(value) = MetadataValue::try_from(millis.to_string()) {
            status.metadata_mut().insert(RETRY_PUSHBACK, value);
        }
        Err(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn token(subject: &str) -> Principal {
        Principal::Token {
            subject: subject.into(),
            roles: vec![Role::Customer],
        }
    }

    #[test]
    fn a_burst_past_the_bucket_is_refused_with_a_retry_hint_and_others_are_not() {
        let limits = RateLimits::new(1, 3).expect("limits on");
        for _ in 0..3 {
            limits
                .admit("m", &token("alice"))
                .expect("within the burst");
        }
        let refused = limits.admit("m", &token("alice")).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("alice"), "{refused:?}");
        let pushback: u64 = refused
            .metadata()
            .get(RETRY_PUSHBACK)
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=1000).contains(&pushback), "{pushback}");
        limits
            .admit("m", &token("bob"))
            .expect("bob has his own bucket");
        for _ in 0..10 {
            limits
                .admit("m", &Principal::Component("orchestrator"))
                .expect("components are not limited");
        }
    }

    #[test]
    fn zero_turns_limits_off() {
        assert!(RateLimits::new(0, 10).is_none());
        assert!(RateLimits::new(10, 0).is_none());
    }
}
