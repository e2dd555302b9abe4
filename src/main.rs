//! `orderly`: one binary for every component. With no arguments it runs everything locally
//! (`orderly dev`); `orderly <component>` runs one component alone.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = orderly::Cli::parse();
    // Only a test build has fail points; this arms the ones FAILPOINTS names, for good.
    let _fail_points = orderly_common::failpoints::from_env();
    // One worker per core (at least two, so one call that blocks its thread, such as the
    // embedded broker's SQLite commit, does not stall every component `orderly dev` runs).
    // More workers than cores only hand tasks between threads: with four per core, threads
    // waking and parking each other took a third of all CPU under load, and one per core
    // decides a quarter more orders a second. TOKIO_WORKER_THREADS, when set, is tokio's.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |cores| cores.get());
        builder.worker_threads(cores.max(2));
    }
    let runtime = builder.enable_all().build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("orderly: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(orderly::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("orderly: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
