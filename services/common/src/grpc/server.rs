//! One server stack for every component: request tracing, a per-request timeout, a concurrency
//! limit and load shedding (tonic's built-in tower layers), plus `grpc.health.v1` with real status
//! and server reflection v1 and v1alpha (grpcurl 1.8 only speaks v1alpha).

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::{
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{Shutdown, config::ServerArgs};

/// Binds a listener, with an error that names the address (a port in use is the usual cause).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|error| {
        std::io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}"))
    })
}

/// A component's API, ready to be served with health and reflection beside it.
pub struct GrpcServer {
    service_name: &'static str,
    routes: Routes,
}

impl GrpcServer {
    /// `service_name` is the API's fully-qualified name (`S::NAME` of the generated server), the
    /// name health reports under.
    pub fn new(service_name: &'static str, routes: Routes) -> Self {
        Self {
            service_name,
            routes,
        }
    }

    /// Serves until `shutdown`: health turns NOT_SERVING first, so load balancers stop sending
    /// work, then in-flight requests drain for at most the configured grace period.
    pub async fn serve(
        self,
        listener: TcpListener,
        args: &ServerArgs,
        shutdown: Shutdown,
    ) -> Result<(), tonic::transport::Error> {
        let (health, health_service) = tonic_health::server::health_reporter();
        set_status(&health, self.service_name, ServingStatus::Serving).await;

        const INVALID: &str = "descriptor sets are generated at build time and always valid";
        let reflection_v1 = reflection(self.service_name).build_v1().expect(INVALID);
        let reflection_v1alpha = reflection(self.service_name)
            .build_v1alpha()
            .expect(INVALID);

        let routes = self
            .routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        let local = listener.local_addr().ok();
        tracing::info!(service = self.service_name, addr = ?local, "grpc server listening");
        let service_name = self.service_name;
        let grace = args.shutdown_grace();
        let stop = shutdown.clone();
        let draining = async move {
            stop.requested().await;
            set_status(&health, service_name, ServingStatus::NotServing).await;
            tracing::info!(
                service = service_name,
                ?grace,
                "not serving, draining requests"
            );
        };
        let server = Server::builder()
            .timeout(args.request_timeout())
            .concurrency_limit_per_connection(args.concurrency_limit)
            .load_shed(true)
            .trace_fn(|request| tracing::info_span!("grpc", path = %request.uri().path()))
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                draining,
            );
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

async fn set_status(health: &HealthReporter, service_name: &str, status: ServingStatus) {
    // "" is the whole server, which is what Kubernetes' gRPC probe asks about by default.
    health.set_service_status("", status).await;
    health.set_service_status(service_name, status).await;
}
