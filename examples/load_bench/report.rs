//! The figures of each point and how they are printed: a block per point as it finishes, then a
//! summary table (and, with --markdown, the same as a markdown table).

use std::{collections::BTreeMap, time::Duration};

use crate::{
    cpu::Usage,
    decide::{Failure, Outcome},
};

/// Counts and latencies of the orders a point counts.
#[derive(Default)]
pub struct Tally {
    latencies: Vec<Duration>,
    pub confirmed: u64,
    pub rejected: u64,
    pub refused: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    pub fn record(&mut self, result: &Result<Outcome, Failure>, latency: Duration) {
        match result {
            Ok(Outcome::Confirmed) => self.confirmed += 1,
            Ok(Outcome::Rejected) => self.rejected += 1,
            Err(Failure::Refused) => self.refused += 1,
            Err(failure) => *self.errors.entry(failure.label()).or_default() += 1,
        }
        if result.is_ok() {
            self.latencies.push(latency);
        }
    }

    pub fn merge(&mut self, other: Self) {
        self.latencies.extend(other.latencies);
        self.confirmed += other.confirmed;
        self.rejected += other.rejected;
        self.refused += other.refused;
        for (label, count) in other.errors {
            *self.errors.entry(label).or_default() += count;
        }
    }

    pub fn decided(&self) -> u64 {
        self.confirmed + self.rejected
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn latency(&self) -> Latency {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        Latency {
            p50: percentile(&sorted, 50.0),
            p95: percentile(&sorted, 95.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied(),
        }
    }
}

/// Nearest-rank percentile of sorted latencies.
fn percentile(sorted: &[Duration], percent: f64) -> Option<Duration> {
    let rank = (sorted.len() as f64 * percent / 100.0).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

struct Latency {
    p50: Option<Duration>,
    p95: Option<Duration>,
    p99: Option<Duration>,
    max: Option<Duration>,
}

/// What an open-loop point adds: what was offered and whether the system kept up.
pub struct OpenLoop {
    pub rate: f64,
    pub offered: u64,
    /// Offered orders decided by the window's end plus the hold grace.
    pub in_time: u64,
    pub grace_secs: f64,
}

impl OpenLoop {
    /// Held: at least 95% of what was offered in the window was decided by its end plus the
    /// grace, so the system kept up with the rate instead of building a backlog.
    pub fn held(&self) -> bool {
        self.in_time as f64 >= 0.95 * self.offered as f64
    }
}

pub struct Point {
    pub name: String,
    pub heading: String,
    pub window_secs: f64,
    /// Decisions received during the window, whenever their order was placed.
    pub decided_in_window: u64,
    /// Closed loop: the orders decided in the window. Open loop: the orders offered in it.
    pub tally: Tally,
    pub cpu: Option<Usage>,
    pub open: Option<OpenLoop>,
}

impl Point {
    fn decided_per_sec(&self) -> f64 {
        self.decided_in_window as f64 / self.window_secs
    }

    fn cpu_ms_per_decided(&self) -> Option<f64> {
        self.cpu?.ms_per(self.decided_in_window)
    }
}

fn ms(value: Option<Duration>) -> String {
    value.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1000.0))
}

fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

pub fn print_point(point: &Point) {
    let tally = &point.tally;
    let latency = tally.latency();
    println!("{}", point.heading);
    match &point.open {
        Some(open) => {
            println!(
                "  offered   {:.1}/s ({} orders in the window)",
                open.rate, open.offered
            );
            println!(
                "  decided   {:.1}/s in the window; of the offered, {} decided within {} s of its end: {}",
                point.decided_per_sec(),
                open.in_time,
                open.grace_secs,
                if open.held() { "held" } else { "NOT held" }
            );
            println!(
                "  outcome   {} confirmed, {} rejected (of the offered)",
                tally.confirmed, tally.rejected
            );
        }
        None => println!(
            "  decided   {:.1}/s ({}: {} confirmed, {} rejected)",
            point.decided_per_sec(),
            tally.decided(),
            tally.confirmed,
            tally.rejected
        ),
    }
    let from = if point.open.is_some() {
        "scheduled send time"
    } else {
        "PlaceOrder sent"
    };
    println!(
        "  latency   p50 {} ms  p95 {} ms  p99 {} ms  max {} ms  ({from} to decision received)",
        ms(latency.p50),
        ms(latency.p95),
        ms(latency.p99),
        ms(latency.max)
    );
    println!(
        "  refused   {} at the door (RESOURCE_EXHAUSTED)",
        tally.refused
    );
    if tally.errors.is_empty() {
        println!("  errors    none");
    } else {
        let errors: Vec<_> = tally
            .errors
            .iter()
            .map(|(label, count)| format!("{label} x{count}"))
            .collect();
        println!("  errors    {}", errors.join(", "));
    }
    match point.cpu {
        Some(cpu) => println!(
            "  cpu       {} ms per decided order, {:.2} cores ({}); load_bench itself {:.2} cores",
            optional(point.cpu_ms_per_decided(), 2),
            cpu.cores(),
            processes(cpu.processes),
            cpu.bench_cores()
        ),
        None => println!("  cpu       not measured (no process under test found)"),
    }
    println!();
}

pub fn processes(count: usize) -> String {
    match count {
        1 => "1 process".into(),
        n => format!("{n} processes"),
    }
}

fn held_column(point: &Point) -> &'static str {
    match &point.open {
        Some(open) if open.held() => "yes",
        Some(_) => "NO",
        None => "",
    }
}

pub fn print_summary(points: &[Point]) {
    println!(
        "{:<18} {:>10} {:>8} {:>8} {:>8} {:>15} {:>6} {:>8} {:>7} {:>5}",
        "point",
        "decided/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "CPU ms/decided",
        "cores",
        "refused",
        "errors",
        "held"
    );
    for point in points {
        let latency = point.tally.latency();
        println!(
            "{:<18} {:>10.1} {:>8} {:>8} {:>8} {:>15} {:>6} {:>8} {:>7} {:>5}",
            point.name,
            point.decided_per_sec(),
            ms(latency.p50),
            ms(latency.p95),
            ms(latency.p99),
            optional(point.cpu_ms_per_decided(), 2),
            optional(point.cpu.map(|cpu| cpu.cores()), 2),
            point.tally.refused,
            point.tally.error_count(),
            held_column(point)
        );
    }
    println!();
}

pub fn print_markdown(points: &[Point]) {
    println!("| point | decided/s | p50 | p95 | p99 | CPU ms/decided | refused |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for point in points {
        let latency = point.tally.latency();
        let name = match &point.open {
            Some(open) if open.held() => format!("{} (held)", point.name),
            Some(_) => format!("{} (not held)", point.name),
            None => point.name.clone(),
        };
        println!(
            "| {name} | {:.1} | {} ms | {} ms | {} ms | {} | {} |",
            point.decided_per_sec(),
            ms(latency.p50),
            ms(latency.p95),
            ms(latency.p99),
            optional(point.cpu_ms_per_decided(), 2),
            point.tally.refused
        );
    }
    println!();
}
