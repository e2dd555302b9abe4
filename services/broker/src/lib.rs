//! The embedded Kafka-compatible broker: tansu 0.6 run in-process, by `orderly dev` beside the
//! services and alone by `orderly broker`. Production points Orderly at any Kafka cluster
//! instead (`--kafka-bootstrap`); nothing else in Orderly depends on this crate.
//!
//! Why tansu 0.6 and not its successor nisshi 0.8: nisshi needs rustc 1.96 (through rama 0.4)
//! and does not build with the toolchain we pin (1.95). The version is pinned exactly in the
//! workspace so an upgrade is a deliberate, measured change.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use clap::Args;
use orderly_common::config::SqliteSync;
use tansu_broker::{broker::Broker, coordinator::group::administrator::Controller};
use tansu_storage::StorageContainer;
use tokio::time::Instant;
use url::Url;
use uuid::Uuid;

/// The node id tansu registers itself under; a single-node cluster needs only one.
const NODE_ID: i32 = tansu_broker::NODE_ID;
const CLUSTER_ID: &str = "orderly";

#[derive(Args, Clone, Debug)]
pub struct BrokerArgs {
    /// Address the Kafka listener binds
    #[arg(
        long = "listen-addr",
        env = "ORDERLY_BROKER_LISTEN_ADDR",
        default_value = "127.0.0.1:9092"
    )]
    pub listen_addr: SocketAddr,

    /// host:port clients are told to connect to [default: the listen address]
    #[arg(long = "advertised-addr", env = "ORDERLY_BROKER_ADVERTISED_ADDR")]
    pub advertised_addr: Option<String>,

    /// Storage URL: `sqlite://...` (durable) or `memory://` (lost on exit)
    /// [default: a SQLite file `broker.db` in the data directory]
    #[arg(long = "storage", env = "ORDERLY_BROKER_STORAGE")]
    pub storage: Option<String>,

    /// Directory for the broker's SQLite storage
    #[arg(long, env = "ORDERLY_DATA_DIR", default_value = "orderly-data")]
    pub data_dir: PathBuf,

    /// SQLite storage commits: `full` syncs each to disk before the producer is acknowledged, so
    /// an acknowledged record survives a power cut; `normal` is faster and a power cut can lose
    /// the last acknowledged records (a `synchronous` parameter in `--storage` wins)
    #[arg(long, env = "ORDERLY_SQLITE_SYNC", value_enum, default_value_t = SqliteSync::Full)]
    pub sqlite_sync: SqliteSync,
}

impl BrokerArgs {
    pub fn new(listen_addr: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen_addr,
            advertised_addr: None,
            storage: None,
            data_dir,
            sqlite_sync: SqliteSync::Full,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("invalid broker setting {setting}: {reason}")]
    Config {
        setting: &'static str,
        reason: String,
    },
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("broker failed: {0}")]
    Broker(String),
}

/// Puts SQLite in the threading mode libsql requires. This binary links one SQLite, shared by
/// the broker (libsql) and the services (sqlx; see .cargo/config.toml), and the mode can only be
/// set before the first database opens, so a process that runs the broker beside services calls
/// this before starting anything.
pub async fn configure_sqlite() -> Result<(), BrokerError> {
    libsql::Builder::new_local(":memory:")
        .build()
        .await
        .map(drop)
        .map_err(|error| BrokerError::Broker(format!("cannot initialize sqlite: {error}")))
}

/// Runs the broker until `shutdown` resolves.
pub async fn run(args: &BrokerArgs, shutdown: impl Future<Output = ()>) -> Result<(), BrokerError> {
    let storage = storage_url(args)?;
    let sqlite = sqlite_file(&storage);
    let advertised = args
        .advertised_addr
        .clone()
        .unwrap_or_else(|| args.listen_addr.to_string());
    let listener = tcp_url("listen-addr", &args.listen_addr.to_string())?;
    let advertised = tcp_url("advertised-addr", &advertised)?;
    tracing::info!(listen = %args.listen_addr, %advertised, %storage, "starting embedded kafka broker");

    let mut broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
        .node_id(NODE_ID)
        .cluster_id(CLUSTER_ID)
        .incarnation_id(Uuid::now_v7())
        .advertised_listener(advertised)
        .storage(storage)
        .listener(listener)
        .silent(true)
        .build()
        .await
        .map_err(|error| BrokerError::Broker(format!("{error:?}")))?;
    if let Some(file) = sqlite {
        index_headers(&file).await?;
    }

    tokio::select! {
        result = broker.serve(Instant::now()) => {
            result.map_err(|error| BrokerError::Broker(format!("{error:?}")))
        }
        () = shutdown => {
            tracing::info!("broker stopped");
            Ok(())
        }
    }
}

