//! Configuration shared by every component, in layers: defaults, `ORDERLY_*` environment, flags.
//! Each component flattens the groups it needs into its own `clap` arguments.

use std::{marker::PhantomData, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

use crate::{auth::AuthArgs, kafka::EventProducer, tls::TlsArgs};

// Defaults shared by the flags and by configs built in code (`orderly dev`, tests).
const REQUEST_TIMEOUT_MS: u64 = 10_000;
const CONCURRENCY_LIMIT: usize = 1024;
/// A request is a few kilobytes at most (an order of 100 lines is under 10 KB); a megabyte
/// leaves room and keeps one request from costing a server much memory.
const MAX_MESSAGE_BYTES: u32 = 1024 * 1024;
const SHUTDOWN_GRACE_SECS: u64 = 20;
pub const FETCH_WAIT_MAX_MS: u32 = 500;
/// Each saga step is a hop through Kafka that waits this long for a batch: 0 took one order in
/// flight from 25 ms to 16 (CONTRIBUTING, tenth round), but made the STRICT read after
/// ResumeProjection in `tests/e2e/reads.rs` fail 2 runs in 6, so it stays at 2 until that is
/// understood.
pub const LINGER_MS: u32 = 2;
const PARTITIONS: i32 = 3;
const CONSUMER_LANES: u16 = 3;
const REPLICATION_FACTOR: i32 = 1;
/// For good: the domain topics are the record the query side's read model is rebuilt from.
const RETENTION_HOURS: u64 = 0;
/// Thirty days: time for an operator to look at a dead letter and redrive it.
const DEAD_LETTER_RETENTION_HOURS: u64 = 30 * 24;
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

    /// Largest request message a server accepts, in bytes; a bigger one is refused with
    /// OUT_OF_RANGE before it is decoded
    #[arg(long, env = "ORDERLY_MAX_MESSAGE_BYTES", default_value_t = MAX_MESSAGE_BYTES,
          value_parser = clap::value_parser!(u32).range(1024..=64 * 1024 * 1024))]
    pub max_message_bytes: u32,

    /// On SIGTERM, how long in-flight work may take to drain before the process exits
    #[arg(long, env = "ORDERLY_SHUTDOWN_GRACE_SECS", default_value_t = SHUTDOWN_GRACE_SECS)]
    pub shutdown_grace_secs: u64,

    /// Health turns NOT_SERVING when a consumer has lag and has neither committed nor taken a
    /// message for this long, or the oldest unpublished outbox event has waited this long
    #[arg(long, env = "ORDERLY_STUCK_AFTER_MS", default_value_t = STUCK_AFTER_MS)]
    pub stuck_after_ms: u64,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub auth: AuthArgs,

    /// Also serve grpc.health.v1, and nothing else, in plaintext on this address: for probes
    /// that cannot speak TLS (Kubernetes' gRPC probes)
    #[arg(long, env = "ORDERLY_HEALTH_LISTEN_ADDR")]
    pub health_listen_addr: Option<SocketAddr>,
}

impl ServerArgs {
    pub fn on(listen_addr: SocketAddr) -> Self {
        Self {
            listen_addr: Some(listen_addr),
            request_timeout_ms: REQUEST_TIMEOUT_MS,
            concurrency_limit: CONCURRENCY_LIMIT,
            max_message_bytes: MAX_MESSAGE_BYTES,
            shutdown_grace_secs: SHUTDOWN_GRACE_SECS,
            stuck_after_ms: STUCK_AFTER_MS,
            tls: TlsArgs::default(),
            auth: AuthArgs::default(),
            health_listen_addr: None,
        }
    }

