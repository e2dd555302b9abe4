//! Sagas as data: a saga declared in a file, with a third step run by a participant Orderly does
//! not ship (shipping, from `support::shipping`), and a deploy that adds that step while sagas of
//! the old version are in flight. The orchestrator is the shipped binary; nothing of it changes
//! but its saga definition files.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::{Path, PathBuf},
    rc::Rc,
    time::Duration,
};

use orderly_proto::{
    order::v1::{Order, OrderStatus},
    saga::v1::{GetSagaRequest, Saga, StepStatus, saga_service_client::SagaServiceClient},
};

use crate::support::{
    Options, System, channel, free_port, invariants, loopback,
    orders::{find, order_request, place, seed},
    postgres::Postgres,
    quiet,
    shipping::{self, Shipping},
};

/// The shipped saga (reserve, then pay) as version `version`, with `extra` appended.
fn definition(version: u32, extra: &str) -> String {
    let shipped = orderly_saga::order::V1.replace("version = 1", &format!("version = {version}"));
    format!("{shipped}{extra}")
}

/// The third step: book a shipment once paid; a shipment not booked within 3 s rejects.
fn shipping_step() -> String {
    format!(
        r#"
[[step]]
name = "book_shipment"
by = "shipping"
starts_on = "PaymentAuthorized"
reports_to = "{topic}"
succeeds_on = ["ShipmentBooked"]
fails_on = ["ShipmentFailed"]
compensated_by = "{cancel}"
timeout_ms = 3000
"#,
        topic = shipping::TOPIC,
        cancel = shipping::CANCEL,
    )
}

/// The orchestrator's settings for the three-step saga (its file written in `dir`), with the
/// shipping participant at `shipping`.
pub(crate) fn three_step_env(
    dir: &Path,
    shipping: SocketAddr,
) -> Vec<(&'static str, &'static str, String)> {
    let three_steps = write(dir, "order-v1.toml", &definition(1, &shipping_step()));
    vec![
        (
            "orchestrator",
            "ORDERLY_SAGA_DEFINITIONS",
            paths(&[&three_steps]),
        ),
        (
            "orchestrator",
            "ORDERLY_PARTICIPANTS",
            format!("shipping=http://{shipping}"),
        ),
    ]
}

/// The shipped saga as version 1 and, with shipping added, as version 2, written in `dir`.
fn two_versions(dir: &Path) -> (PathBuf, PathBuf) {
    let v1 = write(dir, "order-v1.toml", &definition(1, ""));
    let v2 = write(dir, "order-v2.toml", &definition(2, &shipping_step()));
    (v1, v2)
}

/// The orchestrator's next start (or next replica) knows `versions` and the shipping
/// participant at `shipping`.
fn upgrade(system: &mut System, versions: [&PathBuf; 2], shipping: SocketAddr) {
    system.set_env(
        "orchestrator",
        "ORDERLY_SAGA_DEFINITIONS",
        &paths(&versions),
    );
    let participant = format!("shipping=http://{shipping}");
    system.set_env("orchestrator", "ORDERLY_PARTICIPANTS", &participant);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("definition written");
    path
}

fn paths(files: &[&PathBuf]) -> String {
    let shown: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    shown.join(",")
}

async fn saga(system: &System, order_id: &str) -> Saga {
    let mut sagas = SagaServiceClient::new(channel(system.addr("orchestrator")));
    let request = GetSagaRequest {
        order_id: order_id.to_owned(),
    };
    sagas
        .get_saga(request)
        .await
        .unwrap()
        .into_inner()
        .saga
        .unwrap()
}

fn status(saga: &Saga, step: &str) -> StepStatus {
    let found = saga.steps.iter().find(|s| s.name == step);
    found
        .unwrap_or_else(|| panic!("saga {} has no step {step}", saga.order_id))
        .status()
}

/// Where in the saga's history the compensation of `step` was recorded.
fn compensated_at(saga: &Saga, step: &str) -> usize {
    let note = format!("{step} compensated");
    saga.history
        .iter()
        .position(|entry| entry.event_type == "Compensated" && entry.note.starts_with(&note))
        .unwrap_or_else(|| panic!("no compensation of {step} in {:#?}", saga.history))
}

