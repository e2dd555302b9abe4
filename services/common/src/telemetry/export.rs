//! OTLP export with one `service.name` per component, also when `orderly dev` runs all of them in
//! one process: spans carry a `component` attribute, and each component's spans are exported with
//! their own resource, through their own OTLP exporter.
//!
//! The SDK's batch processor exports from a thread of its own, while the tonic exporter needs a
//! Tokio reactor; exports are therefore spawned on the runtime that created this exporter.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    trace::{SpanData, SpanExporter},
};
use tokio::runtime::Handle;

/// The span attribute naming the component a span belongs to.
pub const COMPONENT: &str = "component";

const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

pub fn endpoint_configured() -> bool {
    ENDPOINT_VARIABLES
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|value| !value.is_empty()))
}

/// Refuses an `https://` endpoint: the exporter speaks plain gRPC (tonic is built without a TLS
/// stack), so spans sent to a TLS port would fail on every export, with nothing but dropped
/// spans to show for it.
pub fn refuse_tls_endpoint() -> Result<(), String> {
    for name in ENDPOINT_VARIABLES {
        if let Ok(value) = std::env::var(name) {
            tls_refused(name, &value)?;
        }
    }
    Ok(())
}

fn tls_refused(name: &str, value: &str) -> Result<(), String> {
    if value
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("https://")
    {
        return Err(format!(
            "{name}={value}: OTLP export here is plain gRPC (http://); for TLS, export to a \
             collector agent beside the process (e.g. http://localhost:4317) and let it forward"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::tls_refused;

    #[test]
    fn https_endpoints_are_refused_by_name() {
        let refused = tls_refused("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317");
        let message = refused.expect_err("TLS endpoint");
        assert!(message.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT=https://collector:4317"));
        assert!(tls_refused("X", "HTTPS://collector:4317").is_err());
        assert!(tls_refused("X", "http://collector:4317").is_ok());
        assert!(tls_refused("X", "").is_ok());
    }
}

#[derive(Debug)]
pub struct ByComponent {
    runtime: Handle,
    /// Spans without a component attribute are exported under this service name.
    process: String,
    exporters: Mutex<HashMap<String, Arc<opentelemetry_otlp::SpanExporter>>>,
}

impl ByComponent {
    /// Must be called inside the Tokio runtime that will run the exports.
    pub fn new(process: &str) -> Self {
        Self {
            runtime: Handle::current(),
            process: process.to_owned(),
            exporters: Mutex::default(),
        }
    }

    fn exporter(
        &self,
        service: &str,
    ) -> Result<Arc<opentelemetry_otlp::SpanExporter>, OTelSdkError> {
        let mut exporters = self
            .exporters
            .lock()
            .map_err(|_| OTelSdkError::InternalFailure("exporter lock poisoned".into()))?;
        if let Some(exporter) = exporters.get(service) {
            return Ok(exporter.clone());
        }
        // The tonic channel is created lazily and needs the runtime's context.
        let _entered = self.runtime.enter();
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_protocol(opentelemetry_otlp::Protocol::Grpc)
            .build()
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?;
        exporter.set_resource(
            &Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        );
        let exporter = Arc::new(exporter);
        exporters.insert(service.to_owned(), exporter.clone());
        Ok(exporter)
    }

    fn service_of(&self, span: &SpanData) -> String {
        span.attributes
            .iter()
            .find(|attribute| attribute.key.as_str() == COMPONENT)
            .map_or_else(
                || self.process.clone(),
                |attribute| super::service_name(&attribute.value.as_str()),
            )
    }
}

impl SpanExporter for ByComponent {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut by_service: HashMap<String, Vec<SpanData>> = HashMap::new();
        for span in batch {
            by_service
                .entry(self.service_of(&span))
                .or_default()
                .push(span);
        }
        let mut exports = Vec::with_capacity(by_service.len());
        for (service, spans) in by_service {
            let exporter = self.exporter(&service)?;
            exports.push(
                self.runtime
                    .spawn(async move { exporter.export(spans).await }),
            );
        }
        let mut result = Ok(());
        for export in exports {
            let exported = export
                .await
                .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))
                .and_then(|exported| exported);
            if exported.is_err() {
                result = exported;
            }
        }
        result
    }
}
