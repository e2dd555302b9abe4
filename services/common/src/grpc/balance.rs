//! Calls balanced per request over every replica of a dependency.
//!
//! A dependency's endpoint names its replicas in one of three ways:
//! - `http://host:port`: one endpoint (the connection resolves the host itself);
//! - `http://a:1,http://b:2`: a fixed list;
//! - `dns:///host:port`: every address the name resolves to, looked up again every
//!   [`RESOLVE_EVERY`] (a Kubernetes headless Service answers with one address per ready pod).
//!
//! Each replica gets its own connection and its own circuit breaker: one whose call failed (it
//! could not be reached, or did not answer in time) is left out for a while, so a replica that
//! went away costs one failed attempt, which the client retries on another. A replica is not
//! left out while no other takes calls: then the dependency is down, which the client's own
//! breaker handles. Among the replicas taking calls, tower's power-of-two-choices balancer
//! sends each request to the less busy of two picked at random (busy: requests in flight).

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use futures::{
    StreamExt,
    channel::mpsc,
    future::{BoxFuture, FutureExt},
};
use tonic::{
    body::Body,
    codegen::http::{Request, Response, Uri},
    transport::{Channel, Endpoint},
};
use tower::{
    BoxError, Service,
    balance::p2c::Balance,
    buffer::Buffer,
    discover::Change,
    load::{CompleteOnResponse, PendingRequests},
    util::BoxService,
};

use super::{InvalidEndpoint, breaker::Breaker};
use crate::tls::TlsConnector;

/// How often `dns:///` names are looked up again: a new replica gets calls, and a removed one
/// stops getting them, within this long (the chart's preStop sleep covers it).
const RESOLVE_EVERY: Duration = Duration::from_secs(2);
/// Consecutive failed calls that take a replica out of the balance, and for how long.
pub(super) const REPLICA_FAILURES_TO_OPEN: u32 = 1;
const REPLICA_OPEN_FOR: Duration = Duration::from_secs(2);
/// Requests waiting for a ready replica.
const QUEUE: usize = 1024;

type Answer = BoxFuture<'static, Result<Response<Body>, BoxError>>;

/// The balanced channel: cheap to clone, shared by every caller of one dependency. (A type of
/// its own rather than an alias of the buffer: the compiler then sees plain `'static` types
/// where async callers need to prove their futures `Send`.)
#[derive(Clone)]
pub struct Balanced(Buffer<Request<Body>, Answer>);

impl Service<Request<Body>> for Balanced {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        self.0.call(request).boxed()
    }
}

/// Where a dependency's replicas are, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    /// One endpoint, as written.
    Url(String),
    /// Every address of a name, looked up again and again.
    Dns { host: String, port: u16 },
}

fn parse(name: &str, spec: &str) -> Result<Vec<Target>, InvalidEndpoint> {
    let invalid = || InvalidEndpoint {
        name: name.to_owned(),
        endpoint: spec.to_owned(),
    };
    let targets = spec
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            if let Some(authority) = part.strip_prefix("dns:///") {
                let (host, port) = authority.rsplit_once(':').ok_or_else(invalid)?;
                let port = port.parse().map_err(|_| invalid())?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() {
                    return Err(invalid());
                }
                return Ok(Target::Dns {
                    host: host.to_owned(),
                    port,
                });
            }
            let uri: Uri = part.parse().map_err(|_| invalid())?;
            match (uri.scheme_str(), uri.authority()) {
                (Some("http" | "https"), Some(_)) => Ok(Target::Url(part.to_owned())),
                _ => Err(invalid()),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err(invalid());
    }
    Ok(targets)
}

/// The replicas known now, by URL, with their breakers.
#[derive(Clone, Default)]
pub struct Replicas(Arc<Mutex<HashMap<String, Arc<Breaker>>>>);

impl Replicas {
    /// True before a `dns:///` name resolved to anything: a call would only wait for its
    /// timeout.
    pub fn none_known(&self) -> bool {
        self.0
            .lock()
            .map(|replicas| replicas.is_empty())
            .unwrap_or(true)
    }

    /// Whether a replica other than `url` takes calls now.
    fn others_take_calls(&self, url: &str) -> bool {
        self.0.lock().is_ok_and(|replicas| {
            replicas
                .iter()
                .any(|(other, breaker)| other != url && breaker.allows())
        })
    }

    fn add(&self, url: &str) -> Arc<Breaker> {
        let breaker = Arc::new(Breaker::new(REPLICA_FAILURES_TO_OPEN, REPLICA_OPEN_FOR));
        if let Ok(mut replicas) = self.0.lock() {
            replicas.insert(url.to_owned(), breaker.clone());
        }
        breaker
    }

