//! A minimal OTLP/gRPC trace receiver that counts what it gets: a stand-in collector for
//! measuring what exporting traces costs (see CONTRIBUTING.md, "Tracing overhead").
//!
//!     cargo run --release --example otlp_sink [-- PORT]      (default 4317)
//!
//! Point Orderly at it with `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317`. It prints the
//! span count every 5 seconds while spans arrive, and on Ctrl-C (or SIGTERM) the count by
//! service and span name: what a trace costs is mostly how many spans it has.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
};

/// Spans received, by service name and span name.
#[derive(Clone, Default)]
struct Counter {
    spans: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl Counter {
    fn total(&self) -> u64 {
        self.spans.lock().expect("counter lock").values().sum()
    }

    fn print_by_name(&self) {
        let spans = self.spans.lock().expect("counter lock");
        let mut rows: Vec<_> = spans.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1));
        for ((service, name), count) in rows {
            println!("{count:>10}  {service:<22} {name}");
        }
    }
}

fn service_name(resource: &opentelemetry_proto::tonic::resource::v1::Resource) -> String {
    resource
        .attributes
        .iter()
        .find(|attribute| attribute.key == "service.name")
        .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
        .map_or_else(String::new, |value| match value {
            Value::StringValue(name) => name.clone(),
            other => format!("{other:?}"),
        })
}

#[tonic::async_trait]
impl TraceService for Counter {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut counts = self.spans.lock().expect("counter lock");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .map(service_name)
                .unwrap_or_default();
            for span in resource_spans
                .scope_spans
                .into_iter()
                .flat_map(|scope| scope.spans)
            {
                *counts.entry((service.clone(), span.name)).or_default() += 1;
            }
        }
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
    let progress = counter.clone();
    tokio::spawn(async move {
        let mut reported = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let now = progress.total();
            if now != reported {
                println!("{now} spans received");
                reported = now;
            }
        }
    });
    println!("otlp sink listening on 127.0.0.1:{port}");
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(counter.clone()))
        .serve_with_shutdown(([127, 0, 0, 1], port).into(), stopped())
        .await?;
    counter.print_by_name();
    Ok(())
}

async fn stopped() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
