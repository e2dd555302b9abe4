//! `orderly ctl` (issue 15) against a running system, as an operator runs it: sagas listed by
//! state, one shown as JSON with its steps, a refused retry and an unknown saga reported with the
//! server's code and message, an order watched until it is decided, and consumer lag.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Output, Stdio},
};

use crate::support::{
    self, Options, System, free_port, loopback,
    orders::{order_request, place, seed},
    process::BIN,
    quiet,
};

fn ctl(system: &System, args: &[&str]) -> Output {
    support::ctl::run(system, args)
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "orderly ctl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn refusal_of(output: &Output) -> String {
    assert!(!output.status.success(), "orderly ctl should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_lists_shows_and_watches_and_reports_refusals() {
    let system = System::start(Options::default()).await;
    seed(
        &system,
        &[("mug", 1_299, 10), ("laptop", 149_900, 5)],
        &[("alice", 100_000), ("bob", 2_000)],
    )
    .await;
    let confirmed = place(&system, order_request("alice", "mug", 1, "")).await;
    let rejected = place(&system, order_request("bob", "laptop", 1, "")).await;
    quiet::settle(&system).await;

    // Listed by state: bob's rejected saga, not alice's confirmed one.
    let listed = stdout_of(&ctl(&system, &["sagas", "list", "--state", "rejected"]));
    assert!(
        listed.starts_with("ORDER"),
        "a table with a header:\n{listed}"
    );
    assert!(listed.contains(&rejected.order_id), "{listed}");
    assert!(listed.contains("REJECTED"), "{listed}");
    assert!(!listed.contains(&confirmed.order_id), "{listed}");

    // Shown as JSON: its steps, the reservation undone.
    let shown = ctl(
        &system,
        &["--output", "json", "sagas", "show", &rejected.order_id],
    );
    let saga: serde_json::Value = serde_json::from_str(&stdout_of(&shown)).unwrap();
    assert_eq!(saga["state"], "REJECTED");
    assert_eq!(saga["customer_id"], "bob");
    let reserve = (saga["steps"].as_array().unwrap().iter())
        .find(|step| step["name"] == "reserve_inventory")
        .expect("the reservation step");
    assert_eq!(reserve["status"], "COMPENSATED", "{saga}");
    assert!(!saga["history"].as_array().unwrap().is_empty());

    // The server's refusals, with their codes: a retry of a saga that is not parked, a saga
    // nobody placed.
    let retry = refusal_of(&ctl(&system, &["sagas", "retry", &rejected.order_id]));
    assert!(retry.contains("FailedPrecondition"), "{retry}");
    let nobody = uuid::Uuid::now_v7().to_string();
    let unknown = refusal_of(&ctl(&system, &["sagas", "show", &nobody]));
    assert!(
        unknown.contains("NotFound") && unknown.contains(&nobody),
        "{unknown}"
    );

    // A new order watched until it is decided: the stream ends and so does the command.
    let watched = place(&system, order_request("alice", "mug", 2, "")).await;
    let lines = stdout_of(&ctl(&system, &["orders", "watch", &watched.order_id]));
    let last = lines.lines().last().unwrap();
    assert!(lines.starts_with("UPDATED"), "{lines}");
    assert!(
        last.contains(&watched.order_id) && last.contains("CONFIRMED"),
        "{lines}"
    );
    let json = ctl(
        &system,
        &["--output", "json", "orders", "watch", &confirmed.order_id],
    );
    let decided: serde_json::Value =
        serde_json::from_str(stdout_of(&json).lines().last().unwrap()).unwrap();
    assert_eq!(decided["status"], "CONFIRMED");

    // A customer followed: the command prints each of their orders as it comes, until stopped.
    let mut following = Command::new(BIN)
        .arg("ctl")
        .args(["--order", &system.addr("order").to_string()])
        .args(["--output", "json", "orders", "watch", "--customer", "bob"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("orderly ctl runs");
    let mut lines = BufReader::new(following.stdout.take().unwrap()).lines();
    let followed = place(&system, order_request("bob", "mug", 1, "")).await;
    let reading = tokio::task::spawn_blocking(move || lines.next());
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), reading)
        .await
        .expect("a line for bob's order within 30 s")
        .unwrap()
        .expect("a line for bob's order")
        .unwrap();
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["order_id"], followed.order_id.as_str(), "{first}");
    following.kill().unwrap();
    following.wait().unwrap();

    // Lag from the broker, per group, topic and partition: every component's group on the
    // topics it consumes, nothing left once the system is quiet.
    quiet::settle(&system).await;
    let lag = ctl(
        &system,
        &[
            "--output",
            "json",
            "lag",
            "--kafka-bootstrap",
            &system.kafka,
        ],
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout_of(&lag)).unwrap();
    for (group, topic) in [
        ("inventory", "orderly.orders.v1"),
        ("orchestrator", "orderly.payments.v1"),
        ("notification", "orderly.sagas.v1"),
    ] {
        assert!(
            rows.iter()
                .any(|row| row["group"] == group && row["topic"] == topic),
            "{group} on {topic} in {rows:?}"
        );
    }
    assert!(rows.iter().all(|row| row["lag"] == 0), "{rows:?}");

    // Logs never mix into what a command prints: with the broker unreachable, librdkafka's
    // complaints and the error go to stderr, and stdout stays empty.
    let closed = loopback(free_port()).to_string();
    let unreachable = ctl(
        &system,
        &["--output", "json", "lag", "--kafka-bootstrap", &closed],
    );
    assert!(refusal_of(&unreachable).contains(&closed));
    assert!(
        unreachable.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&unreachable.stdout)
    );
}
