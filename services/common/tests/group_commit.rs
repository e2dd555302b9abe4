//! Group commit on a real SQLite file: concurrent requests share transactions, and one that
//! fails (a duplicate key) is undone alone while the others in its batch commit.

use std::collections::BTreeSet;

use orderly_common::{db, group_commit::GroupCommit};
use sea_orm::{ConnectionTrait, DbErr, SqlErr, Statement};

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_request_is_undone_alone_and_the_others_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = db::connect(
        &db::sqlite_url(&dir.path().join("g.db")),
        db::Pool::default(),
    )
    .await
    .unwrap();
    db.execute_unprepared("create table items (id integer primary key, note text not null)")
        .await
        .unwrap();
    let writer = GroupCommit::start(db.clone());

    // 200 writers at once, ids 0..150: the last 50 repeat an id and must fail alone.
    let writes = (0..200).map(|i| {
        let writer = writer.clone();
        let id = i % 150;
        tokio::spawn(async move {
            let result = writer
                .write(Box::new(move |txn| {
                    Box::pin(async move {
                        txn.execute_unprepared(&format!(
                            "insert into items (id, note) values ({id}, 'first')"
                        ))
                        .await?;
                        // A second statement: undone too when the first fails in another job.
                        txn.execute_unprepared(&format!(
                            "update items set note = 'written by {i}' where id = {id}"
                        ))
                        .await
                        .map(drop)
                    })
                }))
                .await;
            (i, result)
        })
    });
    let mut failed = BTreeSet::new();
    for write in futures::future::join_all(writes).await {
        let (i, result) = write.unwrap();
        match result {
            Ok(()) => {}
            Err(error) => {
                assert!(
                    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))),
                    "write {i}: {error}"
                );
                failed.insert(i % 150);
            }
        }
    }
    assert_eq!(failed.len(), 50, "each repeated id failed once");
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "select id, note from items",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 150, "every first write committed");
    for row in rows {
        let note: String = row.try_get("", "note").unwrap();
        assert!(note.starts_with("written by "), "{note}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_database_fails_every_request() -> Result<(), DbErr> {
    let dir = tempfile::tempdir().unwrap();
    let db = db::connect(
        &db::sqlite_url(&dir.path().join("g.db")),
        db::Pool::default(),
    )
    .await?;
    let writer = GroupCommit::start(db.clone());
    db.close_by_ref().await?;
    let result = writer
        .write(Box::new(|txn| {
            Box::pin(async move { txn.execute_unprepared("select 1").await.map(drop) })
        }))
        .await;
    let error = result.unwrap_err();
    assert!(db::is_unavailable(&error), "{error}");
    Ok(())
}
