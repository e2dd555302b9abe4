//! Failure injection, row 8: a compensation that fails k times then succeeds is retried with
//! backoff and its saga ends; one that keeps failing parks the saga, visibly and losing nothing,
//! until an operator retries it (RetrySaga) or declares it done by hand (ResolveSaga); waiting on
//! an open circuit breaker is not a failed attempt.

use std::time::Duration;

use orderly_proto::{
    inventory::v1::{
        GetProductRequest, ReleaseReservationRequest,
        inventory_service_client::InventoryServiceClient,
    },
    order::v1::{GetOrderRequest, OrderStatus, order_service_client::OrderServiceClient},
    saga::v1::{
        ListSagasRequest, ResolveSagaRequest, RetrySagaRequest, Saga, SagaState, StepStatus,
    },
};
use tonic::Code;

use super::{
    BOB, LAPTOP, assert_release_pending, entries, inventory_behind_a_proxy, release_attempts, saga,
    saga_when, sagas, step,
};
use crate::support::{
    System, channel, invariants,
    orders::{find, order_request, place, seed},
    proxy::Fault,
    quiet,
};

/// Parks after this many failed attempts. While the orchestrator's circuit breaker refuses
/// calls (2 s after a run of failures) compensations wait without counting an attempt.
const MAX_ATTEMPTS: u32 = 3;

async fn parked(system: &System, order_id: &str) -> Saga {
    saga_when(system, order_id, "saga parked", |saga| {
        saga.state() == SagaState::Parked
    })
    .await
}

async fn retry(system: &System, order_id: &str) -> Result<Saga, tonic::Status> {
    let request = RetrySagaRequest {
        order_id: order_id.to_owned(),
    };
    let reply = sagas(system).retry_saga(request).await?;
    Ok(reply.into_inner().saga.unwrap())
}

async fn resolve(
    system: &System,
    order_id: &str,
    step: &str,
    note: &str,
) -> Result<Saga, tonic::Status> {
    let request = ResolveSagaRequest {
        order_id: order_id.to_owned(),
        step: step.to_owned(),
        note: note.to_owned(),
    };
    let reply = sagas(system).resolve_saga(request).await?;
    Ok(reply.into_inner().saga.unwrap())
}

fn assert_refused(result: Result<Saga, tonic::Status>, code: Code, mentions: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(mentions),
        "{status:?} names {mentions}"
    );
}

/// What an operator does once the participant is back: one retry completes the saga, also
/// when the orchestrator's circuit breaker still refuses calls for a while after the heal.
async fn retry_completes(system: &System, order_id: &str) {
    retry(system, order_id).await.unwrap();
    let settled = saga_when(system, order_id, "retried saga settles", |s| {
        matches!(s.state(), SagaState::Rejected | SagaState::Parked)
    })
    .await;
    assert_eq!(settled.state(), SagaState::Rejected, "{settled:?}");
}

async fn laptops_reserved(system: &System) -> u32 {
    let mut inventory = InventoryServiceClient::new(channel(system.addr("inventory")));
    let request = GetProductRequest {
        sku: "laptop".into(),
    };
    let product = inventory.get_product(request).await.unwrap().into_inner();
    product.product.unwrap().reserved
}

