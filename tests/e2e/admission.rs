//! Overload handled at the door: while the orders already waiting would not be decided in time,
//! PlaceOrder refuses new ones with RESOURCE_EXHAUSTED and a retry hint, instead of accepting
//! orders their deadline would reject; it takes orders again once decisions flow.

use std::time::Duration;

use orderly_common::error::RETRY_PUSHBACK;
use orderly_proto::order::v1::order_service_client::OrderServiceClient;
use tonic::Code;

use crate::support::{
    Options, STARTUP, System, channel, invariants,
    orders::{order_request, seed},
    quiet,
};

/// Orders that may always wait, in this test.
const FLOOR: usize = 4;

#[tokio::test(flavor = "multi_thread")]
async fn place_order_refuses_work_that_could_not_be_decided_in_time() {
    let settings = [
        ("ORDERLY_ADMISSION_FLOOR", FLOOR.to_string()),
        ("ORDERLY_ADMISSION_MAX_WAIT_MS", "1000".to_owned()),
    ];
    let options = Options {
        env: settings
            .into_iter()
            .map(|(key, value)| ("order", key, value))
            .collect(),
        ..Options::default()
    };
    let system = System::start(options).await;
    let initial = seed(&system, &[("mug", 1_299, 100)], &[("alice", 1_000_000)]).await;
    let mut orders = OrderServiceClient::new(channel(system.addr("order")));
    // Nothing is decided while the orchestrator is frozen: the waiting orders reach the floor.
    system.pause("orchestrator");
    for i in 0..FLOOR {
        let request = order_request("alice", "mug", 1, &format!("admitted-{i}"));
        orders.place_order(request).await.unwrap();
    }
    let refused = orders
        .place_order(order_request("alice", "mug", 1, "refused"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("overloaded"), "{refused:?}");
    let hint: u64 = refused
        .metadata()
        .get(RETRY_PUSHBACK)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("a retry hint in {RETRY_PUSHBACK}: {refused:?}"));
    assert!((50..=5_000).contains(&hint), "hint {hint} ms");

    // Decisions flow again: once the backlog is sampled as decided, orders are taken again.
    system.resume("orchestrator");
    let deadline = tokio::time::Instant::now() + STARTUP;
    loop {
        match orders
            .place_order(order_request("alice", "mug", 1, "after"))
            .await
        {
            Ok(_) => break,
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still refused: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("PlaceOrder failed: {status:?}"),
        }
    }
    let settled = quiet::settle(&system).await;
    assert_eq!(
        settled.len(),
        FLOOR + 1,
        "the refused order was never stored"
    );
    invariants::check(&system, &initial, &settled).await;
}
