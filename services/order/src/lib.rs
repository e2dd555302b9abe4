//! The order service: the public entry point of the saga. It stores orders with their
//! server-side prices and surfaces each order's state: PENDING, then CONFIRMED or REJECTED,
//! to a poll (GetOrder) or as a stream that ends with the decision (WatchOrder).

pub mod access;
mod admission;
mod domain;
mod events;
mod grpc;
mod place;
mod store;
mod watch;

use std::time::Duration;

use clap::Args;
use orderly_common::{
    Shutdown,
    component::{self, ComponentError},
    config::{Callee, Callees, DependencyArgs, ServiceConfig},
    group_commit::GroupCommit,
    idempotency::IdempotencyArgs,
};
use orderly_proto::order::v1::order_service_server::{OrderServiceServer, SERVICE_NAME};
use tonic::service::Routes;

pub use orderly_migration_order::Migrator;

pub const NAME: &str = "order";
pub const DEFAULT_PORT: u16 = 50051;
pub const DEFAULT_WATCH_RECHECK_MS: u64 = 2_000;
pub const DEFAULT_ADMISSION_MAX_WAIT_MS: u64 = 5_000;
pub const DEFAULT_ADMISSION_FLOOR: u64 = 200;

/// Whom PlaceOrder asks about what its projections have not learnt yet: inventory for prices,
/// payment for accounts.
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
    /// How often a WatchOrder stream reads its order again while it waits (at least 50), a
    /// safety net: streams learn of a decision at once, from the replica that applied it on
    /// PostgreSQL (LISTEN/NOTIFY), and from this process's own consumer on SQLite
    #[arg(
        long,
        env = "ORDERLY_WATCH_RECHECK_MS",
        default_value_t = DEFAULT_WATCH_RECHECK_MS,
        value_parser = clap::value_parser!(u64).range(50..)
    )]
    pub watch_recheck_ms: u64,

    /// PlaceOrder refuses new orders (RESOURCE_EXHAUSTED, with a retry hint) while the orders
    /// already waiting would take longer than this to be decided at the measured rate; keep it
    /// well under the saga deadline. 0 turns the check off
    #[arg(long, env = "ORDERLY_ADMISSION_MAX_WAIT_MS", default_value_t = DEFAULT_ADMISSION_MAX_WAIT_MS)]
    pub admission_max_wait_ms: u64,

    /// Orders that may always wait for a decision, whatever the measured rate
    #[arg(long, env = "ORDERLY_ADMISSION_FLOOR", default_value_t = DEFAULT_ADMISSION_FLOOR)]
    pub admission_floor: u64,

    #[command(flatten)]
    pub idempotency: IdempotencyArgs,
}

/// Runs the order service until `shutdown`.
pub async fn run(config: &Config, shutdown: Shutdown) -> Result<(), ComponentError> {
    let mut started =
        component::start::<Migrator>(NAME, DEFAULT_PORT, &config.service, &shutdown).await?;
    let clients = config.dependencies.clients(NAME, started.tls.as_ref())?;
    let Ok([(_, inventory), (_, payment)]) = <[_; 2]>::try_from(clients) else {
        return Err(ComponentError::Setting(
            "order calls inventory and payment".into(),
        ));
    };
    let watchers = watch::Watchers {
        hub: watch::Hub::default(),
        recheck: Duration::from_millis(config.watch_recheck_ms),
        shutdown: shutdown.clone(),
    };
    // The consumer wakes the API's WatchOrder streams once it committed an order's outcome.
    let reactions = events::Reactions {
        watchers: watchers.hub.clone(),
    };
    started.consume(events::CONSUMER, events::TOPICS.iter(), reactions);
    // On PostgreSQL, so are the streams of every other replica.
    started.spawn(watch::decided_elsewhere(
        started.db.clone(),
        watchers.hub.clone(),
        shutdown.clone(),
    ));
    let admission = admission::Admission::new(admission::Limits {
        max_wait: Duration::from_millis(config.admission_max_wait_ms),
        floor: config.admission_floor,
    });
    started.spawn(
        admission
            .clone()
            .sample(started.db.clone(), shutdown.clone()),
    );
    let placer = place::Placer {
        db: started.db.clone(),
        writer: GroupCommit::start(started.db.clone()),
        relay: started.relay.clone(),
        admission,
        inventory,
        payment,
        known_customers: place::known_customers(),
        keys_ttl: config.idempotency.ttl(),
    };
    let api = OrderServiceServer::new(grpc::OrderApi::new(placer, watchers))
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