    fn remove(&self, url: &str) {
        if let Ok(mut replicas) = self.0.lock() {
            replicas.remove(url);
        }
    }
}

type ReplicaChange = Change<String, PendingRequests<Replica, CompleteOnResponse>>;

/// A channel balanced over the replicas `spec` names, each call bounded by `timeout`; `dns:///`
/// names are looked up by a task that ends when the channel is dropped.
pub fn channel(
    name: &str,
    spec: &str,
    timeout: Duration,
    tls: Option<TlsConnector>,
) -> Result<(Balanced, Replicas), InvalidEndpoint> {
    let targets = parse(name, spec)?;
    let replicas = Replicas::default();
    let (changes, discovered) = mpsc::unbounded::<ReplicaChange>();
    let connect = Connect {
        dependency: name.to_owned(),
        timeout,
        tls,
        replicas: replicas.clone(),
        changes,
    };
    let mut names = Vec::new();
    for target in targets {
        match target {
            Target::Url(url) => connect.insert(&url).map_err(|()| InvalidEndpoint {
                name: name.to_owned(),
                endpoint: url,
            })?,
            Target::Dns { host, port } => names.push((host, port)),
        }
    }
    if !names.is_empty() {
        tokio::spawn(resolve(connect, names));
    }
    let balance = Balance::new(discovered.map(Ok::<_, Infallible>));
    let balanced = Balanced(Buffer::new(BoxService::new(balance), QUEUE));
    Ok((balanced, replicas))
}

/// Turns URLs into replicas in the balance.
struct Connect {
    dependency: String,
    timeout: Duration,
    /// Connections over TLS, when the component has it.
    tls: Option<TlsConnector>,
    replicas: Replicas,
    changes: mpsc::UnboundedSender<ReplicaChange>,
}

impl Connect {
    fn insert(&self, url: &str) -> Result<(), ()> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|_| ())?
            .timeout(self.timeout)
            .connect_timeout(self.timeout);
        let channel = match &self.tls {
            Some(tls) => endpoint.connect_with_connector_lazy(tls.clone()),
            None => endpoint.connect_lazy(),
        };
        let replica = Replica {
            url: url.to_owned(),
            channel,
            breaker: self.replicas.add(url),
            replicas: self.replicas.clone(),
            reopens: None,
        };
        let replica = PendingRequests::new(replica, CompleteOnResponse::default());
        self.changes
            .unbounded_send(Change::Insert(url.to_owned(), replica))
            .map_err(|_| ())
    }

    fn remove(&self, url: &str) -> Result<(), ()> {
        self.replicas.remove(url);
        self.changes
            .unbounded_send(Change::Remove(url.to_owned()))
            .map_err(|_| ())
    }
}

/// Looks the names up every [`RESOLVE_EVERY`] and tells the balancer what changed. A failed
/// lookup keeps the replicas found before: DNS trouble is no reason to stop calling them.
async fn resolve(connect: Connect, names: Vec<(String, u16)>) {
    let mut known: HashSet<String> = HashSet::new();
    let mut failing = false;
    loop {
        let mut found = HashSet::new();
        let mut failed = None;
        for (host, port) in &names {
            match tokio::net::lookup_host((host.as_str(), *port)).await {
                Ok(addrs) => found.extend(addrs.map(|addr| format!("http://{addr}"))),
                Err(error) => failed = Some(format!("{host}: {error}")),
            }
        }
        match &failed {
            Some(error) if !failing => {
                tracing::warn!(dependency = %connect.dependency, %error, "cannot look up replicas; calling the ones found before");
            }
            None if failing => {
                tracing::info!(dependency = %connect.dependency, "replicas looked up again");
            }
            _ => {}
        }
        failing = failed.is_some();
        if !failing {
            for gone in known.difference(&found) {
                if connect.remove(gone).is_err() {
                    return; // the channel is gone
                }
            }
            for new in found.difference(&known) {
                if connect.insert(new).is_err() {
                    return;
                }
            }
            if found != known {
                tracing::info!(dependency = %connect.dependency, replicas = ?found, "replicas changed");
            }
            known = found;
        }
        tokio::time::sleep(RESOLVE_EVERY).await;
        if connect.changes.is_closed() {
            return;
        }
    }
}

