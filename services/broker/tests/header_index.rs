//! The embedded broker's SQLite storage gets the index tansu 0.6 lacks on record headers (without
//! it every fetch scans all headers ever stored).

use std::{net::SocketAddr, time::Duration};

use orderly_broker::BrokerArgs;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_storage_has_an_index_on_record_headers() {
    orderly_broker::configure_sqlite().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let args = BrokerArgs::new(addr, dir.path().to_owned());
    let stop = CancellationToken::new();
    let until = stop.clone();
    let broker =
        tokio::spawn(async move { orderly_broker::run(&args, until.cancelled_owned()).await });
    // The index is made right after the storage is built and before the listener serves.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let db = libsql::Builder::new_local(dir.path().join("broker.db"))
        .build()
        .await
        .unwrap();
    let mut rows = db
        .connect()
        .unwrap()
        .query(
            "select sql from sqlite_master where type = 'index' and tbl_name = 'header'",
            (),
        )
        .await
        .unwrap();
    let mut indexes = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        indexes.push(row.get::<String>(0).unwrap());
    }
    assert!(
        indexes
            .iter()
            .any(|sql| sql.contains("(topition, offset_id)")),
        "{indexes:?}"
    );
    stop.cancel();
    broker.await.unwrap().unwrap();
}
