//! `orderly dev`: the whole system in one process (embedded broker, four services, orchestrator,
//! query side), each server on its own port, seeded with demo data so the README walk-through
//! works at once.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Args;
use orderly_broker::BrokerArgs;
use orderly_common::{
    Shutdown,
    auth::{self, Role},
    component::ComponentError,
    config::{self, DatabaseArgs, KafkaArgs, ServerArgs, ServiceConfig, SqliteSync},
    kafka::EventProducer,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{
    components::{self, Component, InDev},
    secure::{self, Dial},
    seed,
};

/// Long enough to seed the demo data.
const SEED_TOKEN_TTL: Duration = Duration::from_secs(600);

#[derive(Args, Clone, Debug)]
pub struct DevArgs {
    /// Directory for every component's SQLite database and the broker's storage
    #[arg(long, env = "ORDERLY_DATA_DIR", default_value = "orderly-data")]
    pub data_dir: PathBuf,

    /// Address every server binds
    #[arg(long, env = "ORDERLY_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    #[arg(long, env = "ORDERLY_ORDER_PORT", default_value_t = orderly_order::DEFAULT_PORT)]
    pub order_port: u16,
    #[arg(long, env = "ORDERLY_INVENTORY_PORT", default_value_t = orderly_inventory::DEFAULT_PORT)]
    pub inventory_port: u16,
    #[arg(long, env = "ORDERLY_PAYMENT_PORT", default_value_t = orderly_payment::DEFAULT_PORT)]
    pub payment_port: u16,
    #[arg(long, env = "ORDERLY_NOTIFICATION_PORT", default_value_t = orderly_notification::DEFAULT_PORT)]
    pub notification_port: u16,
    #[arg(long, env = "ORDERLY_ORCHESTRATOR_PORT", default_value_t = orderly_orchestrator::DEFAULT_PORT)]
    pub orchestrator_port: u16,
    #[arg(long, env = "ORDERLY_QUERY_PORT", default_value_t = orderly_query::DEFAULT_PORT)]
    pub query_port: u16,
    #[arg(long, env = "ORDERLY_BROKER_PORT", default_value_t = 9092)]
    pub broker_port: u16,

    /// Use this Kafka instead of starting the embedded broker
    #[arg(long, env = "ORDERLY_KAFKA_BOOTSTRAP")]
    pub kafka_bootstrap: Option<String>,

    /// Longest a consumer's fetch waits for data when there is none; a fetch is answered as soon
    /// as data arrives, so this bounds idle fetches per second, not latency (but for a partition
    /// newly assigned, which waits for the fetch in flight)
    #[arg(long, env = "ORDERLY_KAFKA_FETCH_WAIT_MAX_MS", default_value_t = config::FETCH_WAIT_MAX_MS)]
    pub kafka_fetch_wait_max_ms: u32,

    /// How long the producer waits to fill a batch before sending it; each hop of a saga waits
    /// up to this long (0: at once; under load batches still fill while one is in flight)
    #[arg(long, env = "ORDERLY_KAFKA_LINGER_MS", default_value_t = config::LINGER_MS)]
    pub kafka_linger_ms: u32,

    #[command(flatten)]
    pub saga: orderly_orchestrator::SagaArgs,

    /// SQLite commits: `full` syncs each commit to disk (an acknowledged write survives a power
    /// cut); `normal` is faster and a power cut can lose the last acknowledged writes
    #[arg(long, env = "ORDERLY_SQLITE_SYNC", value_enum, default_value_t = SqliteSync::Full)]
    pub sqlite_sync: SqliteSync,

    /// Skip creating the demo products and customer accounts
    #[arg(long)]
    pub no_seed: bool,

    /// TLS on every server, mutual between the components, and callers authenticated with
    /// tokens (`orderly token`), from a throwaway CA and token issuer kept under
    /// <data-dir>/secure/ (clients trust <data-dir>/secure/ca.pem: `grpcurl -cacert`)
    #[arg(long, env = "ORDERLY_SECURE")]
    pub secure: bool,

    /// With --secure: requests a second each token subject may send, 0 for no limit (a bulk
    /// import as one subject)
    #[arg(long, env = "ORDERLY_RATE_LIMIT_PER_SEC", default_value_t = auth::RATE_LIMIT_PER_SEC)]
    pub rate_limit_per_sec: u32,

    /// With --secure: requests a token subject may send at once, above its rate
    #[arg(long, env = "ORDERLY_RATE_LIMIT_BURST", default_value_t = auth::RATE_LIMIT_BURST)]
    pub rate_limit_burst: u32,
}

impl Default for DevArgs {
    fn default() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            args: DevArgs,
        }
        Defaults::parse_from(["orderly"]).args
    }
}

