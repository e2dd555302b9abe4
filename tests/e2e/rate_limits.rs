//! Per-caller rate limits (issue 14). With TLS and auth on, a customer's burst past its bucket is
//! refused with RESOURCE_EXHAUSTED and a retry hint, while another customer and the components
//! calling one another go on; after the hint the customer is let in again.

use std::time::Duration;

use orderly::secure::Authority;
use orderly_common::{auth::Role, error::RETRY_PUSHBACK};
use orderly_proto::{
    order::v1::OrderStatus,
    payment::v1::{GetAccountRequest, payment_service_client::PaymentServiceClient},
};
use tonic::{Code, Status};

use crate::support::{
    Options, System, TestChannel,
    orders::{order_request, place, seed},
    prometheus::scrape,
    quiet,
    tls::channel_with_token,
};

const BURST: usize = 5;

/// Payment's API as `token`'s subject.
fn payment_as(system: &System, token: &str) -> PaymentServiceClient<TestChannel> {
    PaymentServiceClient::new(channel_with_token(system.addr("payment"), token))
}

async fn get_account(
    payment: &mut PaymentServiceClient<TestChannel>,
    customer: &str,
) -> Result<(), Status> {
    let request = GetAccountRequest {
        customer_id: customer.into(),
    };
    payment.get_account(request).await.map(drop)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_past_a_callers_rate_limit_is_refused_then_accepted_again() {
    let limit = |name, value: &str| ("payment", name, value.to_owned());
    let system = System::start(Options {
        auth: true,
        env: vec![
            limit("ORDERLY_RATE_LIMIT_PER_SEC", "2"),
            limit("ORDERLY_RATE_LIMIT_BURST", &BURST.to_string()),
        ],
        ..Options::default()
    })
    .await;
    seed(
        &system,
        &[("mug", 1_299, 5)],
        &[("alice", 100_000), ("bob", 100_000)],
    )
    .await;
    let issuer = Authority::open(&system.dir.path().join("secure"))
        .unwrap()
        .token_issuer()
        .unwrap();
    let hour = Duration::from_secs(3600);
    let alice = issuer.token("alice", &[Role::Customer], hour).unwrap();
    let bob = issuer.token("bob", &[Role::Customer], hour).unwrap();
    let mut as_alice = payment_as(&system, &alice);

    // Twice the burst at once: the bucket lets the burst through (and perhaps one it refilled
    // meanwhile), then refuses, saying who and when to come back.
    let mut refusals = Vec::new();
    for _ in 0..2 * BURST {
        if let Err(refused) = get_account(&mut as_alice, "alice").await {
            refusals.push(refused);
        }
    }
    assert!(
        (BURST - 2..=BURST).contains(&refusals.len()),
        "{} of {} refused: {refusals:#?}",
        refusals.len(),
        2 * BURST
    );
    let last = refusals.last().unwrap();
    assert_eq!(last.code(), Code::ResourceExhausted, "{last:?}");
    assert!(
        last.message().contains("alice") && last.message().contains("rate limit"),
        "{last:?}"
    );
    let pushback: u64 = (last.metadata().get(RETRY_PUSHBACK))
        .expect("a retry hint")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1_000).contains(&pushback), "retry in {pushback} ms");

    // After the hint, alice is let in again.
    tokio::time::sleep(Duration::from_millis(pushback)).await;
    get_account(&mut as_alice, "alice")
        .await
        .expect("let in again after the retry hint");

    // Bob has his own bucket; the order service calls payment with its certificate, unlimited.
    get_account(&mut payment_as(&system, &bob), "bob")
        .await
        .expect("bob is not limited by alice's calls");
    place(&system, order_request("alice", "mug", 1, "")).await;
    let orders = quiet::settle(&system).await;
    assert_eq!(orders[0].status(), OrderStatus::Confirmed, "{orders:#?}");

    let limited = scrape(system.metrics_addr("payment"))
        .await
        .sum("orderly_rate_limited_total", &[]);
    assert_eq!(limited, refusals.len() as f64);
}
