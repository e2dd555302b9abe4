//! gRPC clients of the system under test: several connections to the order service (the load),
//! one to each other service (setup and the final check), all with bounded calls. Against
//! `orderly dev --secure` (`--secure-dir`) every connection is TLS, setup and checks carry a
//! token with the catalogue, finance and operator roles, and each order's calls its customer's
//! own token, as a shop's front end forwarding its users' tokens would.

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use orderly::secure::{Authority, Bearer, TokenIssuer};
use orderly_common::auth::Role;
use orderly_proto::{
    inventory::v1::inventory_service_client::InventoryServiceClient,
    order::v1::order_service_client::OrderServiceClient,
    payment::v1::payment_service_client::PaymentServiceClient,
    saga::v1::saga_service_client::SagaServiceClient,
};
use tonic::{
    service::interceptor::InterceptedService,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::args::Args;

/// A channel whose requests carry a token, when the system wants one.
pub type Authed = InterceptedService<Channel, Bearer>;

pub struct Clients {
    orders: Vec<Channel>,
    next: AtomicUsize,
    inventory: Channel,
    payment: Channel,
    orchestrator: Channel,
    endpoints: Vec<(&'static str, String)>,
    secure: Option<Secure>,
}

/// Tokens against `orderly dev --secure`.
struct Secure {
    issuer: TokenIssuer,
    /// Setup and checks: products, accounts, every order and saga.
    admin: Bearer,
    /// Each customer's own, made once.
    customers: Mutex<HashMap<String, Bearer>>,
}

/// Long enough for any run.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// `host:port` or a full URL (https when `tls`).
fn url(endpoint: &str, tls: bool) -> String {
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else if tls {
        format!("https://{endpoint}")
    } else {
        format!("http://{endpoint}")
    }
}

fn channel(
    url: &str,
    call_timeout: Duration,
    tls: Option<&ClientTlsConfig>,
) -> anyhow::Result<Channel> {
    let mut endpoint = Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{url} is not a valid endpoint"))?
        .connect_timeout(Duration::from_secs(5))
        // Bounds each unary call and the wait for a stream's first response; a WatchOrder
        // stream's later messages are bounded by the decision timeout instead.
        .timeout(call_timeout);
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.clone())?;
    }
    Ok(endpoint.connect_lazy())
}

impl Clients {
    pub fn new(args: &Args, call_timeout: Duration) -> anyhow::Result<Self> {
        let secure = args.secure_dir.as_deref().map(Secure::open).transpose()?;
        let tls = match &args.secure_dir {
            Some(dir) => {
                let ca = std::fs::read(dir.join("ca.pem"))
                    .with_context(|| format!("no CA certificate in {}", dir.display()))?;
                Some(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
            }
            None => None,
        };
        let order = url(&args.order, tls.is_some());
        // Each `connect_lazy` channel is its own HTTP/2 connection.
        let orders = (0..args.connections)
            .map(|_| channel(&order, call_timeout, tls.as_ref()))
            .collect::<anyhow::Result<_>>()?;
        let endpoints = vec![
            ("order", order),
            ("inventory", url(&args.inventory, tls.is_some())),
            ("payment", url(&args.payment, tls.is_some())),
            ("orchestrator", url(&args.orchestrator, tls.is_some())),
        ];
        let other = |index: usize| channel(&endpoints[index].1, call_timeout, tls.as_ref());
        Ok(Self {
            orders,
            next: AtomicUsize::new(0),
            inventory: other(1)?,
            payment: other(2)?,
            orchestrator: other(3)?,
            endpoints,
            secure,
        })
    }

    fn admin(&self) -> Bearer {
        self.secure
            .as_ref()
            .map(|secure| secure.admin.clone())
            .unwrap_or_default()
    }

    fn next_order_channel(&self) -> Channel {
        let next = self.next.fetch_add(1, Ordering::Relaxed) % self.orders.len();
        self.orders[next].clone()
    }

    /// An order client on the next connection, round-robin, acting for anyone.
    pub fn order(&self) -> OrderServiceClient<Authed> {
        OrderServiceClient::with_interceptor(self.next_order_channel(), self.admin())
    }

    /// An order client on the next connection, round-robin, acting as `customer`.
    pub fn order_for(&self, customer: &str) -> OrderServiceClient<Authed> {
        let bearer = (self.secure.as_ref())
            .map(|secure| secure.customer(customer))
            .unwrap_or_default();
        OrderServiceClient::with_interceptor(self.next_order_channel(), bearer)
    }

    pub fn inventory(&self) -> InventoryServiceClient<Authed> {
        InventoryServiceClient::with_interceptor(self.inventory.clone(), self.admin())
    }

    pub fn payment(&self) -> PaymentServiceClient<Authed> {
        PaymentServiceClient::with_interceptor(self.payment.clone(), self.admin())
    }

    pub fn orchestrator(&self) -> SagaServiceClient<Authed> {
        SagaServiceClient::with_interceptor(self.orchestrator.clone(), self.admin())
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

impl Secure {
    /// The token issuer `orderly dev --secure` keeps in `dir`.
    fn open(dir: &Path) -> anyhow::Result<Self> {
        let issuer = Authority::open(dir)?.token_issuer()?;
        let roles = [Role::Catalog, Role::Finance, Role::Operator];
        let admin = Bearer::of(Some(&issuer.token("load-bench", &roles, TOKEN_TTL)?))?;
        Ok(Self {
            issuer,
            admin,
            customers: Mutex::new(HashMap::new()),
        })
    }

    fn customer(&self, customer: &str) -> Bearer {
        let mut customers = self.customers.lock().expect("customer tokens");
        let bearer = customers.entry(customer.to_owned()).or_insert_with(|| {
            // The issuer already signed the admin's token: signing cannot fail here.
            let token = (self.issuer.token(customer, &[Role::Customer], TOKEN_TTL))
                .expect("a customer token");
            Bearer::of(Some(&token)).expect("a token is ASCII")
        });
        bearer.clone()
    }
}
