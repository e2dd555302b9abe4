//! PostgreSQL's LISTEN/NOTIFY, for what one replica commits and the others must hear of at
//! once: outbox rows to publish, orders decided. A lost connection is reconnected with a
//! backoff; whoever listens keeps a slower safety net for notifications missed meanwhile.

use std::time::Duration;

use sea_orm::{
    DatabaseBackend, DatabaseConnection,
    sqlx::{PgPool, postgres::PgListener},
};

use crate::Shutdown;

/// Calls `heard` with the payload of every notification on `channel` until `shutdown`; returns
/// at once on other databases. `what` names the notifications in the warning logged when they
/// are lost.
pub async fn listen(
    db: DatabaseConnection,
    channel: &str,
    what: &str,
    mut heard: impl FnMut(&str),
    shutdown: Shutdown,
) {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return;
    }
    let pool = db.get_postgres_connection_pool();
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_triggered() {
        tokio::select! {
            () = shutdown.requested() => return,
            error = listen_until_lost(pool, channel, &mut heard) => {
                tracing::warn!(%error, retry_in = ?backoff, "{what} notifications lost; reconnecting");
            }
        }
        tokio::select! {
            () = shutdown.requested() => return,
            () = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(Duration::from_secs(5)),
        }
    }
}

/// Hands over every notification until the connection fails; returns why.
async fn listen_until_lost(
    pool: &PgPool,
    channel: &str,
    heard: &mut impl FnMut(&str),
) -> sea_orm::sqlx::Error {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(listener) => listener,
        Err(error) => return error,
    };
    if let Err(error) = listener.listen(channel).await {
        return error;
    }
    loop {
        match listener.recv().await {
            Ok(notification) => heard(notification.payload()),
            Err(error) => return error,
        }
    }
}
