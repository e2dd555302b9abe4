//! Database connections: SQLite files by default, PostgreSQL when given a `postgres://` URL.
//! Every service runs its own migrations at start-up (and `orderly migrate` runs them alone).

use std::{path::Path, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    RuntimeErr, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::{config::SqliteSync, shutdown::Shutdown};

/// The URL of a SQLite file, created on first use.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// How a component's connection pool is opened (see [`crate::config::DatabaseArgs`]).
#[derive(Clone, Copy, Debug)]
pub struct Pool {
    /// Whether each SQLite commit reaches the disk before it returns.
    pub sqlite_sync: SqliteSync,
    /// Most connections open at once to PostgreSQL.
    pub max_connections: u32,
}

/// Connections a PostgreSQL pool opens at most by default: five components in one process each
/// fit in PostgreSQL's default of 100.
pub const MAX_CONNECTIONS: u32 = 16;

impl Default for Pool {
    /// Durable, and the default pool size.
    fn default() -> Self {
        Self {
            sqlite_sync: SqliteSync::Full,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Opens a pool on `url`. For SQLite it creates the parent directory and turns on WAL so readers
/// never block the writer.
pub async fn connect(url: &str, pool: Pool) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url);
    // A connection is waited for well within a request's timeout (10 s by default), so that a
    // database that went away is answered UNAVAILABLE, not a request cut off at its deadline.
    options
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5));
    if let Some(path) = sqlite_path(url) {
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| {
                DbErr::Custom(format!("cannot create {}: {error}", parent.display()))
            })?;
        }
        let synchronous = match pool.sqlite_sync {
            SqliteSync::Full => sea_orm::sqlx::sqlite::SqliteSynchronous::Full,
            SqliteSync::Normal => sea_orm::sqlx::sqlite::SqliteSynchronous::Normal,
        };
        // A SQLite connection is a file in this process, not a socket that can go stale, and
        // each ping is a round trip through sqlx's worker thread: on every checkout, for
        // every statement run outside a transaction, that was a fifth of all database round
        // trips under load. (sqlx still pings once when a connection goes back to the pool.)
        options.test_before_acquire(false);
        options.map_sqlx_sqlite_opts(move |sqlite| {
            use sea_orm::sqlx::sqlite::SqliteJournalMode;
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    } else {
        options.max_connections(pool.max_connections);
    }
    Database::connect(options).await
}

/// Connects and brings the schema up to date with `M`'s migrations.
pub async fn connect_and_migrate<M: MigratorTrait>(
    url: &str,
    pool: Pool,
) -> Result<DatabaseConnection, DbErr> {
    let db = connect(url, pool).await?;
    // Replicas started together all migrate at start-up. PostgreSQL's CREATE ... IF NOT EXISTS
    // is not safe against a concurrent CREATE of the same name, so on PostgreSQL they take
    // turns: an advisory lock held by a transaction on one pooled connection while the
    // migrations run on others, released when it ends (or when its session dies with its
    // process). SQLite already runs one schema change at a time.
    let turn = if db.get_database_backend() == DatabaseBackend::Postgres {
        let turn = db.begin().await?;
        turn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
        Some(turn)
    } else {
        None
    };
    M::up(&db, None).await?;
    if let Some(turn) = turn {
        turn.commit().await?;
    }
    Ok(db)
}

/// [`connect_and_migrate`], waiting out a database that is not there yet (not started, still
/// starting, or out of connection slots) until `shutdown`: in a cluster the database and the
/// components come up in any order, and a replica restarted while the database is away should
/// come back with it. A wrong password or database name fails at once; a wrong address looks
/// like a server not started yet, so each attempt logs what it got. A SQLite file is opened
/// once: it has no server to wait for.
pub async fn connect_and_migrate_when_up<M: MigratorTrait>(
    url: &str,
    pool: Pool,
    shutdown: &Shutdown,
) -> Result<DatabaseConnection, DbErr> {
    let mut backoff = Duration::from_millis(250);
    loop {
        match connect_and_migrate::<M>(url, pool).await {
            Err(error) if sqlite_path(url).is_none() && may_come_up(&error) => {
                tracing::warn!(%error, retry_in = ?backoff, "database unavailable");
                tokio::select! {
                    () = shutdown.requested() => return Err(error),
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            result => return result,
        }
    }
}

/// Whether `error` says the database cannot be reached or take a connection yet, rather than
/// that it refused who we are or what we asked (narrower than [`is_unavailable`]).
fn may_come_up(error: &DbErr) -> bool {
    use sea_orm::sqlx::Error;
    let (DbErr::Conn(RuntimeErr::SqlxError(error))
    | DbErr::Exec(RuntimeErr::SqlxError(error))
    | DbErr::Query(RuntimeErr::SqlxError(error))) = error
    else {
        return matches!(error, DbErr::ConnectionAcquire(_));
    };
    match error.as_ref() {
        Error::Io(_) | Error::PoolTimedOut => true,
        // PostgreSQL: connection exceptions (08), too many connections (53300), starting up or
        // shutting down (57P01-57P03).
        Error::Database(error) => error.code().is_some_and(|code| {
            code.starts_with("08") || matches!(code.as_ref(), "53300" | "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// The advisory lock key migrations take turns on (advisory locks are per database).
const MIGRATION_LOCK: i64 = 0x6f72_6465_726c_7901; // "orderly" and 1

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(rest.split('?').next().unwrap_or(rest))
}

/// Pairs each parent row with its children (loaded in one query for a whole page), keeping
/// the parents' order and the children's order within each parent.
pub fn attach<P, C, K: Eq + std::hash::Hash>(
    parents: Vec<P>,
    children: Vec<C>,
    parent_key: impl Fn(&P) -> K,
    child_key: impl Fn(&C) -> K,
) -> Vec<(P, Vec<C>)> {
    let mut by_parent: std::collections::HashMap<K, Vec<C>> = std::collections::HashMap::new();
    for child in children {
        by_parent.entry(child_key(&child)).or_default().push(child);
    }
    parents
        .into_iter()
        .map(|parent| {
            let mine = by_parent.remove(&parent_key(&parent)).unwrap_or_default();
            (parent, mine)
        })
        .collect()
}

/// Whether an error means the database could not be reached (retry later) rather than that the
/// request was wrong.
pub fn is_unavailable(error: &DbErr) -> bool {
    matches!(error, DbErr::Conn(_) | DbErr::ConnectionAcquire(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_go_to_their_parent_in_order() {
        let parents = vec![(1, "a"), (2, "b"), (3, "c")];
        let children = vec![(2, 'x'), (1, 'y'), (2, 'z')];
        let grouped = attach(parents, children, |p| p.0, |c| c.0);
        let shape: Vec<(i32, Vec<char>)> = grouped
            .into_iter()
            .map(|(p, cs)| (p.0, cs.into_iter().map(|c| c.1).collect()))
            .collect();
        assert_eq!(shape, [(1, vec!['y']), (2, vec!['x', 'z']), (3, vec![])]);
    }

    #[test]
    fn sqlite_path_strips_scheme_and_query() {
        assert_eq!(
            sqlite_path("sqlite:///tmp/x/order.db?mode=rwc"),
            Some("/tmp/x/order.db")
        );
        assert_eq!(sqlite_path("sqlite://data/order.db"), Some("data/order.db"));
        assert_eq!(sqlite_path("postgres://localhost/order"), None);
    }
}
