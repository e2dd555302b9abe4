//! The saga orchestrator: follows every event of each order's saga, decides its outcome, runs
//! compensations, and shows each saga's state, steps and history through SagaService, with the
//! dead letters of every consumer for operators to redrive or discard.

pub mod access;
mod core;
mod dead_letters;
mod grpc;
mod runtime;
#[cfg(test)]
mod simulation;
mod store;

use std::{path::PathBuf, time::Duration};

use clap::Args;
use orderly_common::grpc::Client;
use orderly_common::{
    Shutdown,
    component::{self, ComponentError},
    config::{Callee, Callees, DependencyArgs, ServiceConfig},
};
use orderly_proto::saga::v1::saga_service_server::{SERVICE_NAME, SagaServiceServer};
use orderly_saga::{RetryPolicy, Versions};
use tonic::service::Routes;

pub use orderly_migration_orchestrator::Migrator;

pub const NAME: &str = "orchestrator";
pub const DEFAULT_PORT: u16 = 50055;

/// The participants of the shipped saga, whose compensations the orchestrator calls (a saga
/// definition naming others gives their endpoints with `--participant`).
pub struct Calls;

impl Callees for Calls {
    const CALLEES: &'static [Callee] = &[
        Callee {
            name: "inventory",
            default_port: 50052,
        },
        Callee {
            name: "payment",
            default_port: 50053,
        },
    ];
}

#[derive(Args, Clone, Debug)]
pub struct Config {
    #[command(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    pub dependencies: DependencyArgs<Calls>,
    #[command(flatten)]
    pub saga: SagaArgs,
}

/// Which saga runs, and its defaults.
#[derive(Args, Clone, Debug)]
pub struct SagaArgs {
    /// How long a saga waits for a step to answer before it is rejected (for steps whose
    /// definition sets no timeout of their own)
    #[arg(long, env = "ORDERLY_SAGA_DEADLINE_MS", default_value_t = 30_000)]
    pub saga_deadline_ms: u64,

    /// Failed attempts of one compensation before its saga is parked for an operator (for steps
    /// whose definition sets no retry policy of their own)
    #[arg(long, env = "ORDERLY_COMPENSATION_MAX_ATTEMPTS", default_value_t = 10)]
    pub compensation_max_attempts: u32,

    /// How often the replica running deadlines and compensations looks for ones nobody told it
    /// of (at least 50), a safety net: it hears of them at once from its own consumer, and on
    /// PostgreSQL from every replica's (LISTEN/NOTIFY)
    #[arg(
        long,
        env = "ORDERLY_SAGA_RECHECK_MS",
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(50..)
    )]
    pub saga_recheck_ms: u64,

    /// How many orders' compensations run at once (each order's steps still one after
    /// another) [default: 32 on SQLite, 4 on PostgreSQL]. Each waits on a participant and a
    /// commit, so several at once keep a burst of rejected orders from queueing; on PostgreSQL
    /// they compete with the consumers for connections, row locks and CPU
    #[arg(
        long,
        env = "ORDERLY_COMPENSATIONS_AT_ONCE",
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub compensations_at_once: Option<u16>,

    /// Saga definition files (TOML, one version each; repeat for every version sagas in flight
    /// may still run under); without any, the shipped order saga
    #[arg(
        long = "saga-definition",
        env = "ORDERLY_SAGA_DEFINITIONS",
        value_delimiter = ','
    )]
    pub saga_definitions: Vec<PathBuf>,

    /// Endpoint of a participant the saga definition names beyond inventory and payment, as
    /// NAME=URL (repeatable)
    #[arg(
        long = "participant",
        env = "ORDERLY_PARTICIPANTS",
        value_delimiter = ',',
        value_parser = participant
    )]
    pub participants: Vec<(String, String)>,
}

impl Default for SagaArgs {
    fn default() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            args: SagaArgs,
        }
        Defaults::parse_from(["orchestrator"]).args
    }
}

fn participant(value: &str) -> Result<(String, String), String> {
    let (name, url) = value
        .split_once('=')
        .filter(|(name, url)| !name.is_empty() && !url.is_empty())
        .ok_or_else(|| format!("{value:?} is not NAME=URL"))?;
    Ok((name.to_owned(), url.to_owned()))
}

impl SagaArgs {
    /// The saga versions to run: the definition files, or the shipped saga.
    fn versions(&self) -> Result<Versions, ComponentError> {
        let setting = |error: String| ComponentError::Setting(error);
        if self.saga_definitions.is_empty() {
            return orderly_saga::order::versions().map_err(|error| setting(error.to_string()));
        }
        let definitions = self
            .saga_definitions
            .iter()
            .map(|path| orderly_saga::file::load(path))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| setting(error.to_string()))?;
        Versions::new(definitions).map_err(|error| setting(error.to_string()))
    }
}

/// Runs the orchestrator until `shutdown`. A saga definition that breaks a rule stops it before
/// it starts, one that names a participant with no endpoint as it starts.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<(), ComponentError> {
    let versions = config.saga.versions()?;
    let mut started =
        component::start::<Migrator>(NAME, DEFAULT_PORT, &config.service, &shutdown).await?;
    let tls = started.tls.as_ref();
    let mut clients = config.dependencies.clients(NAME, tls)?;
    for (name, url) in &config.saga.participants {
        let client = Client::new(NAME, name, url, config.dependencies.timeout(), tls)?;
        clients.push((name.clone(), client));
    }
    let participants = runtime::Participants::new(clients, &versions)
        .map_err(|error| ComponentError::Setting(error.to_string()))?;
    let definition = versions.latest().name().to_owned();
    let settings = runtime::Settings {
        versions,
        default_timeout: Duration::from_millis(config.saga.saga_deadline_ms),
        default_retry: RetryPolicy {
            max_attempts: config.saga.compensation_max_attempts.max(1),
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        },
        recheck: Duration::from_millis(config.saga.saga_recheck_ms),
        compensations_at_once: (config.saga.compensations_at_once)
            .unwrap_or_else(|| runtime::compensations_at_once(started.db.get_database_backend()))
            .into(),
    };
    let operator = runtime::start(&mut started, settings, participants, &shutdown);
    started.spawn(dead_letters::index::run(
        started.db.clone(),
        config.service.kafka.clone(),
        shutdown.clone(),
    ));
    let dead_letters = dead_letters::DeadLetters::new(started.db.clone(), started.producer.clone());
    let api = SagaServiceServer::new(grpc::SagaApi::new(
        started.db.clone(),
        operator,
        definition,
        dead_letters,
    ))
    .max_decoding_message_size(config.service.server.max_message_bytes());
    started
        .serve(
            SERVICE_NAME,
            Routes::new(api),
            access::RULES,
            &config.service,
        )
        .await
}
