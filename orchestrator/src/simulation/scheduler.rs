//! The seeded scheduler: a fault phase that picks among progress and faults at random, then a
//! heal phase where nothing fails and everything is drained until the system is quiescent.
//!
//! Modelled: any interleaving of consumers, partitions and topics (one partition is delivered
//! in order, as in Kafka, since the key is the order id); redelivery of an applied message;
//! dropped deliveries (a crash before the offset commit); relays publishing a row twice;
//! process crashes (the orchestrator rebuilds its compensations from its database); early
//! deadlines; compensation RPCs failing before or after their effect, and parking.
//! Not modelled: broker data loss, concurrent transactions on one database (every action is one
//! serial transaction), dead letters (no message here is undecodable), clocks.

use orderly_saga::StepIndex;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};

use super::{
    actions::{Action, Call},
    bus::{OrderId, Topic},
    world::{Service, World},
};
use crate::core::{Phase, Step};

/// How the run is scheduled.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// The fault phase lasts up to this many steps (drawn per seed); 0 for the fault-free
    /// reference run.
    pub max_fault_steps: usize,
    /// Steps the heal phase may take to become quiescent (more is a liveness bug).
    pub heal_bound: usize,
}

/// What the scheduler may do next, before its random details are chosen.
#[derive(Clone, Copy, Debug)]
enum Choice {
    Place,
    Deliver(Service, Topic, usize),
    Redeliver(Service, Topic, usize),
    Commit(Service),
    Crash(Service),
    Relay(Service),
    Deadline(OrderId),
    Compensate(OrderId, StepIndex),
}

/// Chance that a fault-phase step is a fault (when one is possible).
const FAULT_RATE: f64 = 0.2;

pub fn run(world: &mut World, seed: u64, schedule: Schedule) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut choices = Vec::new();
    let fault_steps = rng.random_range(0..=schedule.max_fault_steps);
    for _ in 0..fault_steps {
        progress(world, &mut choices);
        if choices.is_empty() {
            break; // quiescent before the faults ran out: nothing left to disturb
        }
        let mut faults = Vec::new();
        self::faults(world, &mut faults, &mut rng);
        let pool = if rng.random_bool(FAULT_RATE) && !faults.is_empty() {
            &faults
        } else {
            &choices
        };
        let Some(choice) = pool.choose(&mut rng).copied() else {
            break;
        };
        let action = detail(world, choice, &mut rng, true);
        world.execute(action);
    }
    heal(world, &mut rng, schedule.heal_bound);
}

/// Nothing fails any more: drain until quiescent, then let an operator retry parked sagas (the
/// real runtime leaves them to one: RetrySaga) and let every deadline fire. Needing a deadline now means a message or a step got lost.
fn heal(world: &mut World, rng: &mut StdRng, bound: usize) {
    let mut choices = Vec::new();
    for _ in 0..bound {
        progress(world, &mut choices);
        if let Some(choice) = choices.choose(rng).copied() {
            let action = detail(world, choice, rng, false);
            world.execute(action);
            continue;
        }
        if let Some(order) = first_saga(world, |phase| phase == Phase::Parked) {
            world.execute(operator_action(world, order));
            continue;
        }
        if let Some(order) = first_saga(world, |phase| phase == Phase::Running) {
            world.journal.violation(format!(
                "I1: saga {order} still RUNNING after every message was delivered; only its \
                 deadline ends it"
            ));
            world.execute(Action::FireDeadline(order));
            continue;
        }
        return;
    }
    world.journal.violation(format!(
        "I1: not quiescent {bound} steps into the heal phase (liveness)"
    ));
}

/// What an operator does with a parked saga: undo by hand what it cannot compensate, else
/// retry it.
fn operator_action(world: &World, order: OrderId) -> Action {
    let definition = world.orchestrator.definition();
    let saga = world.orchestrator.saga(order);
    let stuck = saga.and_then(|saga| {
        (0..saga.steps.len())
            .find(|step| saga.step(*step) == Step::Succeeded && !definition.is_compensable(*step))
    });
    match stuck {
        Some(step) => Action::ResolveByHand { order, step },
        None => Action::ResumeParked(order),
    }
}

fn first_saga(world: &World, wanted: impl Fn(Phase) -> bool) -> Option<OrderId> {
    let sagas = world.orchestrator.sagas();
    sagas
        .into_iter()
        .find(|(_, saga)| wanted(saga.phase))
        .map(|(order, _)| order)
}

/// Everything that moves the system forward from here.
fn progress(world: &World, choices: &mut Vec<Choice>) {
    choices.clear();
    if world.placed < world.workload.orders.len() {
        choices.push(Choice::Place);
    }
    for service in world.services() {
        let consumer = world.consumer(service);
        for (topic, partition) in consumer.partitions() {
            let end = world.bus.log(topic, partition).len();
            if consumer.position(topic, partition) < end {
                choices.push(Choice::Deliver(service, topic, partition));
            }
        }
        if consumer.has_uncommitted() {
            choices.push(Choice::Commit(service));
        }
        if world.outbox(service).next_unsent().is_some() {
            choices.push(Choice::Relay(service));
        }
    }
    for (order, step) in world.orchestrator.runnable_compensations() {
        choices.push(Choice::Compensate(order, step));
    }
}

/// The faults possible from here; deadlines are rarer than the rest so that most sagas are
/// decided by their steps (those are the ones I10 can compare).
fn faults(world: &World, faults: &mut Vec<Choice>, rng: &mut StdRng) {
    for service in world.services() {
        let consumer = world.consumer(service);
        for (topic, partition) in consumer.partitions() {
            if consumer.position(topic, partition) > 0 {
                faults.push(Choice::Redeliver(service, topic, partition));
            }
        }
        faults.push(Choice::Crash(service));
    }
    if rng.random_bool(0.1) {
        for (order, saga) in world.orchestrator.sagas() {
            if saga.phase == Phase::Running {
                faults.push(Choice::Deadline(order));
            }
        }
    }
}

/// Turns a choice into an action; only the fault phase draws failing variants.
fn detail(world: &World, choice: Choice, rng: &mut StdRng, faulty: bool) -> Action {
    match choice {
        Choice::Place => Action::Place(world.workload.orders[world.placed].id),
        Choice::Deliver(to, topic, partition) => Action::Deliver {
            to,
            topic,
            partition,
            offset: world.consumer(to).position(topic, partition),
            commit: !faulty || rng.random_bool(0.7),
        },
        Choice::Redeliver(to, topic, partition) => Action::Redeliver {
            to,
            topic,
            partition,
            offset: world.consumer(to).position(topic, partition) - 1,
        },
        Choice::Commit(service) => Action::CommitOffsets(service),
        Choice::Crash(service) => Action::Crash(service),
        Choice::Relay(from) => Action::Relay {
            from,
            crash: faulty && rng.random_bool(0.1),
        },
        Choice::Deadline(order) => Action::FireDeadline(order),
        Choice::Compensate(order, step) => {
            let call = if !faulty {
                Call::Succeeds
            } else {
                match rng.random_range(0..100) {
                    0..25 => Call::FailsBeforeEffect,
                    25..35 => Call::FailsAfterEffect,
                    35..45 => Call::SucceedsThenCrash,
                    _ => Call::Succeeds,
                }
            };
            Action::Compensate { order, step, call }
        }
    }
}
