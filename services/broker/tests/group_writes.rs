//! A group's state is written to storage when it changes, not on every heartbeat: a formed
//! group whose member heartbeats every 100 ms has its stored state rewritten about once per half
//! session (to keep the member's last contact fresh there), not ten times a second.
//! Before Orderly's patch to the coordinator every heartbeat was a durable write, the largest
//! part of an idle broker's work.

// A panic is how a test fails.
#![allow(clippy::unwrap_used)]

mod support;

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig,
    consumer::{Consumer, StreamConsumer},
};

const TOPIC: &str = "quiet";
const GROUP: &str = "quiet";
const SESSION: Duration = Duration::from_secs(6);
const HEARTBEAT: Duration = Duration::from_millis(100);
/// How long storage may keep a member's last contact unwritten: half the session.
const CONTACT_REFRESH: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread")]
async fn heartbeats_of_a_formed_group_are_not_each_written() {
    let broker = support::Broker::start().await;
    let bootstrap = broker.addr.to_string();
    support::create_topic(&bootstrap, TOPIC, 2).await;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", GROUP)
        .set("session.timeout.ms", SESSION.as_millis().to_string())
        .set("heartbeat.interval.ms", HEARTBEAT.as_millis().to_string())
        .set("fetch.wait.max.ms", "500")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let joined = Instant::now() + Duration::from_secs(60);
    while consumer.assignment().map_or(0, |assigned| assigned.count()) < 2 {
        assert!(
            Instant::now() < joined,
            "the consumer never got its partitions"
        );
        // Polling is what serves the group protocol.
        let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
    }

    let storage = libsql::Builder::new_local(broker.dir.path().join("broker.db"))
        .build()
        .await
        .unwrap()
        .connect()
        .unwrap();
    // Watch the stored state (its e-tag is a hash of it, last contacts included) for 30
    // heartbeat intervals while the consumer keeps polling, so heartbeating.
    let mut seen = HashSet::new();
    let watched = Instant::now();
    for _ in 0..30 {
        seen.insert(stored_e_tag(&storage).await);
        let _ = tokio::time::timeout(HEARTBEAT, consumer.recv()).await;
    }
    let elapsed = watched.elapsed();
    // The state the group formed with, its first heartbeat's write, then one per refresh.
    let allowed = 2 + elapsed.as_millis() / CONTACT_REFRESH.as_millis() + 1;
    println!("{} stored states in {elapsed:?}", seen.len());
    assert!(
        seen.len() as u128 <= allowed,
        "{} stored states in {elapsed:?} of heartbeats every {HEARTBEAT:?}: each heartbeat is \
         written",
        seen.len()
    );

    // The member's last contact still reaches storage, a refresh later.
    let first = stored_e_tag(&storage).await;
    let refreshed = Instant::now() + 10 * CONTACT_REFRESH;
    while stored_e_tag(&storage).await == first {
        assert!(
            Instant::now() < refreshed,
            "the member's last contact never reached storage"
        );
        let _ = tokio::time::timeout(HEARTBEAT, consumer.recv()).await;
    }

    drop(consumer);
    broker.stop().await;
}

async fn stored_e_tag(storage: &libsql::Connection) -> String {
    let mut rows = storage
        .query(
            "select d.e_tag from consumer_group_detail d \
             join consumer_group g on g.id = d.consumer_group where g.name = ?1",
            [GROUP],
        )
        .await
        .unwrap();
    let row = rows.next().await.unwrap().expect("the group is stored");
    row.get::<String>(0).unwrap()
}
