//! Dead letters for operators (issue 15). A notification the webhook refuses for good (400) is
//! dead-lettered instead of retried for ever. `orderly ctl dlq` lists it with its origin,
//! consumer, error and age, shows its event, and redrives it once the receiver is repaired: the
//! customer is told once, however often it is redriven, and each action is on record with who
//! and why. A discarded dead letter stays discarded when the rest are redriven.

use std::{
    process::Output,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use orderly_common::kafka::topics;
use rdkafka::message::OwnedHeaders;
use serde_json::Value;

use crate::support::{
    self, Options, System, invariants,
    orders::{order_request, place, seed},
    quiet, topic, webhook,
};

fn ctl(system: &System, args: &[&str]) -> Output {
    support::ctl::run(system, args)
}

fn json_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "orderly ctl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("ctl --output json prints JSON")
}

/// The parked dead letters, once the orchestrator has indexed at least `count` (a bounded poll).
async fn parked(system: &System, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listed = json_of(&ctl(
            system,
            &["--output", "json", "dlq", "list", "--state", "parked"],
        ));
        let listed = listed.as_array().cloned().unwrap_or_default();
        if listed.len() >= count {
            return listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} dead letters not indexed within 30 s: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_notification_is_dead_lettered_redriven_once_repaired_and_applied_once() {
    let refusing = Arc::new(AtomicBool::new(true));
    let receiver_refuses = refusing.clone();
    let (url, mut delivered) = webhook::receiver(move |_| {
        if receiver_refuses.load(Ordering::SeqCst) {
            400
        } else {
            200
        }
    })
    .await;
    let system = System::start(Options {
        env: vec![("notification", "ORDERLY_NOTIFICATIONS_WEBHOOK", url)],
        ..Options::default()
    })
    .await;
    let initial = seed(&system, &[("mug", 1_299, 10)], &[("alice", 100_000)]).await;
    let order = place(&system, order_request("alice", "mug", 1, "")).await;
    // Poison on the sagas topic: each of its four consumers dead-letters it.
    let poison = vec![(b"poison".to_vec(), vec![0xff, 0x00], OwnedHeaders::new())];
    topic::produce(&system.kafka, topics::SAGAS, poison).await;
    let orders = quiet::settle(&system).await;

    let parked = parked(&system, 5).await;
    let refused = (parked.iter())
        .find(|letter| letter["event_type"] == "SagaConfirmed")
        .unwrap_or_else(|| panic!("the refused notification is listed: {parked:?}"));
    assert_eq!(refused["consumer"], "notification", "{refused}");
    assert_eq!(refused["topic"], topics::SAGAS, "{refused}");
    assert_eq!(refused["key"], order.order_id.as_str(), "{refused}");
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("400"), "the webhook's answer: {error}");
    let poisoned = |consumer: &str| {
        (parked.iter())
            .find(|letter| letter["consumer"] == consumer && letter["key"] == "poison")
            .unwrap_or_else(|| panic!("{consumer}'s poison is listed: {parked:?}"))
    };
    for consumer in ["order", "inventory", "payment"] {
        poisoned(consumer);
    }
    let refused_id = refused["id"].as_str().unwrap();
    let poison_id = poisoned("notification")["id"].as_str().unwrap();

    // Shown with its event decoded; in a table for people too.
    let shown = json_of(&ctl(
        &system,
        &["--output", "json", "dlq", "show", refused_id],
    ));
    assert_eq!(shown["envelope"]["order_id"], order.order_id.as_str());
    assert!(
        shown["event"].as_str().unwrap().contains("SagaConfirmed"),
        "{shown}"
    );
    let table = String::from_utf8(ctl(&system, &["dlq", "show", refused_id]).stdout).unwrap();
    assert!(
        table.contains("notification") && table.contains("SagaConfirmed"),
        "{table}"
    );

    let discarded = ctl(
        &system,
        &[
            "dlq",
            "discard",
            poison_id,
            "--reason",
            "garbage from a test",
        ],
    );
    assert!(discarded.status.success(), "{discarded:?}");

    // Repaired: the notification consumer's parked dead letters are redriven, the discarded
    // one is not, and the customer is told once.
    refusing.store(false, Ordering::SeqCst);
    let redrive = [
        "--output",
        "json",
        "dlq",
        "redrive",
        "--consumer",
        "notification",
        "--note",
        "webhook fixed",
    ];
    let redriven = json_of(&ctl(&system, &redrive));
    let redriven: Vec<&str> = (redriven.as_array().unwrap().iter())
        .map(|letter| letter["id"].as_str().unwrap())
        .collect();
    assert_eq!(redriven, vec![refused_id]);
    let told = tokio::time::timeout(Duration::from_secs(30), delivered.recv())
        .await
        .expect("the redriven notification is delivered within 30 s")
        .unwrap();
    assert!(told.contains(&order.order_id), "{told}");

    // Redriven again: the notification consumer's inbox applies it at most once.
    let again = ctl(
        &system,
        &["dlq", "redrive", refused_id, "--note", "once more"],
    );
    assert!(again.status.success(), "{again:?}");
    let orders_after = quiet::settle(&system).await;
    assert!(delivered.try_recv().is_err(), "told once");

    // On record: who, what and why.
    let shown = json_of(&ctl(
        &system,
        &["--output", "json", "dlq", "show", refused_id],
    ));
    assert_eq!(shown["state"], "REDRIVEN");
    let actions: Vec<(&str, &str, &str)> = (shown["actions"].as_array().unwrap().iter())
        .map(|action| {
            let field = |name: &str| action[name].as_str().unwrap();
            (field("action"), field("actor"), field("note"))
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("redrive", "anonymous", "webhook fixed"),
            ("redrive", "anonymous", "once more")
        ]
    );
    let shown = json_of(&ctl(
        &system,
        &["--output", "json", "dlq", "show", poison_id],
    ));
    assert_eq!(shown["state"], "DISCARDED");
    assert_eq!(shown["actions"][0]["note"], "garbage from a test");
    let refusal = ctl(&system, &["dlq", "redrive", poison_id, "--note", "oops"]);
    assert!(!refusal.status.success());
    let refusal = String::from_utf8_lossy(&refusal.stderr);
    assert!(refusal.contains("discarded"), "{refusal}");

    assert_eq!(orders_after.len(), orders.len());
    invariants::check(&system, &initial, &orders_after).await;
}
