//! The `orderly` command line: parses flags and environment, then starts the chosen component.
//! A library, so tests and benchmarks can start the same things the binary does.

pub mod components;
mod ctl;
mod dev;
mod migrate;
mod rebuild;
mod saga;
pub mod secure;
mod seed;

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use orderly_broker::BrokerArgs;
use orderly_common::{
    Shutdown,
    telemetry::{self, LogFormat, LogsTo},
};

pub use dev::DevArgs;

/// The embedded broker logs expected conditions (a topic that already exists) as errors; keep its
/// crates quiet unless RUST_LOG asks for them.
const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,tansu_broker=off,tansu_storage=off,tansu_service=off,tansu_sans_io=off,tansu_schema=off";
pub use migrate::MigrateArgs;

/// Orderly: order sagas over gRPC and Kafka. Every flag can also be set with the
/// `ORDERLY_*` environment variable shown in its help.
#[derive(Debug, Parser)]
#[command(name = "orderly", version, about, long_about = None)]
pub struct Cli {
    /// Log output format
    #[arg(long, global = true, env = "ORDERLY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Address of this process's Prometheus endpoint (`/metrics`), or `off`
    #[arg(long, global = true, env = "ORDERLY_METRICS_ADDR", default_value = "127.0.0.1:9464", value_parser = parse_metrics_addr)]
    pub metrics_addr: MetricsAddr,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: broker, the four services and the orchestrator (default)
    Dev(DevArgs),
    /// Run the embedded Kafka-compatible broker alone
    Broker(BrokerArgs),
    /// Run the order service
    Order(orderly_order::Config),
    /// Run the inventory service
    Inventory(orderly_inventory::Config),
    /// Run the payment service
    Payment(orderly_payment::Config),
    /// Run the notification service
    Notification(orderly_notification::Config),
    /// Run the saga orchestrator
    Orchestrator(orderly_orchestrator::Config),
    /// Run the query side: the read model of orders and its projection
    Query(orderly_query::Config),
    /// Apply database migrations and exit
    Migrate(MigrateArgs),
    /// List the components: name, default port, API and the components each calls
    Components,
    /// Print a token signed by the issuer of `orderly dev --secure` (for grpcurl's
    /// `-H 'authorization: Bearer <token>'`)
    Token(secure::TokenArgs),
    /// Operate a running deployment over its public APIs: sagas (list, show, retry, resolve),
    /// dead letters, consumer lag and orders (watch)
    Ctl(ctl::CtlArgs),
    /// Rebuild the query side's read model from the topics, beside the one reads use, and
    /// follow it (a progress bar with rate and ETA) until reads switch to it
    Rebuild(rebuild::RebuildArgs),
    /// Check saga definition files (TOML, one version each) as the orchestrator would, and
    /// print each version's steps
    Saga {
        /// The definition files
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

/// Where `/metrics` is served, if anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsAddr {
    Off,
    At(SocketAddr),
}

fn parse_metrics_addr(value: &str) -> Result<MetricsAddr, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(MetricsAddr::Off);
    }
    value
        .parse()
        .map(MetricsAddr::At)
        .map_err(|_| format!("expected host:port (e.g. 0.0.0.0:9464) or `off`, got {value:?}"))
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli
        .command
        .unwrap_or_else(|| Command::Dev(DevArgs::default()));
    let process = process_name(&command);
    // Commands that answer on stdout keep their logs off it.
    let logs_to = match command {
        Command::Ctl(_)
        | Command::Rebuild(_)
        | Command::Token(_)
        | Command::Components
        | Command::Saga { .. } => LogsTo::Stderr,
        _ => LogsTo::Stdout,
    };
    let telemetry = telemetry::init(cli.log_format, DEFAULT_LOG_FILTER, &process, logs_to)
        .map_err(anyhow::Error::msg)?;
    let serves_metrics = !matches!(
        command,
        Command::Migrate(_)
            | Command::Broker(_)
            | Command::Components
            | Command::Token(_)
            | Command::Saga { .. }
            | Command::Ctl(_)
            | Command::Rebuild(_)
    );
    if let (MetricsAddr::At(addr), true) = (cli.metrics_addr, serves_metrics) {
        orderly_common::metrics::serve(addr)
            .with_context(|| format!("cannot serve metrics on {addr} (ORDERLY_METRICS_ADDR)"))?;
    }
    let result = run_command(command).await;
    telemetry.shutdown().await;
    result
}

/// The `service.name` of spans that name no component.
fn process_name(command: &Command) -> String {
    let component = match command {
        Command::Dev(_) => return "orderly".to_owned(),
        Command::Broker(_) => "broker",
        Command::Order(_) => orderly_order::NAME,
        Command::Inventory(_) => orderly_inventory::NAME,
        Command::Payment(_) => orderly_payment::NAME,
        Command::Notification(_) => orderly_notification::NAME,
        Command::Orchestrator(_) => orderly_orchestrator::NAME,
        Command::Query(_) => orderly_query::NAME,
        Command::Migrate(_) => "migrate",
        Command::Components => "components",
        Command::Token(_) => "token",
        Command::Saga { .. } => "saga",
        Command::Ctl(_) => "ctl",
        Command::Rebuild(_) => "rebuild",
    };
    telemetry::service_name(component)
}

async fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dev(args) => dev::run(args).await,
        Command::Broker(args) => {
            let shutdown = Shutdown::on_signals();
            orderly_broker::run(&args, shutdown.requested())
                .await
                .context("broker")
        }
        Command::Order(config) => orderly_order::run(&config, Shutdown::on_signals())
            .await
            .context("order service"),
        Command::Inventory(config) => orderly_inventory::run(&config, Shutdown::on_signals())
            .await
            .context("inventory service"),
        Command::Payment(config) => orderly_payment::run(&config, Shutdown::on_signals())
            .await
            .context("payment service"),
        Command::Notification(config) => orderly_notification::run(&config, Shutdown::on_signals())
            .await
            .context("notification service"),
        Command::Orchestrator(config) => orderly_orchestrator::run(&config, Shutdown::on_signals())
            .await
            .context("orchestrator"),
        Command::Query(config) => orderly_query::run(&config, Shutdown::on_signals())
            .await
            .context("query side"),
        Command::Migrate(args) => migrate::run(args).await,
        Command::Components => {
            components::print();
            Ok(())
        }
        Command::Saga { files } => saga::check(&files),
        Command::Token(args) => secure::print_token(&args),
        Command::Ctl(args) => ctl::run(args).await,
        Command::Rebuild(args) => rebuild::run(args).await,
    }
}
