//! One server stack for every component: request tracing (a span per request, continuing the
//! caller's trace), request metrics, a per-request timeout, a server-wide concurrency limit and
//! load shedding (tower layers), plus `grpc.health.v1` with real status and server reflection
//! v1 and v1alpha (grpcurl 1.8 only speaks v1alpha).

use std::net::SocketAddr;

use futures::future::BoxFuture;

use tokio::net::TcpListener;
use tonic::{
    codegen::http,
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tower::limit::GlobalConcurrencyLimitLayer;

use super::metrics_layer::RequestMetricsLayer;
use crate::{
    Shutdown,
    auth::AuthLayer,
    config::ServerArgs,
    health::Health,
    telemetry::propagation,
    tls::{Tls, incoming},
};

/// Binds a listener, with an error that names the address (a port in use is the usual cause).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|error| {
        std::io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}"))
    })
}

/// A component's API, ready to be served with health and reflection beside it.
pub struct GrpcServer {
    component: &'static str,
    service_name: &'static str,
    routes: Routes,
    health: Health,
    auth: AuthLayer,
}

impl GrpcServer {
    /// `service_name` is the API's fully-qualified name (`S::NAME` of the generated server), the
    /// name health reports under; `health` is the component's.
    pub fn new(
        component: &'static str,
        service_name: &'static str,
        routes: Routes,
        health: Health,
        auth: AuthLayer,
    ) -> Self {
        Self {
            component,
            service_name,
            routes,
            health,
            auth,
        }
    }

    /// Serves until `shutdown`: health turns NOT_SERVING first, so load balancers stop sending
    /// work, then in-flight requests drain for at most the configured grace period.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<Tls>,
        args: &ServerArgs,
        shutdown: Shutdown,
    ) -> Result<(), tonic::transport::Error> {
        let health = self.health.clone();
        health.serving(self.service_name).await;

        const INVALID: &str = "descriptor sets are generated at build time and always valid";
        let reflection_v1 = reflection(self.service_name).build_v1().expect(INVALID);
        let reflection_v1alpha = reflection(self.service_name)
            .build_v1alpha()
            .expect(INVALID);

        let routes = self
            .routes
            .add_service(health.service())
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        let local = listener.local_addr().ok();
        tracing::info!(service = self.service_name, addr = ?local, "grpc server listening");
        let (service_name, component) = (self.service_name, self.component);
        let grace = args.shutdown_grace();
        let stop = shutdown.clone();
        let draining = async move {
            stop.requested().await;
            health.drain().await;
            tracing::info!(
                service = service_name,
                ?grace,
                "not serving, draining requests"
            );
        };
        // tonic's timeout (like the concurrency limit and the metrics layer) wraps the handler's
        // future, which ends when the response headers are ready: it bounds a server stream's
        // start (WatchOrder's first read), never the stream itself, so a stream lives until it
        // ends by itself. A client's `grpc-timeout` is applied the same way.
        let router = Server::builder()
            .timeout(args.request_timeout())
            .load_shed(true)
            .trace_fn(move |request| request_span(component, request))
            // One limit for the whole server, not per connection: a client multiplexing many
            // requests over one HTTP/2 connection is as welcome as many clients.
            .layer(GlobalConcurrencyLimitLayer::new(args.concurrency_limit))
            .layer(RequestMetricsLayer)
            // Inside the metrics: refused requests are counted with their code too.
            .layer(self.auth)
            .add_routes(routes);
        let server: BoxFuture<'_, Result<(), tonic::transport::Error>> = match tls {
            Some(tls) => {
                Box::pin(router.serve_with_incoming_shutdown(incoming(listener, tls), draining))
            }
            None => Box::pin(router.serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                draining,
            )),
        };
        let grace_over = async {
            shutdown.requested().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            served = server => served,
            () = grace_over => {
                tracing::warn!(service = service_name, "requests still running after the grace period, stopping anyway");
                Ok(())
            }
        }
    }
}

/// grpc.health.v1 alone, in plaintext, until shutdown (see `--health-listen-addr`).
pub async fn serve_health_alone(listener: TcpListener, health: Health, shutdown: Shutdown) {
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, "health served in plaintext for probes");
    let served = Server::builder()
        .add_service(health.service())
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
            shutdown.requested().await;
        })
        .await;
    if let Err(error) = served {
        tracing::warn!(%error, "the plaintext health server stopped");
    }
}

/// Reflection that describes every Orderly type but lists only what this server serves, so
/// `grpcurl list` on a port shows that port's API.
fn reflection(service_name: &'static str) -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .include_reflection_service(false)
        .register_encoded_file_descriptor_set(orderly_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .with_service_name(service_name)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection")
}

/// The span of one request, a child of the caller's span when the metadata carries one.
fn request_span(component: &'static str, request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", path));
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        component,
        order_id = tracing::field::Empty,
        trace_id = tracing::field::Empty,
    );
    propagation::adopt_parent(&span, propagation::headers_parent(request.headers()));
    span
}
