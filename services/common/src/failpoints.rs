//! Crash points for the failure tests. `fail::fail_point!` lines in the messaging plumbing and
//! the orchestrator are compiled in only with the `failpoints` feature (the root package turns
//! it on for its tests alone), and armed by the `FAILPOINTS` environment variable, e.g.
//! `FAILPOINTS="relay.after_ack=1*return"`. A release build has no fail points at all.

/// The fail points `FAILPOINTS` armed, kept for the life of the process (dropping it disarms
/// them).
#[must_use = "fail points are disarmed when this is dropped"]
pub struct FailPoints {
    #[cfg(feature = "failpoints")]
    _scenario: fail::FailScenario<'static>,
}

/// Arms the fail points `FAILPOINTS` names (nothing without the `failpoints` feature).
///
/// # Panics
///
/// If `FAILPOINTS` is malformed: only tests set it, and a test must not run unarmed.
pub fn from_env() -> FailPoints {
    FailPoints {
        #[cfg(feature = "failpoints")]
        _scenario: fail::FailScenario::setup(),
    }
}

/// What an armed crash point does: die at once, like a power cut or SIGKILL, with no cleanup,
/// no flush and no graceful shutdown (the name goes to stderr first, for whoever reads the log).
pub fn crash(point: &str) -> ! {
    eprintln!("fail point {point}: crashing");
    std::process::abort()
}

/// A crash point named `$name`: with `FAILPOINTS="$name=return"` the process dies there (see
/// [`crash`]). Expands to `fail::fail_point!`, so the calling crate depends on `fail`.
#[macro_export]
macro_rules! crash_point {
    ($name:literal) => {
        fail::fail_point!($name, |_| $crate::failpoints::crash($name))
    };
}
