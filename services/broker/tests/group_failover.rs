//! A group member that dies without leaving (SIGKILL: no LeaveGroup) is expired when its
//! session times out, and the survivor is assigned its partitions, as a Kafka coordinator does.
//! Before Orderly's patch to the coordinator the group stayed formed around the dead member and
//! its partitions went unread until some member rejoined by itself.

// A panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod support;

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig,
    consumer::{Consumer, StreamConsumer},
};

const TOPIC: &str = "failover";
const PARTITIONS: usize = 4;
const GROUP: &str = "failover";
const SESSION: Duration = Duration::from_secs(6);
/// Past the session timeout: the next heartbeat, a join and a sync.
const SLACK: Duration = Duration::from_secs(8);
/// Set when this test binary runs as the member that gets killed: the broker's address.
const VICTIM_BOOTSTRAP: &str = "ORDERLY_FAILOVER_VICTIM_BOOTSTRAP";

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_followers_partitions_go_to_the_leader() {
    failover(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_leaders_partitions_go_to_the_follower() {
    failover(true).await;
}

/// The member the failover tests kill, run as a child process: it joins, says "assigned" once
/// it holds partitions, and polls until it is killed (or a minute has passed).
#[tokio::test]
#[ignore = "run by the failover tests as the member they kill"]
async fn victim_member() {
    let Ok(bootstrap) = std::env::var(VICTIM_BOOTSTRAP) else {
        return;
    };
    let consumer = member(&bootstrap);
    let mut told = false;
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until {
        // Polling is what serves the group protocol.
        let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
        if !told && held(&consumer) > 0 {
            println!("assigned");
            std::io::stdout().flush().unwrap();
            told = true;
        }
    }
}

async fn failover(victim_leads: bool) {
    let broker = support::Broker::start().await;
    let bootstrap = broker.addr.to_string();
    support::create_topic(&bootstrap, TOPIC, PARTITIONS as i32).await;

    // The first member to join leads the group.
    let leading_victim = if victim_leads {
        Some(start_victim(&bootstrap).await)
    } else {
        None
    };
    let survivor = Arc::new(member(&bootstrap));
    let polling = tokio::spawn(poll(survivor.clone()));
    let mut victim = match leading_victim {
        Some(victim) => victim,
        None => {
            wait_until(&survivor, PARTITIONS, "the survivor alone").await;
            start_victim(&bootstrap).await
        }
    };
    wait_until(
        &survivor,
        PARTITIONS / 2,
        "the survivor sharing with the victim",
    )
    .await;

    victim.kill().unwrap(); // SIGKILL: no LeaveGroup
    victim.wait().unwrap();
    let killed = Instant::now();
    wait_until(&survivor, PARTITIONS, "the survivor after the kill").await;
    let failover = killed.elapsed();
    println!("partitions reassigned {failover:?} after the kill");
    assert!(failover <= SESSION + SLACK, "reassigned after {failover:?}");

    polling.abort();
    drop(survivor);
    broker.stop().await;
}

fn member(bootstrap: &str) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("session.timeout.ms", SESSION.as_millis().to_string())
        .set("heartbeat.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "500")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    consumer
}

fn held(consumer: &StreamConsumer) -> usize {
    consumer.assignment().map_or(0, |assigned| assigned.count())
}

/// Keeps the survivor polling, so that it heartbeats and takes part in rebalances.
async fn poll(consumer: Arc<StreamConsumer>) {
    loop {
        let _ = consumer.recv().await;
    }
}

/// Waits until `consumer` holds `partitions` (bounded: SESSION + SLACK, then a minute more for
/// the set-up joins).
async fn wait_until(consumer: &StreamConsumer, partitions: usize, what: &str) {
    let deadline = Instant::now() + SESSION + SLACK + Duration::from_secs(60);
    while held(consumer) != partitions {
        assert!(
            Instant::now() < deadline,
            "{what}: holds {} partitions, not {partitions}",
            held(consumer)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts this test binary as the victim member and waits until it holds partitions.
async fn start_victim(bootstrap: &str) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["victim_member", "--exact", "--ignored", "--nocapture"])
        .env(VICTIM_BOOTSTRAP, bootstrap)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let assigned = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line == "assigned")
    });
    let assigned = tokio::time::timeout(Duration::from_secs(60), assigned).await;
    assert!(
        matches!(assigned, Ok(Ok(true))),
        "the victim never got partitions"
    );
    child
}
