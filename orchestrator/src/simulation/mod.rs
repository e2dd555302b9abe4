//! A deterministic simulation of the whole saga, below the process tests. The orchestrator is
//! the REAL runtime (its consumer's reaction, deadline timer, compensator and operator, over
//! its tables kept in memory); the bus, the outboxes and inboxes and the participants are
//! in-memory models. A seeded scheduler duplicates, reorders and drops deliveries, publishes
//! rows twice, crashes processes, fires deadlines early and fails compensations, then heals.
//! Every seed runs the shipped saga and a generated one (1 to 6 steps, with or without a
//! pivot), and checks the invariants of DESIGN.md (see `invariants`) and that compensations
//! run in reverse.
//!
//! `ORDERLY_SIM_SEEDS=<n>` runs seeds 0..n (default 2000); `ORDERLY_SIM_SEED=<n>` replays one.

mod actions;
mod bus;
mod calls;
mod generated;
mod invariants;
mod inventory;
mod journal;
mod memory;
mod orchestrator;
mod outcomes;
mod payment;
mod scheduler;
mod workload;
mod world;

use std::{fmt::Write as _, ops::Range};

use actions::{Action, Sabotage};
use bus::OrderId;
use generated::{MAX_STEPS, Shape};
use journal::Coverage;
use outcomes::OrderStatus;
use scheduler::Schedule;
use workload::Workload;
use world::{Saga, World};

/// Failed attempts before a compensation parks its saga (the real default is 10; fewer makes
/// parking, and the operator's resume, common enough to matter).
const MAX_ATTEMPTS: u32 = 3;
const FAULTY: Schedule = Schedule {
    max_fault_steps: 400,
    heal_bound: 20_000,
};
const FAULT_FREE: Schedule = Schedule {
    max_fault_steps: 0,
    heal_bound: 20_000,
};
const TRACE_TAIL: usize = 40;

/// What a passing seed leaves behind, to compare runs.
#[derive(Debug, PartialEq)]
struct Run {
    trace: Vec<Action>,
    outcomes: Vec<(OrderId, Option<OrderStatus>)>,
    coverage: Coverage,
}

/// Runs one seed of the shipped saga with faults and without, and checks every invariant; on
/// failure, returns the report a developer needs to replay it.
fn simulate(seed: u64, sabotage: Sabotage) -> Result<Run, String> {
    run(seed, Saga::Shipped, &Workload::generate(seed), sabotage)
}

/// The same for the saga generated from `seed` (its shape, then its orders).
fn simulate_generated(seed: u64) -> Result<Run, String> {
    let shape = Shape::generate(seed);
    let workload = Workload::generate_for(seed, shape);
    run(seed, Saga::Generated(shape), &workload, Sabotage::None)
}

fn run(seed: u64, saga: Saga, workload: &Workload, sabotage: Sabotage) -> Result<Run, String> {
    // The schedules draw from their own streams, so both runs get the very same input.
    let schedule_seed = seed ^ 0x5EED_F00D_5EED;
    let mut faulty = World::new(workload, saga, sabotage, MAX_ATTEMPTS);
    scheduler::run(&mut faulty, schedule_seed, FAULTY);
    let mut reference = World::new(workload, saga, sabotage, MAX_ATTEMPTS);
    scheduler::run(&mut reference, schedule_seed.rotate_left(17), FAULT_FREE);

    let mut broken = faulty.journal.violations.clone();
    invariants::check_end(&faulty, &mut broken);
    let mut reference_broken = reference.journal.violations.clone();
    invariants::check_end(&reference, &mut reference_broken);
    broken.extend(
        reference_broken
            .into_iter()
            .map(|b| format!("fault-free run: {b}")),
    );
    invariants::check_differential(&faulty, &reference, &mut broken);
    if !broken.is_empty() {
        return Err(report(seed, sabotage, &broken, &faulty));
    }
    let outcomes = workload
        .orders
        .iter()
        .map(|order| (order.id, faulty.orders.status.get(&order.id).copied()))
        .collect();
    Ok(Run {
        coverage: faulty.journal.coverage,
        trace: faulty.trace,
        outcomes,
    })
}

