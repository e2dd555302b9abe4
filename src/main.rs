//! `orderly`: one binary for every component. With no arguments it runs everything locally
//! (`orderly dev`); `orderly <component>` runs one component alone.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = orderly::Cli::parse();
    match orderly::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("orderly: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
