//! The embedded broker's SQLite storage gets the index tansu 0.6 lacks on record headers (without
//! it every fetch scans all headers ever stored).

mod support;

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_storage_has_an_index_on_record_headers() {
    // The index is made right after the storage is built and before the listener serves.
    let broker = support::Broker::start().await;

    let db = libsql::Builder::new_local(broker.dir.path().join("broker.db"))
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
    broker.stop().await;
}
