//! The load itself. Closed loop: N clients, each placing an order and waiting for its decision,
//! again and again, so the system sets the pace. Open loop: orders offered on a fixed schedule
//! whatever the system does, each in its own task, latency counted from the scheduled send time
//! so that a slow system cannot hide its queueing (no coordinated omission).

use std::{sync::Arc, time::Duration};

use tokio::{task::JoinSet, time::Instant};

use crate::{
    cpu::{Cpu, Usage},
    decide::{Decider, Failure, Outcome},
    report::{OpenLoop, Point, Tally},
    setup::{self, Catalogue},
};

/// Everything a point needs, shared by its tasks.
pub struct Ctx {
    pub clients: crate::clients::Clients,
    pub decider: Decider,
    pub catalogue: Catalogue,
    pub cpu: Cpu,
    pub seed: u64,
    pub warmup: Duration,
    pub open_warmup: Duration,
    pub window: Duration,
    pub drain: Duration,
    pub hold_grace: Duration,
    /// The longest one order can take: PlaceOrder's timeout plus the decision timeout.
    pub order_bound: Duration,
}

/// After a failed order a closed-loop client pauses this long, as a real client would, rather
/// than hammering a refusing server in a tight loop.
const BACKOFF: Duration = Duration::from_millis(10);

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn after(warmup: Duration, length: Duration) -> Self {
        let start = Instant::now() + warmup;
        Self {
            start,
            end: start + length,
        }
    }

    fn contains(&self, at: Instant) -> bool {
        self.start <= at && at < self.end
    }
}

/// CPU of the processes under test over exactly the measured window.
async fn measure_cpu(ctx: Arc<Ctx>, window: Window) -> Option<Usage> {
    tokio::time::sleep_until(window.start).await;
    let before = ctx.cpu.sample();
    tokio::time::sleep_until(window.end).await;
    let usage = ctx.cpu.usage(&before, &ctx.cpu.sample());
    (usage.processes > 0).then_some(usage)
}

/// Idempotency keys, as real clients send them; unique per order of the run.
fn key(ctx: &Ctx, point: usize, stream: usize, n: u64) -> String {
    format!("{}-{point}-{stream}-{n}", ctx.catalogue.prefix)
}

pub async fn closed(ctx: &Arc<Ctx>, point: usize, clients: usize) -> Point {
    let window = Window::after(ctx.warmup, ctx.window);
    let cpu = tokio::spawn(measure_cpu(ctx.clone(), window));
    let mut workers = JoinSet::new();
    for client in 0..clients {
        workers.spawn(closed_client(ctx.clone(), window, point, client));
    }
    let mut tally = Tally::default();
    // Every order is bounded, so the clients stop soon after the window; the bound is a guard.
    let stop_by = window.end + ctx.order_bound + Duration::from_secs(1);
    while let Ok(Some(joined)) = tokio::time::timeout_at(stop_by, workers.join_next()).await {
        if let Ok(client_tally) = joined {
            tally.merge(client_tally);
        }
    }
    workers.abort_all();
    Point {
        name: format!("closed {clients}"),
        heading: format!(
            "closed loop, {clients} client{}: {:.0} s measured after {:.0} s warm-up",
            if clients == 1 { "" } else { "s" },
            ctx.window.as_secs_f64(),
            ctx.warmup.as_secs_f64()
        ),
        window_secs: ctx.window.as_secs_f64(),
        decided_in_window: tally.decided(),
        tally,
        cpu: cpu.await.ok().flatten(),
        open: None,
    }
}

/// One client: an order, its decision, the next order. Counts what is decided in the window.
async fn closed_client(ctx: Arc<Ctx>, window: Window, point: usize, client: usize) -> Tally {
    let mut rng = setup::rng(ctx.seed, ((point as u64) << 32) | client as u64);
    let mut tally = Tally::default();
    let mut n = 0;
    while Instant::now() < window.end {
        let request = ctx
            .catalogue
            .random_order(&mut rng, key(&ctx, point, client, n));
        n += 1;
        let sent = Instant::now();
        let client = ctx.clients.order_for(&request.customer_id);
        let result = ctx.decider.order(client, request).await;
        let done = Instant::now();
        if window.contains(done) {
            tally.record(&result, done - sent);
        }
        if result.is_err() {
            tokio::time::sleep(BACKOFF).await;
        }
    }
    tally
}

/// One open-loop order as it ended.
struct Sent {
    scheduled: Instant,
    done: Instant,
    result: Result<Outcome, Failure>,
}

pub async fn open(ctx: &Arc<Ctx>, point: usize, rate: f64) -> Point {
    // The schedule starts now; its first `open_warmup` is warm-up at the same rate.
    let start = Instant::now();
    let window = Window::after(ctx.open_warmup, ctx.window);
    let drain_until = window.end + ctx.drain;
    let cpu = tokio::spawn(measure_cpu(ctx.clone(), window));
    let mut rng = setup::rng(ctx.seed, (point as u64) << 32);
    let mut tasks = JoinSet::new();
    for n in 0.. {
        let scheduled = start + Duration::from_secs_f64(n as f64 / rate);
        if scheduled >= window.end {
            break;
        }
        // Late wake-ups send in a burst; their latency still counts from the schedule.
        tokio::time::sleep_until(scheduled).await;
        let request = ctx.catalogue.random_order(&mut rng, key(ctx, point, 0, n));
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let client = ctx.clients.order_for(&request.customer_id);
            let order = ctx.decider.order(client, request);
            let result = tokio::time::timeout_at(drain_until, order)
                .await
                .unwrap_or(Err(Failure::Decide("undecided at the drain limit")));
            Sent {
                scheduled,
                done: Instant::now(),
                result,
            }
        });
    }
    let mut sent = Vec::new();
    let give_up = drain_until + Duration::from_secs(1);
    while let Ok(Some(joined)) = tokio::time::timeout_at(give_up, tasks.join_next()).await {
        sent.extend(joined.ok());
    }
    tasks.abort_all();
    let (tally, open, decided_in_window) = open_figures(ctx, &sent, window, rate);
    Point {
        name: format!("open {rate}/s"),
        heading: format!(
            "open loop, {rate} orders/s: {:.0} s measured after {:.0} s warm-up, drain up to {:.0} s",
            ctx.window.as_secs_f64(),
            ctx.open_warmup.as_secs_f64(),
            ctx.drain.as_secs_f64()
        ),
        window_secs: ctx.window.as_secs_f64(),
        decided_in_window,
        tally,
        cpu: cpu.await.ok().flatten(),
        open: Some(open),
    }
}

/// The offered orders' tally (those scheduled in the window), whether they were decided in time,
/// and how many decisions of any order arrived in the window (the throughput).
fn open_figures(ctx: &Ctx, sent: &[Sent], window: Window, rate: f64) -> (Tally, OpenLoop, u64) {
    let mut tally = Tally::default();
    let mut offered = 0;
    let mut in_time = 0;
    let mut decided_in_window = 0;
    let in_time_until = window.end + ctx.hold_grace;
    for order in sent {
        let decided = order.result.is_ok();
        if decided && window.contains(order.done) {
            decided_in_window += 1;
        }
        if window.contains(order.scheduled) {
            offered += 1;
            tally.record(&order.result, order.done - order.scheduled);
            if decided && order.done <= in_time_until {
                in_time += 1;
            }
        }
    }
    let open = OpenLoop {
        rate,
        offered,
        in_time,
        grace_secs: ctx.hold_grace.as_secs_f64(),
    };
    (tally, open, decided_in_window)
}
