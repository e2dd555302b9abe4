//! What every component does: open and migrate its database, make sure the Kafka topics exist,
//! publish its outbox, run its consumers, watch that both keep flowing (health and metrics), and
//! serve gRPC until shutdown, then drain.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use sea_orm::{DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;
use tokio::{net::TcpListener, sync::Notify, task::JoinSet};
use tonic::service::Routes;

use crate::{
    Shutdown,
    auth::{AuthLayer, RateLimits, Rules, Verifier},
    config::{KafkaArgs, ServiceConfig},
    db,
    grpc::{self, GrpcServer},
    health::Health,
    idempotency,
    kafka::{EventProducer, topics},
    lease::{self, Lease},
    messaging::{EventConsumer, Handler, Relay, inbox, watch},
    tls::Tls,
};

/// How long processed event ids are remembered; redeliveries arrive within minutes.
const INBOX_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a component could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("grpc server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error(transparent)]
    Kafka(#[from] crate::kafka::KafkaError),
    #[error(transparent)]
    Config(#[from] crate::grpc::InvalidEndpoint),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Auth(#[from] crate::auth::TokenError),
    #[error("{0}")]
    Setting(String),
}

/// A started component: its database, its gRPC listener and its messaging.
pub struct Started {
    pub name: &'static str,
    pub db: DatabaseConnection,
    pub listener: TcpListener,
    /// The TLS its server and its clients use, if on.
    pub tls: Option<Tls>,
    /// Checks callers' tokens, if auth is on.
    verifier: Option<Verifier>,
    pub producer: EventProducer,
    /// Wake it after committing outbox rows.
    pub relay: Relay,
    /// Report faults here; gRPC health answers from it.
    pub health: Health,
    /// How long work may stand still before health reports it (`--stuck-after-ms`).
    pub stuck_after: Duration,
    /// This process as the holder of leases on background work (see [`lease::holder_id`]).
    pub holder: String,
    /// Held by the replica that publishes the outbox, which also prunes what is kept for a time.
    housekeeping: Lease,
    kafka: KafkaArgs,
    shutdown: Shutdown,
    background: JoinSet<()>,
}

/// Opens the component's database (migrating it), binds its gRPC port and starts its outbox
/// relay, the outbox watcher and inbox pruning.
pub async fn start<M: MigratorTrait>(
    name: &'static str,
    default_port: u16,
    config: &ServiceConfig,
    shutdown: &Shutdown,
) -> Result<Started, ComponentError> {
    let tls = Tls::start(name, &config.server.tls)?;
    let reload_every = Duration::from_secs(config.server.tls.tls_reload_secs);
    let ca = config.server.tls.tls_ca.as_deref();
    let verifier = Verifier::start(&config.server.auth, ca, reload_every).await?;
    let url = config.database.url_for(name);
    let db = db::connect_and_migrate_when_up::<M>(&url, config.database.pool(), shutdown).await?;
    let listener = grpc::bind(config.server.listen_addr_or(default_port)).await?;
    let producer = match &config.shared_producer {
        Some(shared) => shared.clone(),
        None => EventProducer::new(&config.kafka)?,
    };
    let mut background = JoinSet::new();
    let holder = lease::holder_id(listener.local_addr()?.port());
    let (relay, housekeeping, relay_task) = Relay::start(
        name,
        db.clone(),
        producer.clone(),
        holder.clone(),
        shutdown.clone(),
    );
    background.spawn(async move {
        let _ = relay_task.await;
    });
    let health = Health::new(name);
    if let Some(addr) = config.server.health_listen_addr {
        let probes = grpc::bind(addr).await?;
        background.spawn(grpc::serve_health_alone(
            probes,
            health.clone(),
            shutdown.clone(),
        ));
    }
    let stuck_after = config.server.stuck_after();
    background.spawn(watch::outbox(
        watch::Outbox {
            component: name,
            db: db.clone(),
            publisher: housekeeping.clone(),
            relay: relay.clone(),
        },
        health.clone(),
        stuck_after,
        shutdown.clone(),
    ));
    let inbox_db = db.clone();
    background.spawn(prune_hourly(
        "inbox entries",
        Box::new(move || {
            let db = inbox_db.clone();
            Box::pin(async move { inbox::prune(&db, crate::time::now() - INBOX_RETENTION).await })
        }),
        housekeeping.clone(),
        shutdown.clone(),
    ));
    let (kafka, topics_shutdown) = (config.kafka.clone(), shutdown.clone());
    background.spawn(async move {
        if topics::ensure_with_retry(&kafka, &topics::all(), &topics_shutdown).await {
            tracing::debug!(component = name, "kafka topics ready");
        }
    });
    Ok(Started {
        name,
        db,
        listener,
        tls,
        verifier,
        producer,
        relay,
        health,
        kafka: config.kafka.clone(),
        stuck_after,
        holder,
        housekeeping,
        shutdown: shutdown.clone(),
        background,
    })
}

impl Started {
    /// Runs `handler` on `topics` in the background, as consumer group `name`, once the topics
    /// exist (those outside Orderly's own, a saga participant's, are created with their
    /// dead-letter topics), and watches the group's lag.
    pub fn consume<H: Handler>(
        &mut self,
        name: &'static str,
        topics: impl IntoIterator<Item = impl AsRef<str>>,
        handler: H,
    ) {
        let topics: Arc<[String]> = topics
            .into_iter()
            .map(|topic| topic.as_ref().to_owned())
            .collect();
        let mut needed = topics::all();
        for topic in topics.iter() {
            for name in [topic.clone(), topics::dead_letter(topic)] {
                if !needed.contains(&name) {
                    needed.push(name);
                }
            }
        }
        let consumer = EventConsumer {
            name,
            topics: topics.clone(),
            db: self.db.clone(),
            handler,
            relay: self.relay.clone(),
            producer: self.producer.clone(),
            member: crate::kafka::Member::default(),
        };
        let (kafka, shutdown) = (self.kafka.clone(), self.shutdown.clone());
        let rejoin = Arc::new(Notify::new());
        let lag_watcher = watch::consumer_lag(
            watch::Watched {
                group: name,
                member: consumer.member.clone(),
                rejoin: rejoin.clone(),
            },
            self.health.clone(),
            self.stuck_after,
            shutdown.clone(),
        );
        self.background.spawn(async move {
            if !topics::ensure_with_retry(&kafka, &needed, &shutdown).await {
                return;
            }
            if let Err(error) = consumer.run(&kafka, rejoin, shutdown).await {
                tracing::error!(consumer = name, %error, "consumer stopped");
            }
        });
        self.background.spawn(lag_watcher);
    }

    /// Forgets idempotency keys older than `ttl`, hourly (for a component whose requests take
    /// keys, with the shared `idempotency_keys` table).
    pub fn prune_idempotency_keys(&mut self, ttl: Duration) {
        let db = self.db.clone();
        self.background.spawn(prune_hourly(
            "idempotency keys",
            Box::new(move || {
                let db = db.clone();
                Box::pin(async move { idempotency::prune(&db, idempotency::kept_since(ttl)).await })
            }),
            self.housekeeping.clone(),
            self.shutdown.clone(),
        ));
    }

    /// The lease of the replica that publishes the outbox and does the component's other
    /// one-at-a-time background work.
    pub fn housekeeping(&self) -> Lease {
        self.housekeeping.clone()
    }

    /// Runs `task` in the background until shutdown; `serve` waits for it when draining.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.background.spawn(task);
    }

    /// Serves `routes` (whose callers `rules` names, when auth is on) until shutdown, then waits
    /// for consumers and the relay to finish and flushes the producer.
    pub async fn serve(
        mut self,
        service_name: &'static str,
        routes: Routes,
        rules: Rules,
        config: &ServiceConfig,
    ) -> Result<(), ComponentError> {
        let auth = AuthLayer::new(
            self.verifier.clone(),
            service_name,
            rules,
            config.server.auth.reflection,
            RateLimits::new(
                config.server.auth.rate_limit_per_sec,
                config.server.auth.rate_limit_burst,
            ),
        );
        let served = GrpcServer::new(self.name, service_name, routes, self.health.clone(), auth)
            .serve(
                self.listener,
                self.tls.clone(),
                &config.server,
                self.shutdown.clone(),
            )
            .await;
        self.shutdown.trigger();
        // Consumers and the relay stop at their next step; one stuck on an unreachable broker
        // is abandoned after the grace period (its work is redone after restart).
        let drained = tokio::time::timeout(config.server.shutdown_grace(), async {
            while self.background.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            tracing::warn!("background work still running after the grace period, stopping it");
            self.background.abort_all();
        }
        let producer = self.producer.clone();
        let flushed =
            tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(5))).await;
        if let Ok(Err(error)) = flushed {
            tracing::warn!(%error, "producer not flushed on shutdown");
        }
        Ok(served?)
    }
}

/// Deletes rows past their retention with `prune`, hourly, in the replica that publishes the
/// outbox (the rows are shared by all replicas: one pruning is enough). Not fenced: a former
/// holder deleting the same old rows changes nothing.
async fn prune_hourly(
    what: &'static str,
    prune: Box<dyn Fn() -> BoxFuture<'static, Result<u64, DbErr>> + Send>,
    mut lease: Lease,
    shutdown: Shutdown,
) {
    loop {
        if lease.fence().is_some() {
            match prune().await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "old {what} removed"),
                Err(error) => tracing::warn!(%error, "cannot prune old {what}"),
            }
        }
        tokio::select! {
            () = shutdown.requested() => return,
            () = lease.changed() => {}
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}