    /// `--max-message-bytes`, as tonic takes it.
    pub fn max_message_bytes(&self) -> usize {
        usize::try_from(self.max_message_bytes).unwrap_or(usize::MAX)
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

    /// Most connections a replica opens to PostgreSQL. Every replica of every component (plus
    /// one listening connection each, for the order service and the orchestrator) must fit in
    /// the server's max_connections: a replica turned away at start-up does not start
    #[arg(long, env = "ORDERLY_DATABASE_MAX_CONNECTIONS", default_value_t = crate::db::MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: u32,
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
            database_max_connections: crate::db::MAX_CONNECTIONS,
        }
    }

    /// How to open the pools.
    pub fn pool(&self) -> crate::db::Pool {
        crate::db::Pool {
            sqlite_sync: self.sqlite_sync,
            max_connections: self.database_max_connections,
        }
    }

    pub fn url_for(&self, component: &str) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => crate::db::sqlite_url(&self.data_dir.join(format!("{component}.db"))),
        }
    }
}

/// A Kafka producer's `compression.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Compression {
    None,
    Lz4,
    Zstd,
    Snappy,
    Gzip,
}

impl Compression {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
            Self::Snappy => "snappy",
            Self::Gzip => "gzip",
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
    /// as data arrives, so this bounds idle fetches per second, not latency (but for a partition
    /// newly assigned, which waits for the fetch in flight)
    #[arg(long, env = "ORDERLY_KAFKA_FETCH_WAIT_MAX_MS", default_value_t = FETCH_WAIT_MAX_MS)]
    pub kafka_fetch_wait_max_ms: u32,

    /// How long the producer waits to fill a batch before sending it; each hop of a saga waits
    /// up to this long (0: at once; under load batches still fill while one is in flight)
    #[arg(long, env = "ORDERLY_KAFKA_LINGER_MS", default_value_t = LINGER_MS)]
    pub kafka_linger_ms: u32,

    /// Codec of the batches this component produces. Orderly's events are a few hundred bytes
    /// of protobuf, mostly ids, which no codec shrinks much, while compressing costs the
    /// producer, the broker and every consumer CPU; compress when the link to Kafka is what
    /// limits you
    #[arg(long, env = "ORDERLY_KAFKA_COMPRESSION", value_enum, default_value_t = Compression::None)]
    pub kafka_compression: Compression,

    /// Partitions of the domain topics this component creates (the most consumers of one
    /// group that share a topic's work); a dead-letter topic has one
    #[arg(long, env = "ORDERLY_KAFKA_PARTITIONS", default_value_t = PARTITIONS)]
    pub kafka_partitions: i32,

    /// Partitions of one topic, instead of --kafka-partitions: TOPIC=N, repeated or
    /// comma separated (e.g. orderly.orders.v1=12). Like every topic setting here, it applies
    /// when the topic is created; an existing topic is left as it is
    #[arg(long, env = "ORDERLY_KAFKA_TOPIC_PARTITIONS", value_delimiter = ',', value_parser = parse_topic_partitions)]
    pub kafka_topic_partitions: Vec<TopicPartitions>,

    /// On PostgreSQL, how many of its partitions a consumer applies at once, each batch in its
    /// own transaction: partition p goes to lane p mod N, so one partition's events stay in
    /// order. Use a divisor of every topic's partition count: one order's events on different
    /// topics then share a lane too. On SQLite, which has one writer at a time, a consumer
    /// applies one batch at a time whatever this says
    #[arg(long, env = "ORDERLY_CONSUMER_LANES", default_value_t = CONSUMER_LANES,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub consumer_lanes: u16,

    /// How long domain topics keep events, in hours; 0 keeps them for good, so that `orderly
    /// rebuild` finds every order's events (the catalogue and the accounts are compacted)
    #[arg(long, env = "ORDERLY_KAFKA_RETENTION_HOURS", default_value_t = RETENTION_HOURS)]
    pub kafka_retention_hours: u64,

    /// How long dead-letter topics keep messages, in hours
    #[arg(long, env = "ORDERLY_KAFKA_DEAD_LETTER_RETENTION_HOURS", default_value_t = DEAD_LETTER_RETENTION_HOURS)]
    pub kafka_dead_letter_retention_hours: u64,

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