/// A component of the dev process, for the endpoint table.
struct Endpoint {
    component: &'static Component,
    addr: SocketAddr,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    orderly_broker::configure_sqlite().await?;
    let shutdown = Shutdown::on_signals();
    // The broker outlives the services so they can finish publishing while they drain.
    let stop_broker = CancellationToken::new();
    let mut broker = JoinSet::new();
    let bootstrap = match &args.kafka_bootstrap {
        Some(bootstrap) => bootstrap.clone(),
        None => {
            let broker_args = BrokerArgs {
                sqlite_sync: args.sqlite_sync,
                ..BrokerArgs::new(
                    SocketAddr::new(args.host, args.broker_port),
                    args.data_dir.clone(),
                )
            };
            let (bootstrap, stop) = (broker_args.listen_addr.to_string(), stop_broker.clone());
            broker.spawn(
                async move { orderly_broker::run(&broker_args, stop.cancelled_owned()).await },
            );
            bootstrap
        }
    };

    if args.kafka_bootstrap.is_none() {
        wait_for_broker(&bootstrap, &mut broker).await?;
    }
    let endpoints = endpoints(&args);
    let authority = args
        .secure
        .then(|| secure::Authority::open(&args.data_dir.join("secure")))
        .transpose()?;
    let dial = match &authority {
        Some(authority) => {
            // dev seeds its demo data as the catalogue and finance would.
            let roles = [Role::Catalog, Role::Finance];
            let token = (authority.token_issuer()?).token("orderly-dev", &roles, SEED_TOKEN_TTL)?;
            Dial::new(Some(&authority.ca()), Some(&token))?
        }
        None => Dial::default(),
    };
    let addrs: Vec<(&'static str, SocketAddr)> = endpoints
        .iter()
        .map(|endpoint| (endpoint.component.name, endpoint.addr))
        .collect();
    let kafka = KafkaArgs {
        event_keys: (authority.as_ref().map(secure::Authority::event_keys)).transpose()?,
        kafka_fetch_wait_max_ms: args.kafka_fetch_wait_max_ms,
        kafka_linger_ms: args.kafka_linger_ms,
        ..KafkaArgs::at(bootstrap.clone())
    };
    // One Kafka producer for the whole process, not one per component.
    let producer = EventProducer::new(&kafka)?;
    let mut services: JoinSet<(&'static str, Result<(), ComponentError>)> = JoinSet::new();
    for endpoint in &endpoints {
        let mut server = ServerArgs::on(endpoint.addr);
        if let Some(authority) = &authority {
            server.tls = authority.issue(endpoint.component.name)?.into();
            server.auth.auth_jwks = Some(authority.jwks().display().to_string());
            server.auth.rate_limit_per_sec = args.rate_limit_per_sec;
            server.auth.rate_limit_burst = args.rate_limit_burst;
        }
        let in_dev = InDev {
            service: ServiceConfig {
                server,
                database: DatabaseArgs {
                    sqlite_sync: args.sqlite_sync,
                    ..DatabaseArgs::in_dir(args.data_dir.clone())
                },
                kafka: kafka.clone(),
                shared_producer: Some(producer.clone()),
            },
            addrs: addrs.clone(),
            saga: args.saga.clone(),
            shutdown: shutdown.clone(),
        };
        let component = endpoint.component;
        let running = (component.run_in_dev)(in_dev);
        services.spawn(async move { (component.name, running.await) });
    }

    tokio::select! {
        biased;
        () = shutdown.requested() => {}
        ready = seed::wait_until_serving(endpoints.iter().map(|e| e.addr), Duration::from_secs(60), &dial) => {
            ready.context("waiting for the servers to start")?;
        }
        Some(failed) = services.join_next() => return stopped_early(failed),
        Some(stopped) = broker.join_next() => return Err(broker_stopped(stopped)),
    }
    if !args.no_seed && !shutdown.is_triggered() {
        let addr = |name| {
            addrs
                .iter()
                .find(|(component, _)| *component == name)
                .map(|(_, addr)| *addr)
        };
        let (Some(inventory), Some(payment)) =
            (addr(orderly_inventory::NAME), addr(orderly_payment::NAME))
        else {
            bail!("dev runs inventory and payment");
        };
        seed::demo_data(inventory, payment, &dial)
            .await
            .context("seeding demo data")?;
    }
    print_table(&args, &endpoints, &bootstrap);

    // Run until a signal, or until a component fails on its own.
    let mut first_error = None;
    tokio::select! {
        biased;
        () = shutdown.requested() => {}
        Some(failed) = services.join_next() => {
            first_error = stopped_early(failed).err();
            shutdown.trigger();
        }
        Some(stopped) = broker.join_next() => {
            first_error = Some(broker_stopped(stopped));
            shutdown.trigger();
        }
    }
    while let Some(joined) = services.join_next().await {
        if let Ok((component, Err(error))) = joined {
            tracing::error!(component, %error, "stopped with an error");
        }
    }
    // Released before the broker stops: a producer released loses its connection quietly.
    drop(producer);
    stop_broker.cancel();
    while broker.join_next().await.is_some() {}
    first_error.map_or(Ok(()), Err)
}

fn stopped_early(
    joined: Result<(&'static str, Result<(), ComponentError>), tokio::task::JoinError>,
) -> anyhow::Result<()> {
    match joined {
        Ok((component, Ok(()))) => bail!("{component} stopped unexpectedly"),
        Ok((component, Err(error))) => Err(anyhow::Error::new(error).context(component)),
        Err(error) => bail!("a component panicked: {error}"),
    }
}

/// Waits until the embedded broker accepts connections, so the services' first connections
/// succeed instead of logging refusals.
async fn wait_for_broker(
    bootstrap: &str,
    broker: &mut JoinSet<Result<(), orderly_broker::BrokerError>>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(bootstrap).await.is_err() {
        if let Some(stopped) = broker.try_join_next() {
            return Err(broker_stopped(stopped));
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the embedded broker did not listen on {bootstrap} within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn broker_stopped(
    joined: Result<Result<(), orderly_broker::BrokerError>, tokio::task::JoinError>,
) -> anyhow::Error {
    match joined {
        Ok(Ok(())) => anyhow::anyhow!("embedded broker stopped unexpectedly"),
        Ok(Err(error)) => anyhow::Error::new(error).context("embedded broker"),
        Err(error) => anyhow::anyhow!("embedded broker panicked: {error}"),
    }
}

/// Every component of the registry on its port (its flag here, else its default).
fn endpoints(args: &DevArgs) -> Vec<Endpoint> {
    let flags = [
        (orderly_order::NAME, args.order_port),
        (orderly_inventory::NAME, args.inventory_port),
        (orderly_payment::NAME, args.payment_port),
        (orderly_notification::NAME, args.notification_port),
        (orderly_orchestrator::NAME, args.orchestrator_port),
        (orderly_query::NAME, args.query_port),
    ];
    components::ALL
        .iter()
        .map(|component| {
            let flag = flags.iter().find(|(name, _)| *name == component.name);
            let port = flag.map_or(component.default_port, |(_, port)| *port);
            Endpoint {
                component,
                addr: SocketAddr::new(args.host, port),
            }
        })
        .collect()
}

fn print_table(args: &DevArgs, endpoints: &[Endpoint], bootstrap: &str) {
    let data_dir = std::path::absolute(&args.data_dir).unwrap_or_else(|_| args.data_dir.clone());
    println!("\nOrderly is running. Data: {}\n", data_dir.display());
    println!("  {:<14} {:<22} api", "component", "endpoint");
    for endpoint in endpoints {
        println!(
            "  {:<14} {:<22} {}",
            endpoint.component.name,
            endpoint.addr.to_string(),
            endpoint.component.api
        );
    }
    let broker = if args.kafka_bootstrap.is_some() {
        "kafka (external)"
    } else {
        "kafka (embedded)"
    };
    println!("  {:<14} {:<22} {}", "broker", bootstrap, broker);
    if args.secure {
        let ca = data_dir.join("secure").join("ca.pem");
        let port = args.order_port;
        let data = args.data_dir.display();
        println!(
            "\nTLS on, callers need a token. Try:\n  grpcurl -cacert {} localhost:{port} list\n  \
             TOKEN=$(orderly token --data-dir {data} --subject alice --role customer)\n  \
             grpcurl -cacert {} -H \"authorization: Bearer $TOKEN\" -d '{{\"customer_id\": \"alice\"}}' \
             localhost:{port} orderly.order.v1.OrderService/ListOrders",
            ca.display(),
            ca.display()
        );
    } else {
        println!(
            "\nTry: grpcurl -plaintext localhost:{} list",
            args.order_port
        );
    }
    println!("Stop with Ctrl-C.\n");
}
