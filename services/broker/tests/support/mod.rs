//! The embedded broker started in-process for a test, on a free loopback port, with its SQLite
//! storage in a temp directory.

// Test helpers unwrap: a panic is how a test fails. Each test file uses part of this module.
#![allow(clippy::unwrap_used, dead_code)]

use std::{net::SocketAddr, time::Duration};

use orderly_broker::{BrokerArgs, BrokerError};
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Broker {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    stop: CancellationToken,
    task: JoinHandle<Result<(), BrokerError>>,
}

impl Broker {
    /// Starts the broker and waits until it listens (its storage, indexes included, is ready
    /// by then).
    pub async fn start() -> Self {
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
        let task =
            tokio::spawn(async move { orderly_broker::run(&args, until.cancelled_owned()).await });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the broker never listened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            addr,
            dir,
            stop,
            task,
        }
    }

    /// Stops the broker and checks that it stopped cleanly.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Creates `topic` with `partitions`, retrying until the broker answers.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let created = admin
            .create_topics(
                &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(5))),
            )
            .await;
        if matches!(created.as_deref(), Ok([Ok(_)])) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cannot create {topic}: {created:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
