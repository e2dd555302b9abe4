//! The client side of service-to-service calls: a channel balanced over the dependency's
//! replicas (see [`super::balance`]) with a per-call timeout, retries for idempotent calls
//! drawn from a retry budget (tower's `TpsBudget`, so a struggling dependency is not hammered
//! by retries), a circuit breaker that fails fast while a dependency keeps failing, and a
//! client span per call whose context travels in the request metadata.

use std::{sync::Arc, time::Duration};

use tonic::{
    Code, Request, Status,
    service::{Interceptor, interceptor::InterceptedService},
};
use tower::retry::budget::{Budget, TpsBudget};
use tracing::Instrument;

use super::{
    balance::{self, Balanced, Replicas},
    breaker::Breaker,
};
use crate::{
    telemetry::propagation,
    tls::{Tls, TlsConnector},
};

const ATTEMPTS: u32 = 3;
const FAILURES_TO_OPEN: u32 = 5;
const OPEN_FOR: Duration = Duration::from_secs(2);
/// How much longer than a call's timeout a caller waits when no replica is ready to take it.
const READY_MARGIN: Duration = Duration::from_millis(250);

/// A channel that sends the current span's trace context with every request.
pub type TracedChannel = InterceptedService<Balanced, InjectTraceContext>;

/// A channel to one dependency plus the policies guarding calls to it.
#[derive(Clone)]
pub struct Client {
    /// The component making the calls.
    caller: &'static str,
    name: Arc<str>,
    channel: Balanced,
    replicas: Replicas,
    timeout: Duration,
    budget: Arc<TpsBudget>,
    breaker: Arc<Breaker>,
}

impl Client {
    /// `caller` calls dependency `name` at `endpoint`: a URL like `http://127.0.0.1:50052`, a
    /// comma-separated list of them, or `dns:///host:port` for every address of a name (see
    /// [`super::balance`]); over `tls` when given, the dependency proving it is `name`.
    /// Connects on first use; must be called within a tokio runtime.
    pub fn new(
        caller: &'static str,
        name: &str,
        endpoint: &str,
        timeout: Duration,
        tls: Option<&Tls>,
    ) -> Result<Self, InvalidEndpoint> {
        let invalid = || InvalidEndpoint {
            name: name.to_owned(),
            endpoint: endpoint.to_owned(),
        };
        let tls = tls
            .map(|tls| TlsConnector::new(tls.clone(), name).map_err(|_| invalid()))
            .transpose()?;
        let (channel, replicas) = balance::channel(name, endpoint, timeout, tls)?;
        Ok(Self {
            caller,
            name: name.into(),
            channel,
            replicas,
            timeout,
            // Retries may add 20% to the request rate, and at least 5 per second.
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 5, 0.2)),
            breaker: Arc::new(Breaker::new(FAILURES_TO_OPEN, OPEN_FOR)),
        })
    }

    /// Calls idempotent `method` (`package.Service/Method`, for its span), retrying transient
    /// failures within the budget.
    pub async fn idempotent<T, F, Fut>(&self, method: &str, call: F) -> Result<T, Status>
    where
        F: FnMut(TracedChannel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let span = tracing::info_span!(
            "grpc.client",
            otel.name = method,
            otel.kind = "client",
            rpc.system = "grpc",
            peer.service = &*self.name,
            component = self.caller,
        );
        self.with_retries(call).instrument(span).await
    }

    /// Whether calls are refused without reaching the dependency (its circuit breaker is open,
    /// or no replica of it is known yet), so a caller counting attempts can tell waiting from
    /// trying.
    pub fn failing_fast(&self) -> bool {
        !self.breaker.allows() || self.replicas.none_known()
    }

    async fn with_retries<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut(TracedChannel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut backoff = Duration::from_millis(20);
        for attempt in 1..=ATTEMPTS {
            if self.failing_fast() {
                return Err(Status::unavailable(format!(
                    "{} is failing; not calling it for now",
                    self.name
                )));
            }
            let channel = InterceptedService::new(self.channel.clone(), InjectTraceContext);
            // Each replica's connection bounds the call itself (an answer that times out there
            // is CANCELLED, not retried); this backstop bounds a wait for a ready replica.
            let answer = tokio::time::timeout(self.timeout + READY_MARGIN, call(channel))
                .await
                .unwrap_or_else(|_| {
                    Err(Status::unavailable(format!(
                        "no replica of {} was ready within {:?}",
                        self.name, self.timeout
                    )))
                });
            match answer {
                Ok(reply) => {
                    self.breaker.succeeded();
                    self.budget.deposit();
                    return Ok(reply);
                }
                Err(status) if is_transient(&status) => {
                    self.breaker.failed();
                    if attempt == ATTEMPTS || !self.budget.withdraw() {
                        return Err(status);
                    }
                    tracing::debug!(dependency = &*self.name, attempt, code = ?status.code(), "retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(status) => {
                    self.breaker.succeeded(); // it answered: the dependency is up
                    return Err(status);
                }
            }
        }
        Err(Status::unavailable(format!("{} did not answer", self.name)))
    }
}

