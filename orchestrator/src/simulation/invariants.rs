//! The invariants of DESIGN.md checked on a quiescent world (I2 and I6 are also checked at
//! every step, in `world` and `outcomes`), and the differential check I10 against the same
//! input run without faults.

use super::{
    bus::OrderId,
    generated::Hold,
    inventory::Reservation,
    outcomes::OrderStatus,
    payment::PaymentStatus,
    workload::{Kind, OrderSpec, SCARCE},
    world::{Saga, World},
};

pub fn check_end(world: &World, broken: &mut Vec<String>) {
    let workload = world.workload;
    for order in &workload.orders {
        let status = world.orders.status.get(&order.id).copied();
        let saga = world.orchestrator.saga(order.id);
        let saga = saga.as_ref();
        // I1: every order and every saga terminal, and they agree.
        let terminal = saga.is_some_and(|saga| saga.is_terminal());
        if !terminal || !matches!(status, Some(OrderStatus::Confirmed | OrderStatus::Rejected)) {
            broken.push(format!(
                "I1: order {} is {status:?}, its saga {saga:?}",
                order.id
            ));
            continue;
        }
        let confirmed = status == Some(OrderStatus::Confirmed);
        if saga.is_some_and(|saga| (saga.phase == crate::core::Phase::Confirmed) != confirmed) {
            broken.push(format!(
                "I1: order {} is {status:?} but its saga {saga:?}",
                order.id
            ));
        }
        match world.saga {
            Saga::Shipped => check_shop(world, order, confirmed, broken),
            Saga::Generated(_) => check_steps(world, order.id, confirmed, broken),
        }
        // I7: one notification per outcome, telling the outcome.
        let told: Vec<_> = world
            .notifier
            .sent
            .iter()
            .filter(|(id, _)| *id == order.id)
            .map(|(_, outcome)| *outcome)
            .collect();
        if told != [status.unwrap_or(OrderStatus::Pending)] {
            broken.push(format!(
                "I7: order {} is {status:?}, customer told {told:?}",
                order.id
            ));
        }
    }
    check_conservation(world, broken);
    check_no_loss(world, broken);
    check_effects_once(world, broken);
}

/// I2 and I3 per order of the shipped saga: a confirmed order's stock is sold and its amount
/// captured; a rejected one holds no stock and is charged nothing.
fn check_shop(world: &World, order: &OrderSpec, confirmed: bool, broken: &mut Vec<String>) {
    // I2 per order: a confirmed order's stock is sold, a rejected one holds none.
    let reservation = world.inventory.reservations.get(&order.id);
    let stock_ok = match reservation {
        Some(Reservation::Committed(_)) => confirmed,
        Some(Reservation::Released(_)) | None => !confirmed,
        Some(Reservation::Reserved(_)) => false,
    };
    if !stock_ok {
        broken.push(format!(
            "I2: order {} (confirmed: {confirmed}) has reservation {reservation:?}",
            order.id
        ));
    }
    // I3: the net charge is the amount if confirmed (and captured), else nothing.
    let payment = world.payments.payments.get(&order.id);
    let charge = payment.map_or(0, |payment| payment.charge());
    let captured = payment.is_some_and(|payment| payment.status == PaymentStatus::Captured);
    if charge != if confirmed { order.amount } else { 0 } || captured != confirmed {
        broken.push(format!(
            "I3: order {} (confirmed: {confirmed}) has payment {payment:?} (amount {})",
            order.id, order.amount
        ));
    }
}

/// I2 and I3 for a generated saga: a confirmed order kept every step's part; a rejected one
/// holds nothing at any step.
fn check_steps(world: &World, order: OrderId, confirmed: bool, broken: &mut Vec<String>) {
    for participant in &world.steps {
        let hold = participant.holds.get(&order).copied();
        let fine = if confirmed {
            hold == Some(Hold::Kept)
        } else {
            matches!(hold, None | Some(Hold::Refused | Hold::GivenBack))
        };
        if !fine {
            broken.push(format!(
                "I2: order {order} (confirmed: {confirmed}) has {hold:?} at step {}",
                participant.step
            ));
        }
    }
}

/// I2 and I3 in total: stock and money add up, nothing is left reserved.
fn check_conservation(world: &World, broken: &mut Vec<String>) {
    let workload = world.workload;
    let confirmed = |id| world.orders.status.get(&id) == Some(&OrderStatus::Confirmed);
    for (product, stock) in world.inventory.stock.iter().enumerate() {
        let sold: i64 = workload
            .orders
            .iter()
            .filter(|order| confirmed(order.id))
            .flat_map(|order| &order.lines)
            .filter(|line| line.product == product)
            .map(|line| line.quantity)
            .sum();
        if stock.reserved != 0 || stock.sold != sold || stock.available + sold != stock.initial {
            broken.push(format!(
                "I2: product {product} idle with {stock:?}, confirmed orders bought {sold}"
            ));
        }
    }
    for (customer, initial) in workload.balances.iter().enumerate() {
        let spent: i64 = workload
            .orders
            .iter()
            .filter(|order| order.customer == customer && confirmed(order.id))
            .map(|order| order.amount)
            .sum();
        let balance = world.payments.balances[customer];
        if balance != initial - spent {
            broken.push(format!(
                "I3: customer {customer} has {balance}, started with {initial} and bought {spent}"
            ));
        }
    }
}

