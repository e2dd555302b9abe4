//! A benchmark shaped like real load, against running Orderly endpoints (`orderly dev`, or each
//! component on its own; `scripts/bench.sh` starts either and runs this): its own catalogue and
//! customers, a tenth of whom cannot pay, closed- and open-loop points, the CPU the system spent
//! per decided order, and a conservation check at the end. `--help` explains every flag.
//!
//!     cargo run --release --example load_bench -- [--clients 1,8,32,128] [--rates 50,200] ...

mod args;
mod check;
mod clients;
mod cpu;
mod decide;
mod load;
mod report;
mod setup;

use std::{process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Parser;

use crate::{
    args::{Args, Decisions, secs},
    clients::Clients,
    cpu::Cpu,
    decide::Decider,
    load::Ctx,
    setup::Catalogue,
};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    args.validate()?;
    let ctx = Arc::new(prepare(&args).await?);
    idle(&ctx, secs(args.idle_secs)?).await;

    let mut points = Vec::new();
    for (index, &clients) in args.clients.0.iter().enumerate() {
        let point = load::closed(&ctx, index, clients).await;
        report::print_point(&point);
        points.push(point);
    }
    let first_open = args.clients.0.len();
    for (index, &rate) in args.rates.0.iter().enumerate() {
        let point = load::open(&ctx, first_open + index, rate).await;
        report::print_point(&point);
        points.push(point);
    }
    if !points.is_empty() {
        report::print_summary(&points);
    }
    if args.markdown && !points.is_empty() {
        report::print_markdown(&points);
    }

    let differences = check::conservation(
        &ctx.clients,
        &ctx.catalogue,
        ctx.decider.placed(),
        secs(args.check_timeout_secs)?,
    )
    .await
    .context("reading the end state")?;
    // The verdict is printed already; a violation only has to fail the command.
    if check::print_verdict(&differences) {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// Connects, creates the run's catalogue and customers, and learns how decisions are observed.
async fn prepare(args: &Args) -> anyhow::Result<Ctx> {
    let call_timeout = secs(args.call_timeout_secs)?;
    let decision_timeout = secs(args.decision_timeout_secs)?;
    let clients = Clients::new(args, call_timeout)?;
    clients.wait_serving(secs(args.ready_timeout_secs)?).await?;
    let catalogue = Catalogue::plan(args.products, args.customers, args.stock, args.seed);
    let started = std::time::Instant::now();
    catalogue
        .create(&clients, args.setup_concurrency)
        .await
        .context("creating the run's products and customers")?;
    let decider = Decider::new(
        &clients,
        args.decisions,
        Duration::from_millis(args.poll_ms),
        decision_timeout,
    )
    .await;
    let cpu = Cpu::new(args.watch());
    print_setup(
        args,
        &clients,
        &catalogue,
        &decider,
        &cpu,
        started.elapsed(),
    );
    Ok(Ctx {
        clients,
        decider,
        catalogue,
        cpu,
        seed: args.seed,
        warmup: secs(args.warmup_secs)?,
        open_warmup: secs(args.open_warmup_secs)?,
        window: secs(args.secs)?,
        drain: secs(args.drain_secs)?,
        hold_grace: secs(args.hold_grace_secs)?,
        order_bound: call_timeout + decision_timeout,
    })
}

fn print_setup(
    args: &Args,
    clients: &Clients,
    catalogue: &Catalogue,
    decider: &Decider,
    cpu: &Cpu,
    took: Duration,
) {
    for (name, url) in clients.endpoints() {
        println!("{name:<13} {url}");
    }
    let cannot_pay = catalogue
        .customers
        .iter()
        .filter(|c| c.deposit == 0)
        .count();
    println!(
        "setup         {} products ({} units each), {} customers ({cannot_pay} cannot pay), prefix {}, seed {}, in {took:.1?}",
        catalogue.products.len(),
        args.stock,
        catalogue.customers.len(),
        catalogue.prefix,
        args.seed
    );
    let why = match (args.decisions, decider.watches()) {
        (Decisions::Poll, _) => " (--decisions poll)",
        (Decisions::Auto, true) => "",
        (Decisions::Auto, false) => " (WatchOrder answered UNIMPLEMENTED: an older Orderly)",
    };
    println!("decisions     {}{why}", decider.method());
    println!("cpu of        {}", cpu.describe());
    println!();
}

/// What the processes under test cost while nothing is offered: with nothing to do they should
/// cost nothing.
async fn idle(ctx: &Ctx, length: Duration) {
    if length.is_zero() {
        return;
    }
    // Let the setup's own work (events, commits) settle first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = ctx.cpu.sample();
    tokio::time::sleep(length).await;
    let usage = ctx.cpu.usage(&before, &ctx.cpu.sample());
    if usage.processes == 0 {
        println!(
            "idle          not measured: none of the {} found",
            ctx.cpu.describe()
        );
    } else {
        println!(
            "idle          {:.2} cores over {:.1} s ({}), nothing offered",
            usage.cores(),
            usage.wall_secs,
            report::processes(usage.processes)
        );
    }
    println!();
}
