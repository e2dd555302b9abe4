//! Configuration shared by every component, in layers: defaults, `ORDERLY_*` environment, flags.
//! Each component flattens the groups it needs into its own `clap` arguments.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

// Defaults shared by the flags and by configs built in code (`orderly dev`, tests).
const REQUEST_TIMEOUT_MS: u64 = 10_000;
const CONCURRENCY_LIMIT: usize = 1024;
const SHUTDOWN_GRACE_SECS: u64 = 20;
const FETCH_WAIT_MAX_MS: u32 = 500;
const LINGER_MS: u32 = 2;
const PARTITIONS: i32 = 3;
const REPLICATION_FACTOR: i32 = 1;
const DEPENDENCY_TIMEOUT_MS: u64 = 2_000;
const STUCK_AFTER_MS: u64 = 60_000;

/// How a component's gRPC server listens and protects itself.
#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    /// Address the gRPC server listens on [default: 127.0.0.1 and the component's port]
    #[arg(long, env = "ORDERLY_LISTEN_ADDR")]
    pub listen_addr: Option<SocketAddr>,

    /// Requests running longer than this are cancelled with DEADLINE_EXCEEDED
    #[arg(long, env = "ORDERLY_REQUEST_TIMEOUT_MS", default_value_t = REQUEST_TIMEOUT_MS)]
    pub request_timeout_ms: u64,

    /// Requests in flight at once, over all connections; beyond it new requests are shed with
    /// UNAVAILABLE
    #[arg(long, env = "ORDERLY_CONCURRENCY_LIMIT", default_value_t = CONCURRENCY_LIMIT)]
    pub concurrency_limit: usize,

    /// On SIGTERM, how long in-flight work may take to drain before the process exits
    #[arg(long, env = "ORDERLY_SHUTDOWN_GRACE_SECS", default_value_t = SHUTDOWN_GRACE_SECS)]
    pub shutdown_grace_secs: u64,

    /// Health turns NOT_SERVING when a consumer has lag and has not committed for this long, or
    /// the oldest unpublished outbox event has waited this long
    #[arg(long, env = "ORDERLY_STUCK_AFTER_MS", default_value_t = STUCK_AFTER_MS)]
    pub stuck_after_ms: u64,
}

impl ServerArgs {
    pub fn on(listen_addr: SocketAddr) -> Self {
        Self {
            listen_addr: Some(listen_addr),
            request_timeout_ms: REQUEST_TIMEOUT_MS,
            concurrency_limit: CONCURRENCY_LIMIT,
            shutdown_grace_secs: SHUTDOWN_GRACE_SECS,
            stuck_after_ms: STUCK_AFTER_MS,
        }
    }

    pub fn listen_addr_or(&self, default_port: u16) -> SocketAddr {
        self.listen_addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn stuck_after(&self) -> Duration {
        Duration::from_millis(self.stuck_after_ms)
    }
}

/// Where a component keeps its data.
#[derive(Args, Clone, Debug)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://path/to/file.db` or `postgres://user@host/db`
    /// [default: a SQLite file named after the component in the data directory]
    #[arg(long, env = "ORDERLY_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory for SQLite files and broker storage
    #[arg(long, env = "ORDERLY_DATA_DIR", default_value = "orderly-data")]
    pub data_dir: PathBuf,

    /// SQLite commits: `full` syncs each commit to disk, so an acknowledged write survives a
    /// power cut; `normal` skips that sync (faster, and a power cut can lose the last
    /// acknowledged writes; a process crash still loses nothing)
    #[arg(long, env = "ORDERLY_SQLITE_SYNC", value_enum, default_value_t = SqliteSync::Full)]
    pub sqlite_sync: SqliteSync,
}

/// How SQLite makes a commit durable (its `synchronous` pragma, in WAL mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

impl DatabaseArgs {
    /// SQLite files in `data_dir`, durable.
    pub fn in_dir(data_dir: PathBuf) -> Self {
        Self {
            database_url: None,
            data_dir,
            sqlite_sync: SqliteSync::Full,
        }
    }

    pub fn url_for(&self, component: &str) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => crate::db::sqlite_url(&self.data_dir.join(format!("{component}.db"))),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }
}