    /// Keys events are signed with (HMAC-SHA256; hex, one per line, the first signs): every
    /// event published carries a signature, and an event without a valid one is dead-lettered
    /// instead of applied. Shared by all components
    #[arg(long, env = "ORDERLY_EVENT_KEYS")]
    pub event_keys: Option<PathBuf>,
}

/// One topic's partition count (`--kafka-topic-partitions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPartitions {
    pub topic: String,
    pub partitions: i32,
}

fn parse_topic_partitions(text: &str) -> Result<TopicPartitions, String> {
    let (topic, partitions) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not TOPIC=PARTITIONS"))?;
    let topic = topic.trim();
    // Kafka's rule for topic names.
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.is_empty() || topic.len() > 249 || !topic.chars().all(legal) {
        return Err(format!(
            "{:?} is not a Kafka topic name (1-249 of a-z, A-Z, 0-9, '.', '_', '-')",
            topic.chars().take(64).collect::<String>()
        ));
    }
    let partitions = partitions
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|partitions| *partitions >= 1)
        .ok_or_else(|| format!("partitions of {topic} must be a whole number of at least 1"))?;
    Ok(TopicPartitions {
        topic: topic.to_owned(),
        partitions,
    })
}

impl KafkaArgs {
    /// The partitions `topic` is created with.
    pub fn partitions_of(&self, topic: &str) -> i32 {
        self.kafka_topic_partitions
            .iter()
            .rev() // the last one given wins, as with any repeated flag
            .find(|set| set.topic == topic)
            .map_or(self.kafka_partitions, |set| set.partitions)
    }

    pub fn at(bootstrap: impl Into<String>) -> Self {
        Self {
            kafka_bootstrap: bootstrap.into(),
            kafka_fetch_wait_max_ms: FETCH_WAIT_MAX_MS,
            kafka_linger_ms: LINGER_MS,
            kafka_compression: Compression::None,
            kafka_partitions: PARTITIONS,
            kafka_topic_partitions: Vec::new(),
            consumer_lanes: CONSUMER_LANES,
            kafka_retention_hours: RETENTION_HOURS,
            kafka_dead_letter_retention_hours: DEAD_LETTER_RETENTION_HOURS,
            kafka_replication_factor: REPLICATION_FACTOR,
            kafka_security_protocol: SecurityProtocol::Plaintext,
            kafka_sasl_mechanism: None,
            kafka_sasl_username: None,
            kafka_sasl_password: None,
            kafka_ssl_ca_location: None,
            event_keys: None,
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
    /// Publish through this producer instead of one of the component's own: `orderly dev`
    /// shares one among its components, each producer being a Kafka client with its own
    /// threads, timers and connections (and separate producers cannot share a request).
    #[arg(skip)]
    pub shared_producer: Option<EventProducer>,
}

/// A component another one calls, as the caller declares it (shared plumbing names none).
#[derive(Clone, Copy, Debug)]
pub struct Callee {
    pub name: &'static str,
    pub default_port: u16,
}

/// The components a caller calls.
pub trait Callees: 'static {
    const CALLEES: &'static [Callee];
}

/// Where the components a caller calls answer: `--<name>-endpoint` (`ORDERLY_<NAME>_ENDPOINT`)
/// for each of its [`Callees`], and one timeout for every call.
pub struct DependencyArgs<C> {
    endpoints: Vec<(&'static str, String)>,
    pub dependency_timeout_ms: u64,
    callees: PhantomData<fn() -> C>,
}

impl<C: Callees> DependencyArgs<C> {
    /// Every callee at the address `addr_of` gives (the default endpoint where it gives none).
    pub fn at(addr_of: impl Fn(&str) -> Option<SocketAddr>) -> Self {
        let endpoints = C::CALLEES
            .iter()
            .map(|callee| {
                let endpoint = addr_of(callee.name)
                    .map_or_else(|| default_endpoint(callee), |addr| format!("http://{addr}"));
                (callee.name, endpoint)
            })
            .collect();
        Self {
            endpoints,
            dependency_timeout_ms: DEPENDENCY_TIMEOUT_MS,
            callees: PhantomData,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.dependency_timeout_ms)
    }