#[tokio::test(flavor = "multi_thread")]
async fn row_8_compensation_failing_k_times_then_succeeding_is_retried_with_backoff() {
    let (system, link) = inventory_behind_a_proxy(1_000).await;
    let initial = seed(&system, &[LAPTOP], &[BOB]).await;
    link.set(Fault::Reset);
    let order = place(&system, order_request("bob", "laptop", 1, "")).await;
    let id = order.order_id.as_str();
    saga_when(&system, id, "first failed release", |s| {
        release_attempts(s) >= 1
    })
    .await;
    let first = tokio::time::Instant::now();
    let failing = saga_when(&system, id, "fourth failed release", |s| {
        release_attempts(s) >= 4
    })
    .await;
    // Backoff between attempts 1-2, 2-3 and 3-4 is 200 + 400 + 800 ms; without it the
    // compensator's 200 ms tick would retry three times in 600 ms.
    assert!(
        first.elapsed() >= Duration::from_millis(1_000),
        "retried with backoff, not hammered: {:?}",
        first.elapsed()
    );
    assert_release_pending(&failing, "high limit: never parked");
    assert!(
        !step(&failing, "reserve_inventory").detail.is_empty(),
        "the last error is shown"
    );

    link.heal();
    let orders = quiet::settle(&system).await;
    assert_eq!(find(&orders, id).status(), OrderStatus::Rejected);
    // The order is decided before its compensation is confirmed: the next attempt comes after
    // the current backoff (1.6 s by now), however soon the events settle.
    let done = saga_when(&system, id, "release confirmed after the heal", |s| {
        step(s, "reserve_inventory").status() == StepStatus::StepCompensated
    })
    .await;
    assert_eq!(done.state(), SagaState::Rejected);
    let released = step(&done, "reserve_inventory");
    assert!(
        released.attempts >= 4,
        "failures stay counted: {released:?}"
    );
    assert_eq!(entries(&done, "Compensated"), 1);
    assert_eq!(entries(&done, "CompensationFailing"), 0);
    invariants::check(&system, &initial, &orders).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row_8_compensation_failing_forever_parks_the_saga_until_an_operator_retries_it() {
    let (system, link) = inventory_behind_a_proxy(MAX_ATTEMPTS).await;
    let initial = seed(&system, &[LAPTOP], &[BOB]).await;
    link.set(Fault::Reset);
    let order = place(&system, order_request("bob", "laptop", 1, "")).await;
    let id = order.order_id.as_str();

    // Parked, visibly: in GetSaga and ListSagas, with the reason; nothing lost meanwhile.
    let parked_saga = parked(&system, id).await;
    assert!(
        parked_saga.reason.contains("keeps failing"),
        "{}",
        parked_saga.reason
    );
    assert_eq!(release_attempts(&parked_saga), MAX_ATTEMPTS);
    let listed = sagas(&system)
        .list_sagas(ListSagasRequest {
            state: SagaState::Parked.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .sagas;
    assert_eq!(
        listed
            .iter()
            .map(|s| s.order_id.as_str())
            .collect::<Vec<_>>(),
        [id]
    );
    let mut orders_api = OrderServiceClient::new(channel(system.addr("order")));
    let request = GetOrderRequest {
        order_id: id.to_owned(),
    };
    let order_now = orders_api.get_order(request).await.unwrap().into_inner();
    // Events of different topics may reach the orchestrator in either order: a decline seen
    // before the reservation rejects the saga at once (the reservation is then a late success
    // being compensated); otherwise nothing is decided while the release keeps failing.
    let seen = |event_type: &str| {
        let history = &parked_saga.history;
        history
            .iter()
            .position(|entry| entry.event_type == event_type)
    };
    let expected = if seen("PaymentDeclined") < seen("InventoryReserved") {
        OrderStatus::Rejected
    } else {
        OrderStatus::Pending
    };
    assert_eq!(order_now.order.unwrap().status(), expected);
    assert_eq!(
        laptops_reserved(&system).await,
        1,
        "the reservation is still held"
    );

    // Bad requests name the field; unknown sagas are NOT_FOUND.
    assert_refused(
        retry(&system, "not-a-uuid").await,
        Code::InvalidArgument,
        "order_id",
    );
    let unknown = "0190f3a1-0000-7000-8000-000000000000";
    assert_refused(retry(&system, unknown).await, Code::NotFound, unknown);

    // A retry while inventory is still unreachable: the attempt counter starts again from
    // zero (it parks after MAX_ATTEMPTS more failures, not after one).
    let retried = retry(&system, id).await.unwrap();
    assert_ne!(retried.state(), SagaState::Rejected);
    assert_eq!(entries(&retried, "OperatorRetry"), 1);
    let parked_again = saga_when(&system, id, "parked a second time", |s| {
        s.state() == SagaState::Parked && entries(s, "CompensationFailing") == 2
    })
    .await;
    assert_eq!(
        release_attempts(&parked_again),
        MAX_ATTEMPTS,
        "counter was reset"
    );

    // Healed, and retried: the saga completes.
    link.heal();
    retry_completes(&system, id).await;
    let orders = quiet::settle(&system).await;
    let decided = find(&orders, id);
    assert_eq!(decided.status(), OrderStatus::Rejected);
    assert!(
        decided.reason.contains("insufficient funds"),
        "{}",
        decided.reason
    );
    let done = saga(&system, id).await;
    assert_eq!(done.state(), SagaState::Rejected);
    assert_eq!(entries(&done, "Compensated"), 1);
    assert_refused(
        retry(&system, id).await,
        Code::FailedPrecondition,
        "REJECTED",
    );
    invariants::check(&system, &initial, &orders).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row_8_an_operator_resolves_a_parked_compensation_by_hand() {
    let (system, link) = inventory_behind_a_proxy(MAX_ATTEMPTS).await;
    let initial = seed(&system, &[LAPTOP], &[BOB]).await;
    link.set(Fault::Reset);
    let by_hand = place(&system, order_request("bob", "laptop", 1, "")).await;
    let retried = place(&system, order_request("bob", "laptop", 1, "")).await;
    let id = by_hand.order_id.as_str();
    parked(&system, id).await;
    parked(&system, &retried.order_id).await;

    assert_refused(
        resolve(&system, id, "bogus", "x").await,
        Code::InvalidArgument,
        "step",
    );
    assert_refused(
        resolve(&system, id, "reserve_inventory", " ").await,
        Code::InvalidArgument,
        "note",
    );
    assert_refused(
        resolve(&system, id, "authorize_payment", "x").await,
        Code::FailedPrecondition,
        "STEP_FAILED",
    );
    assert_refused(
        resolve(&system, "nope", "reserve_inventory", "x").await,
        Code::InvalidArgument,
        "order_id",
    );

    // The operator releases the stock out of band (inventory's own API, not the broken link),
    // then tells the orchestrator.
    let mut inventory = InventoryServiceClient::new(channel(system.addr("inventory")));
    let release = ReleaseReservationRequest {
        order_id: id.to_owned(),
        reason: "released by hand".into(),
    };
    inventory.release_reservation(release).await.unwrap();
    let note = "released by hand, ticket OPS-42";
    let resolved = resolve(&system, id, "reserve_inventory", note)
        .await
        .unwrap();
    assert_eq!(resolved.state(), SagaState::Rejected);
    assert_eq!(
        step(&resolved, "reserve_inventory").status(),
        StepStatus::StepCompensated
    );
    let recorded = resolved
        .history
        .iter()
        .find(|entry| entry.event_type == "OperatorResolved")
        .expect("the resolution is in the history");
    assert!(recorded.note.contains("OPS-42"), "{recorded:?}");

    // The same request again changes nothing; a retry of a finished saga is refused.
    let again = resolve(&system, id, "reserve_inventory", note)
        .await
        .unwrap();
    assert_eq!(again.history.len(), resolved.history.len());
    assert_refused(
        retry(&system, id).await,
        Code::FailedPrecondition,
        "REJECTED",
    );

    // The other parked saga is retried once inventory is reachable again.
    link.heal();
    retry_completes(&system, &retried.order_id).await;
    let orders = quiet::settle(&system).await;
    for order in [&by_hand, &retried] {
        assert_eq!(
            find(&orders, &order.order_id).status(),
            OrderStatus::Rejected
        );
    }
    invariants::check(&system, &initial, &orders).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row_8_a_saga_waiting_on_an_open_circuit_breaker_keeps_its_attempts() {
    let (system, link) = inventory_behind_a_proxy(2).await;
    let initial = seed(&system, &[LAPTOP], &[BOB]).await;
    link.set(Fault::Reset);
    let first = place(&system, order_request("bob", "laptop", 1, "")).await;
    parked(&system, &first.order_id).await;

    // The first saga's failures opened the orchestrator's circuit breaker: for 2 s calls to
    // inventory are refused without reaching it. The next saga's compensation waits that out
    // instead of counting refusals as attempts (which parked it in a few hundred ms without
    // inventory ever being asked): each of its attempts reaches the link.
    let before = link.connections_accepted();
    let second = place(&system, order_request("bob", "laptop", 1, "")).await;
    let second_parked = parked(&system, &second.order_id).await;
    assert_eq!(release_attempts(&second_parked), 2);
    let calls = link.connections_accepted() - before;
    assert!(
        calls >= 2,
        "parked after 2 attempts that made {calls} connections"
    );

    link.heal();
    for order in [&first, &second] {
        retry_completes(&system, &order.order_id).await;
    }
    let orders = quiet::settle(&system).await;
    for order in [&first, &second] {
        assert_eq!(
            find(&orders, &order.order_id).status(),
            OrderStatus::Rejected
        );
    }
    invariants::check(&system, &initial, &orders).await;
}