/// How a component reaches Kafka (the embedded broker by default, any cluster in production).
#[derive(Args, Clone, Debug)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma separated
    #[arg(
        long,
        env = "ORDERLY_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_bootstrap: String,

    /// Longest a consumer's fetch waits for data when there is none; a fetch is answered as soon
    /// as data arrives, so this bounds idle fetches per second, not latency
    #[arg(long, env = "ORDERLY_KAFKA_FETCH_WAIT_MAX_MS", default_value_t = FETCH_WAIT_MAX_MS)]
    pub kafka_fetch_wait_max_ms: u32,

    /// How long the producer waits to fill a batch before sending it
    #[arg(long, env = "ORDERLY_KAFKA_LINGER_MS", default_value_t = LINGER_MS)]
    pub kafka_linger_ms: u32,

    /// Partitions for topics this component creates
    #[arg(long, env = "ORDERLY_KAFKA_PARTITIONS", default_value_t = PARTITIONS)]
    pub kafka_partitions: i32,

    /// Replication factor for topics this component creates
    #[arg(long, env = "ORDERLY_KAFKA_REPLICATION_FACTOR", default_value_t = REPLICATION_FACTOR)]
    pub kafka_replication_factor: i32,

    #[arg(long, env = "ORDERLY_KAFKA_SECURITY_PROTOCOL", value_enum, default_value_t = SecurityProtocol::Plaintext)]
    pub kafka_security_protocol: SecurityProtocol,

    /// SASL mechanism, e.g. PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    #[arg(long, env = "ORDERLY_KAFKA_SASL_MECHANISM")]
    pub kafka_sasl_mechanism: Option<String>,

    #[arg(long, env = "ORDERLY_KAFKA_SASL_USERNAME")]
    pub kafka_sasl_username: Option<String>,

    /// SASL password (prefer the environment variable; never logged)
    #[arg(long, env = "ORDERLY_KAFKA_SASL_PASSWORD", hide_env_values = true)]
    pub kafka_sasl_password: Option<String>,

    /// CA certificate file (PEM) for TLS connections to Kafka
    #[arg(long, env = "ORDERLY_KAFKA_SSL_CA_LOCATION")]
    pub kafka_ssl_ca_location: Option<PathBuf>,
}

impl KafkaArgs {
    pub fn at(bootstrap: impl Into<String>) -> Self {
        Self {
            kafka_bootstrap: bootstrap.into(),
            kafka_fetch_wait_max_ms: FETCH_WAIT_MAX_MS,
            kafka_linger_ms: LINGER_MS,
            kafka_partitions: PARTITIONS,
            kafka_replication_factor: REPLICATION_FACTOR,
            kafka_security_protocol: SecurityProtocol::Plaintext,
            kafka_sasl_mechanism: None,
            kafka_sasl_username: None,
            kafka_sasl_password: None,
            kafka_ssl_ca_location: None,
        }
    }
}

/// What every service component is configured with; a component with more knobs flattens this
/// into its own arguments.
#[derive(Args, Clone, Debug)]
pub struct ServiceConfig {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Where the services this component calls answer (order and orchestrator call inventory and
/// payment).
#[derive(Args, Clone, Debug)]
pub struct DependencyArgs {
    /// gRPC endpoint of the inventory service
    #[arg(
        long,
        env = "ORDERLY_INVENTORY_ENDPOINT",
        default_value = "http://127.0.0.1:50052"
    )]
    pub inventory_endpoint: String,

    /// gRPC endpoint of the payment service
    #[arg(
        long,
        env = "ORDERLY_PAYMENT_ENDPOINT",
        default_value = "http://127.0.0.1:50053"
    )]
    pub payment_endpoint: String,

    /// Timeout of each call to another service
    #[arg(long, env = "ORDERLY_DEPENDENCY_TIMEOUT_MS", default_value_t = DEPENDENCY_TIMEOUT_MS)]
    pub dependency_timeout_ms: u64,
}

impl DependencyArgs {
    pub fn at(inventory: SocketAddr, payment: SocketAddr) -> Self {
        Self {
            inventory_endpoint: format!("http://{inventory}"),
            payment_endpoint: format!("http://{payment}"),
            dependency_timeout_ms: DEPENDENCY_TIMEOUT_MS,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.dependency_timeout_ms)
    }
}
