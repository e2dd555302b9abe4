//! gRPC clients of the system under test: several connections to the order service (the load),
//! one to each other service (setup and the final check), all with bounded calls.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use anyhow::Context;
use orderly_proto::{
    inventory::v1::inventory_service_client::InventoryServiceClient,
    order::v1::order_service_client::OrderServiceClient,
    payment::v1::payment_service_client::PaymentServiceClient,
    saga::v1::saga_service_client::SagaServiceClient,
};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::args::Args;

pub struct Clients {
    orders: Vec<Channel>,
    next: AtomicUsize,
    inventory: Channel,
    payment: Channel,
    orchestrator: Channel,
    endpoints: Vec<(&'static str, String)>,
}

/// `host:port` or a full URL.
fn url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    }
}

fn channel(url: &str, call_timeout: Duration) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{url} is not a valid endpoint"))?
        .connect_timeout(Duration::from_secs(5))
        // Bounds each unary call and the wait for a stream's first response; a WatchOrder
        // stream's later messages are bounded by the decision timeout instead.
        .timeout(call_timeout)
        .connect_lazy())
}

impl Clients {
    pub fn new(args: &Args, call_timeout: Duration) -> anyhow::Result<Self> {
        let order = url(&args.order);
        // Each `connect_lazy` channel is its own HTTP/2 connection.
        let orders = (0..args.connections)
            .map(|_| channel(&order, call_timeout))
            .collect::<anyhow::Result<_>>()?;
        let endpoints = vec![
            ("order", order),
            ("inventory", url(&args.inventory)),
            ("payment", url(&args.payment)),
            ("orchestrator", url(&args.orchestrator)),
        ];
        Ok(Self {
            orders,
            next: AtomicUsize::new(0),
            inventory: channel(&endpoints[1].1, call_timeout)?,
            payment: channel(&endpoints[2].1, call_timeout)?,
            orchestrator: channel(&endpoints[3].1, call_timeout)?,
            endpoints,
        })
    }

    /// An order client on the next connection, round-robin.
    pub fn order(&self) -> OrderServiceClient<Channel> {
        let next = self.next.fetch_add(1, Ordering::Relaxed) % self.orders.len();
        OrderServiceClient::new(self.orders[next].clone())
    }

    pub fn inventory(&self) -> InventoryServiceClient<Channel> {
        InventoryServiceClient::new(self.inventory.clone())
    }

    pub fn payment(&self) -> PaymentServiceClient<Channel> {
        PaymentServiceClient::new(self.payment.clone())
    }

    pub fn orchestrator(&self) -> SagaServiceClient<Channel> {
        SagaServiceClient::new(self.orchestrator.clone())
    }

    pub fn endpoints(&self) -> &[(&'static str, String)] {
        &self.endpoints
    }

    /// Waits until every endpoint reports SERVING, so a run started right after the system
    /// does not count its start-up as errors.
    pub async fn wait_serving(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        let channels = [
            &self.orders[0],
            &self.inventory,
            &self.payment,
            &self.orchestrator,
        ];
        for ((name, url), channel) in self.endpoints.iter().zip(channels) {
            let mut health = HealthClient::new(channel.clone());
            loop {
                let status = health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map(|reply| reply.into_inner().status());
                if matches!(status, Ok(ServingStatus::Serving)) {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    anyhow::bail!(
                        "{name} at {url} is not SERVING after {within:?} ({status:?}); is Orderly running there?"
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }
}
