//! One order's life as a client sees it: PlaceOrder, then the saga's decision, learned from the
//! WatchOrder stream or, from an older Orderly without it, by polling GetOrder.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::Duration,
};

use orderly_proto::order::v1::{
    GetOrderRequest, OrderStatus, PlaceOrderRequest, WatchOrderRequest,
    order_service_client::OrderServiceClient,
};
use tonic::{Code, Status};

use orderly_common::grpc::code_name;

use crate::{
    args::Decisions,
    clients::{Authed, Clients},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Confirmed,
    Rejected,
}

/// Why an order has no outcome for the bench.
#[derive(Debug)]
pub enum Failure {
    /// PlaceOrder answered RESOURCE_EXHAUSTED: the system refused the order at the door.
    Refused,
    /// PlaceOrder failed otherwise; the order may or may not exist.
    Place(Code),
    /// The order was placed but its decision was not learned in time or the wait failed.
    Decide(&'static str),
}

impl Failure {
    /// How the failure is counted in the report.
    pub fn label(&self) -> String {
        match self {
            Self::Refused => "PlaceOrder RESOURCE_EXHAUSTED".into(),
            Self::Place(code) => format!("PlaceOrder {}", code_name(*code)),
            Self::Decide(what) => format!("decision {what}"),
        }
    }
}

/// How decisions are learned; switches to polling, once, if the server lacks WatchOrder.
pub struct Decider {
    watch: AtomicBool,
    /// Orders PlaceOrder acknowledged: the final check expects at least as many to exist.
    placed: AtomicU64,
    poll: Duration,
    timeout: Duration,
}

impl Decider {
    /// Polls when asked to; otherwise asks the server whether it implements WatchOrder: an
    /// order id nobody placed answers NOT_FOUND when it does and UNIMPLEMENTED when it does not.
    pub async fn new(
        clients: &Clients,
        decisions: Decisions,
        poll: Duration,
        timeout: Duration,
    ) -> Self {
        let watch = match decisions {
            Decisions::Poll => false,
            Decisions::Auto => {
                let unknown = WatchOrderRequest {
                    order_id: uuid::Uuid::new_v4().to_string(),
                };
                match clients.order().watch_order(unknown).await {
                    Err(status) => status.code() != Code::Unimplemented,
                    Ok(_) => true,
                }
            }
        };
        Self {
            watch: AtomicBool::new(watch),
            placed: AtomicU64::new(0),
            poll,
            timeout,
        }
    }

    pub fn watches(&self) -> bool {
        self.watch.load(Ordering::Relaxed)
    }

    pub fn method(&self) -> String {
        if self.watches() {
            "WatchOrder stream".into()
        } else {
            format!("polling GetOrder every {:?}", self.poll)
        }
    }

    pub fn placed(&self) -> u64 {
        self.placed.load(Ordering::Relaxed)
    }

    /// Places `request` and waits for its decision.
    pub async fn order(
        &self,
        mut client: OrderServiceClient<Authed>,
        request: PlaceOrderRequest,
    ) -> Result<Outcome, Failure> {
        let placed = match client.place_order(request).await {
            Ok(reply) => reply.into_inner().order,
            Err(status) if status.code() == Code::ResourceExhausted => {
                return Err(Failure::Refused);
            }
            Err(status) => return Err(Failure::Place(status.code())),
        };
        self.placed.fetch_add(1, Ordering::Relaxed);
        let Some(order) = placed else {
            return Err(Failure::Decide("missing from PlaceOrder's answer"));
        };
        // Answered already decided (an idempotent retry, say): nothing to wait for.
        if let Some(outcome) = decided(order.status()) {
            return Ok(outcome);
        }
        match tokio::time::timeout(self.timeout, self.decision(client, order.order_id)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Decide("timeout")),
        }
    }

    async fn decision(
        &self,
        mut client: OrderServiceClient<Authed>,
        order_id: String,
    ) -> Result<Outcome, Failure> {
        if self.watch.load(Ordering::Relaxed) {
            match watch(&mut client, order_id.clone()).await {
                Ok(Some(outcome)) => return Ok(outcome),
                // A stream that ends undecided is a server bug: count it, don't paper over it.
                Ok(None) => return Err(Failure::Decide("stream ended undecided")),
                Err(status) if status.code() == Code::Unimplemented => self.fall_back(),
                Err(status) => return Err(Failure::Decide(code_name(status.code()))),
            }
        }
        poll(&mut client, order_id, self.poll).await
    }

    /// The probe said WatchOrder exists but the server says otherwise (a rolling upgrade).
    fn fall_back(&self) {
        if self.watch.swap(false, Ordering::Relaxed) {
            println!(
                "WatchOrder answered UNIMPLEMENTED: polling GetOrder every {:?} from now on",
                self.poll
            );
        }
    }
}

fn decided(status: OrderStatus) -> Option<Outcome> {
    match status {
        OrderStatus::Confirmed => Some(Outcome::Confirmed),
        OrderStatus::Rejected => Some(Outcome::Rejected),
        OrderStatus::Pending | OrderStatus::Unspecified => None,
    }
}

/// Follows the order's stream until it says CONFIRMED or REJECTED; `None` if it ends before.
async fn watch(
    client: &mut OrderServiceClient<Authed>,
    order_id: String,
) -> Result<Option<Outcome>, Status> {
    let mut stream = client
        .watch_order(WatchOrderRequest { order_id })
        .await?
        .into_inner();
    while let Some(update) = stream.message().await? {
        if let Some(outcome) = update.order.and_then(|order| decided(order.status())) {
            return Ok(Some(outcome));
        }
    }
    Ok(None)
}

/// What an older Orderly leaves a client: asking again and again.
async fn poll(
    client: &mut OrderServiceClient<Authed>,
    order_id: String,
    every: Duration,
) -> Result<Outcome, Failure> {
    loop {
        let reply = client
            .get_order(GetOrderRequest {
                order_id: order_id.clone(),
            })
            .await
            .map_err(|status| Failure::Decide(code_name(status.code())))?;
        if let Some(outcome) = reply
            .into_inner()
            .order
            .and_then(|order| decided(order.status()))
        {
            return Ok(outcome);
        }
        tokio::time::sleep(every).await;
    }
}
