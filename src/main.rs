//! `orderly`: one binary for every component. With no arguments it runs everything locally
//! (`orderly dev`); `orderly <component>` runs one component alone.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = orderly::Cli::parse();
    // Only a test build has fail points; this arms the ones FAILPOINTS names, for good.
    let _fail_points = orderly_common::failpoints::from_env();
    // librdkafka's consumer close and the embedded broker's SQLite calls block their thread;
    // a few threads more than cores keep one blocked call from stalling every component that
    // `orderly dev` runs in this process.
    let threads = std::thread::available_parallelism()
        .map_or(2, |cores| cores.get())
        .max(2)
        * 4;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build();
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