/// Puts the current span's trace context into each request's metadata.
#[derive(Clone, Copy, Debug)]
pub struct InjectTraceContext;

impl Interceptor for InjectTraceContext {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        propagation::inject_current(request.metadata_mut());
        Ok(request)
    }
}

impl<C: crate::config::Callees> crate::config::DependencyArgs<C> {
    /// `caller`'s client for each callee, by name (over `tls` when given).
    pub fn clients(
        &self,
        caller: &'static str,
        tls: Option<&Tls>,
    ) -> Result<Vec<(String, Client)>, InvalidEndpoint> {
        self.endpoints()
            .map(|(name, endpoint)| {
                let client = Client::new(caller, name, endpoint, self.timeout(), tls)?;
                Ok((name.to_owned(), client))
            })
            .collect()
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {name} endpoint {endpoint:?}: expected a URL like http://host:port, a comma-separated list of them, or dns:///host:port"
)]
pub struct InvalidEndpoint {
    pub(super) name: String,
    pub(super) endpoint: String,
}

/// Worth retrying: the dependency said it is unavailable or overloaded, the call timed out, or
/// the connection broke (tonic reports that as UNKNOWN with the transport error as its source,
/// while a status the server sent has no source).
fn is_transient(status: &Status) -> bool {
    let connection_broke = || {
        std::error::Error::source(status)
            .is_some_and(|source| source.is::<tonic::transport::Error>())
    };
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted
    ) || (status.code() == Code::Unknown && connection_broke())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    use super::*;

    #[tokio::test]
    async fn calls_fail_fast_once_a_dependency_keeps_failing() {
        let client = Client::new(
            "test",
            "stock",
            "http://127.0.0.1:1",
            Duration::from_secs(1),
            None,
        )
        .expect("valid endpoint");
        let calls = AtomicU32::new(0);
        let failing_call = |_channel| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), _>(Status::unavailable("down")) }
        };
        assert!(!client.failing_fast());
        // Three attempts, then two more open the breaker and the third is refused.
        for _ in 0..2 {
            assert!(client.idempotent("test/Call", failing_call).await.is_err());
        }
        assert_eq!(calls.load(Ordering::Relaxed), FAILURES_TO_OPEN);
        assert!(client.failing_fast());
        let refused = client.idempotent("test/Call", failing_call).await;
        assert_eq!(
            refused.map_err(|status| status.code()),
            Err(Code::Unavailable)
        );
        assert_eq!(
            calls.load(Ordering::Relaxed),
            FAILURES_TO_OPEN,
            "refused calls do not reach it"
        );
    }

    /// A dependency that resets every connection, at once or once the request has arrived;
    /// returns its endpoint and how many connections it took.
    async fn resetting_dependency(read_first: bool) -> (String, Arc<AtomicU32>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicU32::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::Relaxed);
                if read_first {
                    let mut request = [0; 1024];
                    let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
                }
                let _ = stream.set_zero_linger();
            }
        });
        (endpoint, accepted)
    }

    #[tokio::test]
    async fn a_connection_reset_is_retried() {
        for read_first in [false, true] {
            let (endpoint, accepted) = resetting_dependency(read_first).await;
            let client =
                Client::new("test", "stock", &endpoint, Duration::from_secs(1), None).unwrap();
            let reply = client
                .idempotent("grpc.health.v1.Health/Check", |channel| async move {
                    HealthClient::new(channel)
                        .check(HealthCheckRequest::default())
                        .await
                })
                .await;
            let status = reply.expect_err("every connection is reset");
            assert!(is_transient(&status), "{status:?}");
            assert_eq!(accepted.load(Ordering::Relaxed), ATTEMPTS, "{status:?}");
        }
    }

    #[tokio::test]
    async fn a_failing_replica_is_left_out_and_every_call_is_answered() {
        let (live, answered) = super::super::balance::tests::health_replica().await;
        let (dead, resets) = resetting_dependency(false).await;
        let endpoints = format!("http://{live},{dead}");
        let client =
            Client::new("test", "health", &endpoints, Duration::from_secs(1), None).unwrap();
        for _ in 0..30 {
            client
                .idempotent("grpc.health.v1.Health/Check", |channel| async move {
                    HealthClient::new(channel)
                        .check(HealthCheckRequest::default())
                        .await
                })
                .await
                .expect("retried on the replica that answers");
        }
        assert_eq!(answered.load(Ordering::Relaxed), 30);
        let resets = resets.load(Ordering::Relaxed);
        assert!(
            resets <= super::super::balance::REPLICA_FAILURES_TO_OPEN,
            "the failing replica got {resets} calls"
        );
        assert!(!client.failing_fast());
    }

    #[test]
    fn only_unavailability_is_retried() {
        assert!(is_transient(&Status::unavailable("down")));
        assert!(!is_transient(&Status::not_found("no such product")));
        assert!(!is_transient(&Status::invalid_argument("bad")));
    }
}
