//! Group commit: the writes of many concurrent requests in one database transaction, so they
//! share one commit, and with durable commits one disk sync. SQLite takes one writer at a time
//! and syncs at each commit, so without it every request waits for its own sync in a queue of
//! them (a few hundred commits a second on an ordinary disk, whatever the CPU).
//!
//! One task writes. A request hands it its work and waits; the task takes every request that is
//! waiting, runs each one's work in a savepoint of one transaction (a failing request rolls back
//! alone), commits once, then answers them all. Nothing lingers to fill a batch: at low load a
//! batch is one request, and under load the requests that arrive during a commit form the next.

use futures::future::BoxFuture;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, RuntimeErr, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

/// Most requests in one transaction: bounds how long one commit holds the writer.
const MAX_BATCH: usize = 256;

/// A request's writes, run inside the shared transaction.
pub type Work =
    Box<dyn for<'t> FnOnce(&'t DatabaseTransaction) -> BoxFuture<'t, Result<(), DbErr>> + Send>;

struct Job {
    work: Work,
    done: oneshot::Sender<Result<(), DbErr>>,
}

/// A handle to a database's group-commit writer; cheap to clone.
#[derive(Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer on `db`; it ends when every handle is dropped.
    pub fn start(db: DatabaseConnection) -> Self {
        let (jobs, queue) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(write(db, queue));
        Self { jobs }
    }

    /// Runs `work` in a transaction shared with other requests and returns once that
    /// transaction committed, with `work`'s own error if it failed (its writes then undone, the
    /// others' kept), or the commit's.
    pub async fn write(&self, work: Work) -> Result<(), DbErr> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job { work, done })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write(db: DatabaseConnection, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        for (done, result) in commit(&db, jobs).await {
            // A requester that gave up no longer listens; its writes stand, as they would
            // have had it waited.
            let _ = done.send(result);
        }
    }
}

/// Runs every job in its own savepoint of one transaction and commits it; each job's answer.
async fn commit(
    db: &DatabaseConnection,
    jobs: Vec<Job>,
) -> Vec<(oneshot::Sender<Result<(), DbErr>>, Result<(), DbErr>)> {
    let mut answers = Vec::with_capacity(jobs.len());
    let txn = match db.begin().await {
        Ok(txn) => txn,
        Err(error) => {
            let message = error.to_string();
            return jobs
                .into_iter()
                .map(|job| (job.done, Err(unavailable(&message))))
                .collect();
        }
    };
    for job in jobs {
        let result = in_savepoint(&txn, job.work).await;
        answers.push((job.done, result));
    }
    if let Err(error) = txn.commit().await {
        let message = error.to_string();
        for (_, result) in &mut answers {
            if result.is_ok() {
                *result = Err(unavailable(&message));
            }
        }
    }
    answers
}

async fn in_savepoint(txn: &DatabaseTransaction, work: Work) -> Result<(), DbErr> {
    let savepoint = txn.begin().await?;
    match work(&savepoint).await {
        Ok(()) => savepoint.commit().await,
        Err(error) => {
            savepoint.rollback().await?;
            Err(error)
        }
    }
}

/// The shared commit failed: for the requester, the database was unavailable (retry).
fn unavailable(message: &str) -> DbErr {
    DbErr::Conn(RuntimeErr::Internal(format!("group commit: {message}")))
}

fn stopped() -> DbErr {
    DbErr::Conn(RuntimeErr::Internal("group commit writer stopped".into()))
}