    /// Each callee's name and endpoint.
    pub fn endpoints(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.endpoints
            .iter()
            .map(|(name, endpoint)| (*name, endpoint.as_str()))
    }
}

fn default_endpoint(callee: &Callee) -> String {
    format!("http://127.0.0.1:{}", callee.default_port)
}

fn endpoint_id(callee: &Callee) -> String {
    format!("{}_endpoint", callee.name)
}

const TIMEOUT_ID: &str = "dependency_timeout_ms";

impl<C> Clone for DependencyArgs<C> {
    fn clone(&self) -> Self {
        Self {
            endpoints: self.endpoints.clone(),
            dependency_timeout_ms: self.dependency_timeout_ms,
            callees: PhantomData,
        }
    }
}

impl<C> std::fmt::Debug for DependencyArgs<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DependencyArgs")
            .field("endpoints", &self.endpoints)
            .field("dependency_timeout_ms", &self.dependency_timeout_ms)
            .finish()
    }
}

// By hand rather than derived: the flags come from the caller's list of callees.
impl<C: Callees> clap::Args for DependencyArgs<C> {
    fn augment_args(mut command: clap::Command) -> clap::Command {
        for callee in C::CALLEES {
            command = command.arg(
                clap::Arg::new(endpoint_id(callee))
                    .long(format!("{}-endpoint", callee.name))
                    .env(format!("ORDERLY_{}_ENDPOINT", callee.name.to_uppercase()))
                    .value_name("URL")
                    .default_value(default_endpoint(callee))
                    .help(format!(
                        "gRPC endpoint of the {} service: a URL, a comma-separated list of them, \
                         or dns:///host:port for every address of a name (calls are balanced)",
                        callee.name
                    )),
            );
        }
        command.arg(
            clap::Arg::new(TIMEOUT_ID)
                .long("dependency-timeout-ms")
                .env("ORDERLY_DEPENDENCY_TIMEOUT_MS")
                .value_name("MS")
                .value_parser(clap::value_parser!(u64))
                .default_value(DEPENDENCY_TIMEOUT_MS.to_string())
                .help("Timeout of each call to another service"),
        )
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl<C: Callees> clap::FromArgMatches for DependencyArgs<C> {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let endpoints = C::CALLEES
            .iter()
            .map(|callee| {
                let endpoint = matches.get_one::<String>(&endpoint_id(callee)).cloned();
                (
                    callee.name,
                    endpoint.unwrap_or_else(|| default_endpoint(callee)),
                )
            })
            .collect();
        let timeout = matches.get_one::<u64>(TIMEOUT_ID).copied();
        Ok(Self {
            endpoints,
            dependency_timeout_ms: timeout.unwrap_or(DEPENDENCY_TIMEOUT_MS),
            callees: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_partitions_name_a_known_topic_and_a_count() {
        assert_eq!(
            parse_topic_partitions("orderly.orders.v1=12"),
            Ok(TopicPartitions {
                topic: "orderly.orders.v1".to_owned(),
                partitions: 12
            })
        );
        let illegal = parse_topic_partitions("orders v1=12").unwrap_err();
        assert!(
            illegal.contains("\"orders v1\" is not a Kafka topic name"),
            "{illegal}"
        );
        let zero = parse_topic_partitions("orderly.orders.v1=0").unwrap_err();
        assert!(zero.contains("at least 1"), "{zero}");
        assert!(parse_topic_partitions("orderly.orders.v1").is_err());
    }

    #[test]
    fn the_last_setting_for_a_topic_wins_and_others_keep_the_default() {
        let mut args = KafkaArgs::at("127.0.0.1:9092");
        args.kafka_topic_partitions = vec![
            parse_topic_partitions("orderly.orders.v1=12").unwrap(),
            parse_topic_partitions("orderly.orders.v1=24").unwrap(),
        ];
        assert_eq!(args.partitions_of("orderly.orders.v1"), 24);
        assert_eq!(args.partitions_of("orderly.sagas.v1"), PARTITIONS);
    }
}