fn settled<'a>(orders: &'a [Order], order: &Order, wanted: OrderStatus) -> &'a Order {
    let found = find(orders, &order.order_id);
    assert_eq!(
        found.status(),
        wanted,
        "{}: {}",
        found.order_id,
        found.reason
    );
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn three_step_saga_confirms_compensates_in_reverse_and_times_out_per_step() {
    let files = tempfile::tempdir().unwrap();
    let shipping_addr = loopback(free_port());
    let system = System::start(Options {
        env: three_step_env(files.path(), shipping_addr),
        ..Options::default()
    })
    .await;
    let shipping = Shipping::start(&system.kafka, system.dir.path(), shipping_addr).await;
    let initial = seed(
        &system,
        &[("mug", 1_299, 10)],
        &[
            ("alice", 100_000),
            ("nowhere-bob", 100_000),
            ("slow-carol", 100_000),
        ],
    )
    .await;
    let shipped = place(&system, order_request("alice", "mug", 1, "")).await;
    let no_address = place(&system, order_request("nowhere-bob", "mug", 2, "")).await;
    let too_slow = place(&system, order_request("slow-carol", "mug", 3, "")).await;
    let orders = quiet::settle(&system).await;

    // Every step succeeded: confirmed, and the shipment stays booked.
    settled(&orders, &shipped, OrderStatus::Confirmed);
    let confirmed = saga(&system, &shipped.order_id).await;
    assert_eq!(
        (confirmed.definition.as_str(), confirmed.definition_version),
        ("order", 1)
    );
    for step in ["reserve_inventory", "authorize_payment", "book_shipment"] {
        assert_eq!(
            status(&confirmed, step),
            StepStatus::StepSucceeded,
            "{step}"
        );
    }
    assert_eq!(
        shipping.shipment(&shipped.order_id).await.as_deref(),
        Some("BOOKED")
    );

    // Step 3 failed: payment refunded, then stock released, in that order.
    let failed = settled(&orders, &no_address, OrderStatus::Rejected);
    assert!(
        failed.reason.contains("no delivery address"),
        "{}",
        failed.reason
    );
    let rejected = saga(&system, &no_address.order_id).await;
    assert_eq!(status(&rejected, "book_shipment"), StepStatus::StepFailed);
    for step in ["reserve_inventory", "authorize_payment"] {
        assert_eq!(
            status(&rejected, step),
            StepStatus::StepCompensated,
            "{step}"
        );
    }
    assert!(
        compensated_at(&rejected, "authorize_payment")
            < compensated_at(&rejected, "reserve_inventory"),
        "payment is refunded before the stock is released"
    );
    assert_eq!(shipping.shipment(&no_address.order_id).await, None);

    // Step 3 never answered: its own deadline rejected the saga, and the same reverse order.
    let late = settled(&orders, &too_slow, OrderStatus::Rejected);
    assert!(
        late.reason.contains("deadline passed before book_shipment"),
        "{}",
        late.reason
    );
    let timed_out = saga(&system, &too_slow.order_id).await;
    assert_eq!(status(&timed_out, "book_shipment"), StepStatus::StepPending);
    assert!(
        compensated_at(&timed_out, "authorize_payment")
            < compensated_at(&timed_out, "reserve_inventory"),
        "payment is refunded before the stock is released"
    );

    invariants::check(&system, &initial, &orders).await;
    shipping.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_step_upgrade_finishes_every_saga_under_the_version_it_started_with() {
    let files = tempfile::tempdir().unwrap();
    let (v1, v2) = two_versions(files.path());
    let shipping_addr = loopback(free_port());
    let mut system = System::start(Options {
        env: vec![("orchestrator", "ORDERLY_SAGA_DEFINITIONS", paths(&[&v1]))],
        ..Options::default()
    })
    .await;
    let shipping = Shipping::start(&system.kafka, system.dir.path(), shipping_addr).await;
    let initial = seed(&system, &[("mug", 1_299, 20)], &[("alice", 100_000)]).await;

    // Payment answers calls but hears no events (its broker address leads nowhere): sagas of
    // version 1 start and wait at their second step.
    system.kill("payment");
    let nowhere = loopback(free_port()).to_string();
    system.set_env("payment", "ORDERLY_KAFKA_BOOTSTRAP", &nowhere);
    system.restart("payment").await;
    let mut old = Vec::new();
    for _ in 0..3 {
        old.push(place(&system, order_request("alice", "mug", 1, "")).await);
    }
    for order in &old {
        let started = poll_saga(&system, &order.order_id, |saga| {
            saga.steps
                .iter()
                .any(|s| s.name == "reserve_inventory" && s.status() == StepStatus::StepSucceeded)
        })
        .await;
        assert_eq!((started.definition_version, started.steps.len()), (1, 2));
        assert_eq!(
            status(&started, "authorize_payment"),
            StepStatus::StepPending
        );
    }

    // The deploy: the orchestrator now knows version 2, which adds shipping.
    system.kill("orchestrator");
    upgrade(&mut system, [&v1, &v2], shipping_addr);
    system.restart("orchestrator").await;
    system.kill("payment");
    let kafka = system.kafka.clone();
    system.set_env("payment", "ORDERLY_KAFKA_BOOTSTRAP", &kafka);
    system.restart("payment").await;
    let mut new = Vec::new();
    for _ in 0..3 {
        new.push(place(&system, order_request("alice", "mug", 1, "")).await);
    }
    let orders = quiet::settle(&system).await;

    for order in &old {
        settled(&orders, order, OrderStatus::Confirmed);
        let finished = saga(&system, &order.order_id).await;
        assert_eq!((finished.definition_version, finished.steps.len()), (1, 2));
    }
    for order in &new {
        settled(&orders, order, OrderStatus::Confirmed);
        let finished = saga(&system, &order.order_id).await;
        assert_eq!((finished.definition_version, finished.steps.len()), (2, 3));
        assert_eq!(
            status(&finished, "book_shipment"),
            StepStatus::StepSucceeded
        );
        assert_eq!(
            shipping.shipment(&order.order_id).await.as_deref(),
            Some("BOOKED")
        );
    }
    invariants::check(&system, &initial, &orders).await;
    shipping.stop().await;
}

/// A rolling upgrade with a surge: beside the running orchestrator, which knows version 1 only,
/// a replica that also knows version 2 starts; both serve, on one PostgreSQL, until the old one
/// is stopped and comes back upgraded. Sagas the new replica started run under version 2 (with
/// shipping) even where the old one holds their partitions or the lease on compensations: it
/// leaves them alone, and they finish once it is gone.
#[tokio::test(flavor = "multi_thread")]
async fn three_step_rollout_with_old_and_new_orchestrators_side_by_side_finishes_every_saga() {
    let files = tempfile::tempdir().unwrap();
    let (v1, v2) = two_versions(files.path());
    let shipping_addr = loopback(free_port());
    let postgres = Rc::new(Postgres::start());
    let mut system = System::start(Options {
        database_url: postgres.databases(),
        env: vec![("orchestrator", "ORDERLY_SAGA_DEFINITIONS", paths(&[&v1]))],
        ..Options::default()
    })
    .await;
    let shipping = Shipping::start(&system.kafka, system.dir.path(), shipping_addr).await;
    let initial = seed(
        &system,
        &[("mug", 1_299, 100)],
        &[("alice", 1_000_000), ("bob", 100)],
    )
    .await;
    let old = place(&system, order_request("alice", "mug", 1, "")).await;
    poll_saga(&system, &old.order_id, |_| true).await;

    // The surge: the new version starts beside the old one (which keeps its settings).
    upgrade(&mut system, [&v1, &v2], shipping_addr);
    system.add_replica("orchestrator").await;
    // Inventory and payment ask whichever replica answers before they undo a step.
    system.point_callers_at_every("orchestrator").await;
    // Orders, every other one declined (compensated), until the new replica has started sagas
    // of both kinds: it does once the group has given it partitions.
    let mut placed = Vec::new();
    let mut started_under_v2 = BTreeSet::new();
    while started_under_v2.len() < 2 {
        assert!(
            placed.len() < 60,
            "started under version 2: {started_under_v2:?}"
        );
        let customer = if placed.len() % 2 == 0 {
            "alice"
        } else {
            "bob"
        };
        let order = place(&system, order_request(customer, "mug", 1, "")).await;
        let saga = poll_saga(&system, &order.order_id, |_| true).await;
        if saga.definition_version == 2 {
            started_under_v2.insert(customer);
        }
        placed.push((customer, order));
    }

    // The rollout ends: the old replica drains and stops, and comes back as the new version.
    system.stop("orchestrator");
    let stopped = system
        .wait_exit("orchestrator", Duration::from_secs(60))
        .await;
    assert!(stopped.is_some(), "the old orchestrator did not stop");
    system.restart("orchestrator").await;
    let orders = quiet::settle(&system).await;

    settled(&orders, &old, OrderStatus::Confirmed);
    for (customer, order) in &placed {
        let finished = saga(&system, &order.order_id).await;
        let steps = if finished.definition_version == 2 {
            3
        } else {
            2
        };
        assert_eq!(finished.steps.len(), steps, "{finished:#?}");
        if *customer == "bob" {
            settled(&orders, order, OrderStatus::Rejected);
            assert_eq!(
                status(&finished, "reserve_inventory"),
                StepStatus::StepCompensated
            );
        } else {
            settled(&orders, order, OrderStatus::Confirmed);
            if finished.definition_version == 2 {
                assert_eq!(
                    shipping.shipment(&order.order_id).await.as_deref(),
                    Some("BOOKED")
                );
            }
        }
    }
    invariants::check(&system, &initial, &orders).await;
    shipping.stop().await;
}

/// The order's saga once it is `wanted`.
async fn poll_saga(system: &System, order_id: &str, wanted: impl Fn(&Saga) -> bool) -> Saga {
    let mut sagas = SagaServiceClient::new(channel(system.addr("orchestrator")));
    let deadline = tokio::time::Instant::now() + quiet::SETTLE;
    loop {
        let request = GetSagaRequest {
            order_id: order_id.to_owned(),
        };
        if let Ok(reply) = sagas.get_saga(request).await {
            let saga = reply.into_inner().saga.unwrap();
            if wanted(&saga) {
                return saga;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no saga for {order_id}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Runs `orderly orchestrator` with `envs` until it exits (it must, before serving anything);
/// its data, were it to start, would go to `dir`.
fn orchestrator_refuses(dir: &Path, envs: &[(&str, &str)]) -> String {
    let output = std::process::Command::new(crate::support::process::BIN)
        .arg("orchestrator")
        .env("ORDERLY_DATA_DIR", dir)
        .env("ORDERLY_METRICS_ADDR", "off")
        .env("ORDERLY_LISTEN_ADDR", loopback(free_port()).to_string())
        .envs(envs.iter().copied())
        .output()
        .expect("orderly orchestrator runs");
    assert!(!output.status.success(), "the orchestrator started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn three_step_definitions_that_break_a_rule_stop_the_orchestrator_at_start() {
    let files = tempfile::tempdir().unwrap();
    let broken =
        shipping_step().replace("starts_on = \"PaymentAuthorized\"", "starts_on = \"Paid\"");
    let broken = write(files.path(), "broken.toml", &definition(1, &broken));
    let stderr = orchestrator_refuses(
        files.path(),
        &[("ORDERLY_SAGA_DEFINITIONS", &paths(&[&broken]))],
    );
    assert!(
        stderr.contains("step book_shipment") && stderr.contains("the chain is broken"),
        "names the step and the rule: {stderr}"
    );

    let unreachable = write(
        files.path(),
        "order-v1.toml",
        &definition(1, &shipping_step()),
    );
    let stderr = orchestrator_refuses(
        files.path(),
        &[("ORDERLY_SAGA_DEFINITIONS", &paths(&[&unreachable]))],
    );
    assert!(
        stderr.contains("participant shipping, which has no endpoint"),
        "names the participant: {stderr}"
    );
}
