//! The query side (issue 15): a read model of orders that a projection keeps from the event
//! topics in its own database. A STRICT read right after a decision returns it; an EVENTUAL
//! read while the projection is paused returns the older state and says how stale it is, and a
//! STRICT one then refuses to answer stale instead.

use std::time::Duration;

use orderly_proto::{
    order::v1::{OrderStatus, order_service_client::OrderServiceClient},
    query::v1::{
        Consistency, GetOrderViewRequest, GetOrderViewResponse, PauseProjectionRequest,
        ResumeProjectionRequest, order_view_service_client::OrderViewServiceClient,
    },
};
use tonic::Code;

use crate::support::{
    Options, System, TestChannel, channel, invariants,
    orders::{order_request, place, seed, usd, watch_decided},
    quiet,
};

const DECISION: Duration = Duration::from_secs(20);

async fn read(
    views: &mut OrderViewServiceClient<TestChannel>,
    order_id: &str,
    consistency: Consistency,
) -> Result<GetOrderViewResponse, tonic::Status> {
    let request = GetOrderViewRequest {
        order_id: order_id.to_owned(),
        consistency: consistency.into(),
    };
    views
        .get_order_view(request)
        .await
        .map(tonic::Response::into_inner)
}

/// The view once the read model shows payment's answer (a bounded poll of EVENTUAL reads).
async fn view_with_payment(
    views: &mut OrderViewServiceClient<TestChannel>,
    order_id: &str,
) -> GetOrderViewResponse {
    let deadline = tokio::time::Instant::now() + DECISION;
    loop {
        if let Ok(view) = read(views, order_id, Consistency::Eventual).await
            && view
                .order
                .as_ref()
                .is_some_and(|order| !order.payment.is_empty())
        {
            return view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the read model never showed payment's answer for {order_id}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_reads_see_the_decision_and_eventual_reads_say_how_stale_they_are() {
    let system = System::start(Options {
        env: vec![("query", "ORDERLY_STRICT_WAIT_MS", "1000".into())],
        ..Options::default()
    })
    .await;
    let initial = seed(&system, &[("mug", 1_299, 10)], &[("alice", 100_000)]).await;
    let mut orders = OrderServiceClient::new(channel(system.addr("order")));
    let mut views = OrderViewServiceClient::new(channel(system.addr("query")));

    // STRICT, right after the decision the order service streamed: the read model has it.
    let first = place(&system, order_request("alice", "mug", 2, "")).await;
    let decided = watch_decided(&mut orders, &first.order_id, DECISION).await;
    assert_eq!(decided.last().unwrap().status(), OrderStatus::Confirmed);
    let strict = read(&mut views, &first.order_id, Consistency::Strict)
        .await
        .expect("a strict read");
    assert_eq!(strict.consistency(), Consistency::Strict);
    let view = strict.order.unwrap();
    assert_eq!(
        (
            view.status.as_str(),
            view.inventory.as_str(),
            view.payment.as_str()
        ),
        ("CONFIRMED", "RESERVED", "AUTHORIZED")
    );
    assert_eq!(
        (view.customer_id.as_str(), view.total),
        ("alice", usd(2 * 1_299))
    );
    assert_eq!(strict.staleness.unwrap().events_behind, 0);

    // An order whose outcome comes while the projection is paused.
    system.pause("orchestrator");
    let second = place(&system, order_request("alice", "mug", 1, "")).await;
    let before = view_with_payment(&mut views, &second.order_id).await;
    assert_eq!(before.order.unwrap().status, "PENDING");
    let paused = views
        .pause_projection(PauseProjectionRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(paused.paused);
    system.resume("orchestrator");
    let decided = watch_decided(&mut orders, &second.order_id, DECISION).await;
    assert_eq!(decided.last().unwrap().status(), OrderStatus::Confirmed);

    // EVENTUAL: the older state at once, and how far behind it is.
    let eventual = read(&mut views, &second.order_id, Consistency::Unspecified)
        .await
        .expect("an eventual read");
    assert_eq!(eventual.consistency(), Consistency::Eventual, "the default");
    assert_eq!(
        eventual.order.unwrap().status,
        "PENDING",
        "the state before the pause"
    );
    let staleness = eventual.staleness.unwrap();
    assert!(staleness.events_behind >= 1, "{staleness:?}");
    assert!(staleness.last_applied_at.is_some(), "{staleness:?}");
    // STRICT will not answer stale: it says why.
    let refused = read(&mut views, &second.order_id, Consistency::Strict)
        .await
        .expect_err("the read model cannot catch up while paused");
    assert_eq!(refused.code(), Code::DeadlineExceeded, "{refused:?}");
    assert!(refused.message().contains("paused"), "{refused:?}");

    views
        .resume_projection(ResumeProjectionRequest {})
        .await
        .unwrap();
    let strict = read(&mut views, &second.order_id, Consistency::Strict)
        .await
        .expect("caught up once resumed");
    assert_eq!(strict.order.unwrap().status, "CONFIRMED");
    assert_eq!(strict.staleness.unwrap().events_behind, 0);

    let unknown = read(
        &mut views,
        &uuid::Uuid::now_v7().to_string(),
        Consistency::Eventual,
    )
    .await
    .expect_err("no such order");
    assert_eq!(unknown.code(), Code::NotFound);

    let orders = quiet::settle(&system).await;
    invariants::check(&system, &initial, &orders).await;
}