fn report(seed: u64, sabotage: Sabotage, broken: &[String], faulty: &World) -> String {
    let mut text = format!(
        "seed {seed} of the {:?} saga broke {} invariant check(s) (sabotage: {sabotage:?}):\n",
        faulty.saga,
        broken.len()
    );
    for line in broken.iter().take(20) {
        let _ = writeln!(text, "  - {line}");
    }
    let _ = writeln!(
        text,
        "replay: ORDERLY_SIM_SEED={seed} cargo test -p orderly-orchestrator simulation"
    );
    let _ = writeln!(text, "orders:");
    for order in &faulty.workload.orders {
        let _ = writeln!(text, "  {order:?}");
    }
    let trace = &faulty.trace;
    let from = trace.len().saturating_sub(TRACE_TAIL);
    let _ = writeln!(
        text,
        "last {} of {} steps of the run with faults:",
        trace.len() - from,
        trace.len()
    );
    for (step, action) in trace.iter().enumerate().skip(from) {
        let _ = writeln!(text, "  #{step} {action:?}");
    }
    text
}

/// The seeds to run: `ORDERLY_SIM_SEED` alone, else 0..`ORDERLY_SIM_SEEDS` (default 2000).
fn seeds() -> Range<u64> {
    let number = |name: &str| {
        std::env::var(name).ok().map(|value| {
            value
                .trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{name} must be a number, not {value:?}"))
        })
    };
    match number("ORDERLY_SIM_SEED") {
        Some(seed) => seed..seed + 1,
        None => 0..number("ORDERLY_SIM_SEEDS").unwrap_or(2_000),
    }
}

#[test]
fn thousands_of_seeds_keep_every_invariant() {
    for seed in seeds() {
        if let Err(report) = simulate(seed, Sabotage::None) {
            panic!("{report}");
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [7, 1_234] {
        let first = simulate(seed, Sabotage::None).unwrap();
        assert_eq!(first, simulate(seed, Sabotage::None).unwrap());
        assert!(first.trace.len() > 20, "seed {seed} barely ran");
    }
    let (one, two) = (simulate(1, Sabotage::None), simulate(2, Sabotage::None));
    assert_ne!(one.unwrap().trace, two.unwrap().trace);
    assert_eq!(simulate_generated(7), simulate_generated(7));
}

#[test]
fn generated_sagas_keep_every_invariant() {
    for seed in seeds() {
        if let Err(report) = simulate_generated(seed) {
            panic!("{report}");
        }
    }
}

/// Generated sagas come in every length, with and without a pivot, and the faults reach their
/// rare paths too.
#[test]
fn generated_sagas_cover_every_shape_and_rare_path() {
    let mut shapes = std::collections::BTreeSet::new();
    let mut total = Coverage::default();
    for seed in 0..300 {
        let shape = Shape::generate(seed);
        shapes.insert((shape.steps, shape.pivot.is_some()));
        let coverage = simulate_generated(seed).unwrap().coverage;
        total.deadline_rejections += coverage.deadline_rejections;
        total.parkings += coverage.parkings;
        total.late_successes += coverage.late_successes;
    }
    for steps in 1..=MAX_STEPS {
        for pivot in [false, true] {
            assert!(
                shapes.contains(&(steps, pivot)),
                "no {steps}-step saga (pivot: {pivot})"
            );
        }
    }
    assert!(total.deadline_rejections >= 10, "{total:?}");
    assert!(total.parkings >= 10, "{total:?}");
    assert!(total.late_successes >= 10, "{total:?}");
}

/// The faults must reach the rare paths, or passing seeds prove little.
#[test]
fn the_faults_reach_the_rare_paths() {
    let mut total = Coverage::default();
    for seed in 0..300 {
        let coverage = simulate(seed, Sabotage::None).unwrap().coverage;
        total.deadline_rejections += coverage.deadline_rejections;
        total.parkings += coverage.parkings;
        total.late_successes += coverage.late_successes;
    }
    assert!(total.deadline_rejections >= 10, "{total:?}");
    assert!(total.parkings >= 10, "{total:?}");
    assert!(total.late_successes >= 10, "{total:?}");
}

/// A checker that cannot fail is no checker: break one messaging rule and some seed must fail.
fn first_failure(sabotage: Sabotage) -> String {
    (0..300)
        .find_map(|seed| simulate(seed, sabotage).err())
        .unwrap_or_else(|| panic!("no seed in 0..300 noticed {sabotage:?}"))
}

#[test]
fn a_notifier_without_inbox_is_caught() {
    let report = first_failure(Sabotage::NotificationWithoutInbox);
    assert!(report.contains("I7:") && report.contains("I5:"), "{report}");
    assert!(report.contains("replay: ORDERLY_SIM_SEED="), "{report}");
}

#[test]
fn a_relay_that_marks_rows_sent_before_publishing_is_caught() {
    let report = first_failure(Sabotage::RelayMarksSentBeforePublishing);
    assert!(report.contains("I4:"), "{report}");
}
