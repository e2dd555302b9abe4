//! Running `orderly ctl` against a system, as an operator does.

use std::process::{Command, Output};

use super::{System, process::BIN};

/// `orderly ctl ARGS` pointed at the system's orchestrator and order service.
pub fn run(system: &System, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("ctl")
        .args(["--orchestrator", &system.addr("orchestrator").to_string()])
        .args(["--order", &system.addr("order").to_string()])
        .args(args)
        .output()
        .expect("orderly ctl runs")
}
