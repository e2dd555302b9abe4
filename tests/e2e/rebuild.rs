//! Rebuilding the query side's read model from the log (issue 15), the disaster-recovery
//! scenario of the CQRS design: after a run of orders, `orderly rebuild` beside a live read
//! model switches reads to the rebuilt one; then the read model's database is deleted, and a
//! rebuild into the new one reads every order back identical.

use std::{
    collections::BTreeMap,
    process::{Command, Output},
    time::Duration,
};

use orderly_proto::query::v1::{
    Consistency, GetOrderViewRequest, OrderView, order_view_service_client::OrderViewServiceClient,
};

use crate::support::{
    Options, System, channel, invariants,
    orders::{order_request, place, seed},
    process::BIN,
    quiet,
};

/// `orderly rebuild ARGS` pointed at the system's query side.
fn rebuild(system: &System, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("rebuild")
        .args(["--query", &system.addr("query").to_string()])
        .args(args)
        .output()
        .expect("orderly rebuild runs")
}

/// Every order as a read of `consistency` shows it.
async fn read_all(
    system: &System,
    order_ids: &[String],
    consistency: Consistency,
) -> BTreeMap<String, OrderView> {
    let mut views = OrderViewServiceClient::new(channel(system.addr("query")));
    let mut read = BTreeMap::new();
    for order_id in order_ids {
        let request = GetOrderViewRequest {
            order_id: order_id.clone(),
            consistency: consistency.into(),
        };
        let response = views.get_order_view(request).await;
        let view = (response.unwrap_or_else(|status| panic!("{order_id}: {status:?}")))
            .into_inner()
            .order
            .expect("an order");
        read.insert(order_id.clone(), view);
    }
    read
}

fn stdout_of(run: &Output) -> String {
    assert!(
        run.status.success(),
        "orderly rebuild failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_model_rebuilt_from_the_log_reads_back_every_order_identical() {
    let mut system = System::start(Options::default()).await;
    let initial = seed(
        &system,
        &[("mug", 1_299, 40), ("rare", 500, 2)],
        &[("alice", 100_000), ("bob", 1_000)],
    )
    .await;
    // A run of orders: confirmed, out of stock, unpaid.
    let mut placed = Vec::new();
    for round in 0..8 {
        placed.push(place(&system, order_request("alice", "mug", 1 + round % 3, "")).await);
        placed.push(place(&system, order_request("alice", "rare", 1, "")).await);
        placed.push(place(&system, order_request("bob", "mug", 1, "")).await);
    }
    let orders = quiet::settle(&system).await;
    let ids: Vec<String> = placed.iter().map(|order| order.order_id.clone()).collect();
    let before = read_all(&system, &ids, Consistency::Strict).await;
    let statuses: Vec<&str> = before.values().map(|view| view.status.as_str()).collect();
    assert!(statuses.contains(&"CONFIRMED") && statuses.contains(&"REJECTED"));

    // Beside the live read model: reads switch to generation 2 once it has caught up with it,
    // so an EVENTUAL read right after has everything.
    let run = rebuild(&system, &[]);
    let said = stdout_of(&run);
    assert!(said.contains("reads use generation 2"), "{said}");
    let progress = String::from_utf8_lossy(&run.stderr);
    assert!(
        progress.contains("generation 2:"),
        "no progress: {progress}"
    );
    assert_eq!(read_all(&system, &ids, Consistency::Eventual).await, before);

    // The disaster: the read model's database is gone. The query side starts on a new one and
    // a rebuild replays the log into it.
    system.stop("query");
    let stopped = system.wait_exit("query", Duration::from_secs(30)).await;
    assert!(stopped.is_some(), "the query side did not stop");
    for file in ["query.db", "query.db-wal", "query.db-shm"] {
        let path = system.dir.path().join(file);
        if path.exists() {
            std::fs::remove_file(&path).unwrap();
        }
    }
    system.restart("query").await;
    let run = rebuild(&system, &["--output", "json"]);
    let summary: serde_json::Value = serde_json::from_str(stdout_of(&run).trim()).unwrap();
    assert_eq!(summary["switched"], true, "{summary}");
    assert_eq!(summary["generation"], 2, "a new database's first rebuild");
    assert!(
        summary["events_applied"].as_i64().unwrap() >= 3 * 24,
        "{summary}"
    );
    assert_eq!(summary["events_lost_to_retention"], 0, "{summary}");
    // The new database's own replay runs beside the rebuild, which is switched to once level
    // with it: STRICT waits for the rest.
    assert_eq!(read_all(&system, &ids, Consistency::Strict).await, before);

    invariants::check(&system, &initial, &orders).await;
}
