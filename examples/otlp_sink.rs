//! A minimal OTLP/gRPC trace receiver that counts what it gets: a stand-in collector for
//! measuring what exporting traces costs (see CONTRIBUTING.md, "Tracing overhead").
//!
//!     cargo run --release --example otlp_sink [-- PORT]      (default 4317)
//!
//! Point Orderly at it with `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317`. It prints the
//! span count every 5 seconds while spans arrive.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};

#[derive(Default)]
struct Counter {
    spans: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for Counter {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|port| port.parse())
        .transpose()?
        .unwrap_or(4317);
    let counter = Counter::default();
    let spans = counter.spans.clone();
    tokio::spawn(async move {
        let mut reported = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let now = spans.load(Ordering::Relaxed);
            if now != reported {
                println!("{now} spans received");
                reported = now;
            }
        }
    });
    println!("otlp sink listening on 127.0.0.1:{port}");
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(counter))
        .serve(([127, 0, 0, 1], port).into())
        .await?;
    Ok(())
}