fn tcp_url(setting: &'static str, host_port: &str) -> Result<Url, BrokerError> {
    Url::parse(&format!("tcp://{host_port}")).map_err(|error| BrokerError::Config {
        setting,
        reason: format!("{host_port:?}: {error}"),
    })
}

/// The storage URL, with `--sqlite-sync` as its `synchronous` parameter unless it names one.
fn storage_url(args: &BrokerArgs) -> Result<Url, BrokerError> {
    given_storage_url(args).map(|url| with_sync(url, args.sqlite_sync))
}

/// A `sqlite` URL gets `sync` as its `synchronous` parameter, unless it has one already.
fn with_sync(mut url: Url, sync: SqliteSync) -> Url {
    let named = url.query_pairs().any(|(key, _)| key == "synchronous");
    if url.scheme() == "sqlite" && !named {
        let synchronous = match sync {
            SqliteSync::Full => "full",
            SqliteSync::Normal => "normal",
        };
        url.query_pairs_mut()
            .append_pair("synchronous", synchronous);
    }
    url
}

fn given_storage_url(args: &BrokerArgs) -> Result<Url, BrokerError> {
    let Some(storage) = &args.storage else {
        std::fs::create_dir_all(&args.data_dir).map_err(|source| BrokerError::DataDir {
            path: args.data_dir.clone(),
            source,
        })?;
        let data_dir =
            std::path::absolute(&args.data_dir).map_err(|source| BrokerError::DataDir {
                path: args.data_dir.clone(),
                source,
            })?;
        return Ok(sqlite_url(&data_dir.join("broker.db")));
    };
    Url::parse(storage).map_err(|error| BrokerError::Config {
        setting: "storage",
        reason: format!("{storage:?}: {error}"),
    })
}

/// tansu 0.6 keeps record headers in a table without an index, so fetching a record's headers
/// scans every header ever stored: each fetch slows as the topic grows, and every header a
/// producer adds (the trace context, say) makes it worse. The index makes it a lookup. tansu
/// has created its tables by now (its storage runs its DDL when built).
async fn index_headers(file: &Path) -> Result<(), BrokerError> {
    let failed = |error: libsql::Error| {
        BrokerError::Broker(format!("cannot index {}: {error}", file.display()))
    };
    let db = libsql::Builder::new_local(file)
        .build()
        .await
        .map_err(failed)?;
    let connection = db.connect().map_err(failed)?;
    connection
        .execute(
            "create index if not exists orderly_header_by_record on header (topition, offset_id)",
            (),
        )
        .await
        .map_err(failed)?;
    Ok(())
}

/// The file behind a `sqlite://` storage URL, resolved as tansu 0.6's `lite::Builder::build`
/// does: host, then path minus one leading slash, pushed onto the working directory.
fn sqlite_file(url: &Url) -> Option<PathBuf> {
    if url.scheme() != "sqlite" {
        return None;
    }
    let mut path = std::env::current_dir().ok()?;
    if let Some(domain) = url.domain() {
        path.push(domain);
    }
    match url.path().strip_prefix('/') {
        Some(relative) => path.push(relative),
        None => path.push(url.path()),
    }
    Some(path)
}

/// tansu resolves a `sqlite://` URL by pushing its host and then its path, minus one leading
/// slash, onto the working directory. An extra slash keeps the path absolute, so the file lands
/// where we say whatever the working directory is.
fn sqlite_url(path: &Path) -> Url {
    Url::parse(&format!("sqlite:///{}", path.display()))
        .expect("an absolute path forms a valid URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_storage_syncs_each_commit_unless_told_otherwise() {
        let file = Path::new("/var/lib/orderly/broker.db");
        let url = with_sync(sqlite_url(file), SqliteSync::Full);
        assert!(
            url.as_str().ends_with("broker.db?synchronous=full"),
            "{url}"
        );
        assert_eq!(sqlite_file(&url).as_deref(), Some(file));
        let relaxed = with_sync(sqlite_url(file), SqliteSync::Normal);
        assert!(
            relaxed.as_str().ends_with("?synchronous=normal"),
            "{relaxed}"
        );
        let named = Url::parse("sqlite:///tmp/b.db?synchronous=normal").unwrap();
        assert_eq!(with_sync(named.clone(), SqliteSync::Full), named);
        let memory = Url::parse("memory://orderly/").unwrap();
        assert_eq!(with_sync(memory.clone(), SqliteSync::Full), memory);
    }

    #[test]
    fn sqlite_storage_stays_at_the_absolute_path() {
        let file = Path::new("/var/lib/orderly/broker.db");
        assert_eq!(sqlite_file(&sqlite_url(file)).as_deref(), Some(file));
        let memory = Url::parse("memory://orderly/").unwrap();
        assert_eq!(sqlite_file(&memory), None);
    }
}
