//! `orderly ctl`: an operator's command line over the public gRPC APIs (sagas, dead letters,
//! orders) and the broker (consumer lag), with tables for people and `--output json` for
//! scripts. It reaches a deployment the way grpcurl does: plaintext by default, TLS trusting
//! `--cacert`, a bearer token from `--token`.

mod dlq;
mod lag;
mod orders;
mod output;
mod sagas;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::secure::{Bearer, Dial};

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// The orchestrator's gRPC address (host:port)
    #[arg(
        long,
        env = "ORDERLY_CTL_ORCHESTRATOR",
        default_value = "localhost:50055"
    )]
    pub orchestrator: String,

    /// The order service's gRPC address (host:port)
    #[arg(long, env = "ORDERLY_CTL_ORDER", default_value = "localhost:50051")]
    pub order: String,

    #[command(flatten)]
    pub dial: DialArgs,

    /// Tables for people, or JSON for scripts (one object per line for `orders watch`)
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    #[command(subcommand)]
    pub command: CtlCommand,
}

/// How calls reach a deployment: TLS or not, and as whom.
#[derive(Args, Debug)]
pub struct DialArgs {
    /// CA certificate (PEM) to trust: with it, calls go over TLS (`orderly dev --secure` keeps
    /// its CA at <data-dir>/secure/ca.pem)
    #[arg(long, env = "ORDERLY_CTL_CACERT")]
    pub cacert: Option<PathBuf>,

    /// Bearer token sent with every call (an operator's, for sagas; see `orderly token`)
    #[arg(long, env = "ORDERLY_CTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl DialArgs {
    pub fn dial(&self) -> anyhow::Result<Dial> {
        Dial::new(self.cacert.as_deref(), self.token.as_deref())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Sagas: list, show one, retry or resolve a parked one
    #[command(subcommand)]
    Sagas(sagas::SagasCommand),
    /// Dead letters: list, show one, redrive them to their consumer or discard one
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Orders: watch one until it is decided
    #[command(subcommand)]
    Orders(orders::OrdersCommand),
    /// Each consumer group's lag per topic and partition, from the broker
    Lag(lag::LagArgs),
}

pub async fn run(args: CtlArgs) -> anyhow::Result<()> {
    let dial = args.dial.dial()?;
    match args.command {
        CtlCommand::Sagas(command) => {
            sagas::run(command, dial.channel(&args.orchestrator)?, args.output).await
        }
        CtlCommand::Dlq(command) => {
            dlq::run(command, dial.channel(&args.orchestrator)?, args.output).await
        }
        CtlCommand::Orders(command) => {
            orders::run(command, dial.channel(&args.order)?, args.output).await
        }
        CtlCommand::Lag(lag_args) => lag::run(lag_args, args.output).await,
    }
}

/// What every call goes through: a channel, with the token if any.
pub type CtlChannel = InterceptedService<Channel, Bearer>;

/// A refused call, as the operator reads it: the code and the server's message.
pub(crate) fn refused(what: &str, status: &tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what}: {:?}: {}", status.code(), status.message())
}