/// I4: every committed outbox row was published, and every consumer of its topic applied it
/// and committed past it.
fn check_no_loss(world: &World, broken: &mut Vec<String>) {
    for from in world.services() {
        let outbox = world.outbox(from);
        if !outbox.all_sent() {
            broken.push(format!("I4: {from:?} outbox still has unsent rows"));
        }
        for row in outbox.rows() {
            if !world.bus.contains(row) {
                broken.push(format!("I4: {from:?} never published {row:?}"));
                continue;
            }
            let topic = row.payload.topic();
            for to in world.services() {
                let reads = world.subscriptions(to).contains(&topic);
                if reads && !world.inbox_contains(to, row.id) {
                    broken.push(format!("I4: {to:?} never applied {row:?}"));
                }
            }
        }
    }
    for service in world.services() {
        let consumer = world.consumer(service);
        for (topic, partition) in consumer.partitions() {
            let end = world.bus.log(topic, partition).len();
            if consumer.committed(topic, partition) != end {
                broken.push(format!(
                    "I4: {service:?} committed {} of {end} on {topic:?}/{partition}",
                    consumer.committed(topic, partition)
                ));
            }
        }
    }
}

/// I5: no effect happened twice for one order.
fn check_effects_once(world: &World, broken: &mut Vec<String>) {
    let mut effects = world.journal.effects.clone();
    effects.sort();
    for pair in effects.windows(2) {
        if pair[0] == pair[1] {
            let (order, effect) = pair[0];
            broken.push(format!(
                "I5: {effect:?} happened more than once for order {order}"
            ));
        }
    }
}

/// I10, made precise: deadlines fire early only under faults, and a deadline may legitimately
/// reject an order that would have been confirmed. So the faulty run is compared with the
/// fault-free one (where deadlines never fire before quiescence) order by order, except orders
/// the deadline decided (those must simply be REJECTED); the winners of the scarce product depend
/// on the schedule, so for it only how many won is compared (unless a deadline decided one of
/// its orders). The reference itself must match what the input means (Kind).
pub fn check_differential(faulty: &World, reference: &World, broken: &mut Vec<String>) {
    let workload = faulty.workload;
    let status = |world: &World, id| world.orders.status.get(&id).copied();
    let by_deadline = |world: &World, id| world.orchestrator.decided_by_deadline.contains(&id);
    for order in &workload.orders {
        let (ours, theirs) = (status(faulty, order.id), status(reference, order.id));
        let meant = match order.kind {
            Kind::Regular => Some(OrderStatus::Confirmed),
            Kind::Poor | Kind::Oversized | Kind::RefusedAt(_) => Some(OrderStatus::Rejected),
            Kind::Scarce => None,
        };
        if by_deadline(reference, order.id) || meant.is_some_and(|meant| theirs != Some(meant)) {
            broken.push(format!(
                "I10: fault-free run ended {:?} order {} {theirs:?}, meant {meant:?}",
                order.kind, order.id
            ));
        }
        let expected = if by_deadline(faulty, order.id) {
            Some(OrderStatus::Rejected)
        } else if meant.is_some() {
            theirs
        } else {
            continue;
        };
        if ours != expected {
            broken.push(format!(
                "I10: order {} ended {ours:?} with faults, {theirs:?} without",
                order.id
            ));
        }
    }
    let scarce: Vec<_> = workload
        .orders
        .iter()
        .filter(|order| order.kind == Kind::Scarce)
        .collect();
    let winners = |world: &World| {
        let confirmed = |id| status(world, id) == Some(OrderStatus::Confirmed);
        scarce.iter().filter(|order| confirmed(order.id)).count()
    };
    // A generated saga's workload has no products (and no scarce orders).
    let in_stock = workload
        .products
        .get(SCARCE)
        .map_or(0, |product| product.initial);
    let can_win = Ord::min(scarce.len(), in_stock as usize);
    if !scarce.iter().any(|order| by_deadline(faulty, order.id))
        && (winners(faulty), winners(reference)) != (can_win, can_win)
    {
        broken.push(format!(
            "I10: {} scarce orders won with faults, {} without, {can_win} could",
            winners(faulty),
            winners(reference)
        ));
    }
    let any_deadline = workload.orders.iter().any(|o| by_deadline(faulty, o.id));
    let money = |world: &World| world.payments.balances.iter().sum::<i64>();
    if !any_deadline
        && (faulty.inventory.stock != reference.inventory.stock
            || money(faulty) != money(reference))
    {
        broken.push(format!(
            "I10: end states differ: stock {:?} vs {:?}, money {} vs {}",
            faulty.inventory.stock,
            reference.inventory.stock,
            money(faulty),
            money(reference)
        ));
    }
}