/// One replica: its own connection, left out of the balance (not ready) while its breaker is
/// open and another replica takes calls. It never answers `poll_ready` with an error, which
/// would drop it from the balancer for good.
struct Replica {
    url: String,
    channel: Channel,
    breaker: Arc<Breaker>,
    replicas: Replicas,
    reopens: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Service<Request<Body>> for Replica {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let Some(closes_at) = self.breaker.closes_at()
            && self.replicas.others_take_calls(&self.url)
        {
            let closes_at = tokio::time::Instant::from_std(closes_at);
            let reopens = self
                .reopens
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(closes_at)));
            reopens.as_mut().reset(closes_at);
            if reopens.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.reopens = None;
        match self.channel.poll_ready(cx) {
            Poll::Ready(Err(error)) => {
                // Ready, so the call reports the error and counts against this replica.
                tracing::debug!(%error, "replica not ready");
                Poll::Ready(Ok(()))
            }
            other => other.map_err(Into::into),
        }
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let breaker = self.breaker.clone();
        let response = self.channel.call(request);
        async move {
            match response.await {
                Ok(response) => {
                    breaker.succeeded();
                    Ok(response)
                }
                Err(error) => {
                    breaker.failed();
                    Err(error.into())
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::{
        net::SocketAddr,
        sync::atomic::{AtomicU32, Ordering},
    };

    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    use super::*;

    /// A replica answering health checks on a free loopback port; returns its address and how
    /// many requests it took.
    pub(in super::super) async fn health_replica() -> (SocketAddr, Arc<AtomicU32>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU32::new(0));
        let counted = requests.clone();
        let (_reporter, health) = tonic_health::server::health_reporter();
        let incoming = futures::stream::unfold(listener, |listener| async move {
            let connection = listener.accept().await.map(|(stream, _)| stream);
            Some((connection, listener))
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .layer(tonic::service::InterceptorLayer::new(move |request| {
                    counted.fetch_add(1, Ordering::Relaxed);
                    Ok(request)
                }))
                .add_service(health)
                .serve_with_incoming(incoming),
        );
        (addr, requests)
    }

    #[tokio::test]
    async fn calls_are_spread_over_every_replica() {
        let (a, to_a) = health_replica().await;
        let (b, to_b) = health_replica().await;
        let spec = format!("http://{a},http://{b}");
        let (channel, replicas) = channel("health", &spec, Duration::from_secs(5), None).unwrap();
        assert!(!replicas.none_known());
        for _ in 0..40 {
            HealthClient::new(channel.clone())
                .check(HealthCheckRequest::default())
                .await
                .unwrap();
        }
        let (to_a, to_b) = (to_a.load(Ordering::Relaxed), to_b.load(Ordering::Relaxed));
        assert_eq!(to_a + to_b, 40);
        // A fair coin gives either fewer than 8 of 40 about once in 10^5 runs.
        assert!(to_a >= 8 && to_b >= 8, "{to_a} and {to_b}");
    }

    #[tokio::test]
    async fn a_name_brings_in_every_address_it_resolves_to() {
        let (a, to_a) = health_replica().await;
        let spec = format!("dns:///localhost:{}", a.port());
        let (channel, replicas) = channel("health", &spec, Duration::from_secs(5), None).unwrap();
        // The lookup runs in the background; until it answers, no replica is known.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while replicas.none_known() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "localhost never resolved"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let known = replicas
            .0
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>();
        assert!(known.contains(&format!("http://{a}")), "{known:?}");
        // localhost may also be ::1, where nothing listens: that replica fails and is left out,
        // so calls that are retried reach 127.0.0.1.
        let mut answered = 0;
        for _ in 0..10 {
            if HealthClient::new(channel.clone())
                .check(HealthCheckRequest::default())
                .await
                .is_ok()
            {
                answered += 1;
            }
        }
        assert!(answered >= 10 - REPLICA_FAILURES_TO_OPEN, "{answered}");
        assert_eq!(to_a.load(Ordering::Relaxed), answered);
    }

    #[test]
    fn endpoints_name_one_url_a_list_or_a_dns_name() {
        assert_eq!(
            parse("stock", "http://127.0.0.1:50052"),
            Ok(vec![Target::Url("http://127.0.0.1:50052".into())])
        );
        assert_eq!(
            parse("stock", "http://a:1, http://b:2"),
            Ok(vec![
                Target::Url("http://a:1".into()),
                Target::Url("http://b:2".into())
            ])
        );
        assert_eq!(
            parse("stock", "dns:///stock-headless.shop.svc:50052"),
            Ok(vec![Target::Dns {
                host: "stock-headless.shop.svc".into(),
                port: 50052
            }])
        );
        for bad in [
            "",
            " , ",
            "127.0.0.1:50052",
            "ftp://a:1",
            "dns:///stock",
            "dns:///:1",
            "dns:///stock:http",
            "http://a:1,nonsense",
        ] {
            let error = parse("stock", bad).expect_err(bad);
            assert!(error.to_string().contains("stock"), "{error}");
        }
    }
}
