//! Logs and traces. Logs are structured `tracing` output, human-readable by default and JSON when
//! asked. Traces are OpenTelemetry spans built from the same `tracing` spans: W3C trace context
//! crosses gRPC (metadata) and Kafka (envelope and headers), so one order is one trace, exported
//! over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set.
//! `OTEL_SDK_DISABLED=true` turns tracing off altogether.

mod export;
pub mod propagation;

use clap::ValueEnum;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{
    EnvFilter, Layer,
    fmt::{self, writer::BoxMakeWriter},
    layer::SubscriberExt,
    util::SubscriberInitExt,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where log lines go: a server's to stdout; a command whose stdout is its answer (a token,
/// `orderly ctl --output json`) logs to stderr, so nothing else mixes into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogsTo {
    Stdout,
    Stderr,
}

/// The running tracer; `shutdown` exports what is still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the global subscriber: logs and OpenTelemetry spans, both filtered by `RUST_LOG` (else
/// `default_filter`, which keeps the embedded broker's and the libraries' spans out). One global
/// filter rather than one per layer: with per-layer filters, spans were now and then missing from
/// the OpenTelemetry layer (whole hops gone from traces). `process` names the process in traces when a span does not
/// say which component it belongs to (e.g. `orderly-order`, or `orderly` for `orderly dev`).
/// Must run inside the Tokio runtime (the OTLP exporter sends from it). A second call keeps the
/// first subscriber. Fails, naming the variable, on an endpoint this build cannot export to.
pub fn init(
    format: LogFormat,
    default_filter: &str,
    process: &str,
    logs_to: LogsTo,
) -> Result<Telemetry, String> {
    if tracing_enabled() {
        export::refuse_tls_endpoint()?;
    }
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let writer = match logs_to {
        LogsTo::Stdout => BoxMakeWriter::new(std::io::stdout),
        LogsTo::Stderr => BoxMakeWriter::new(std::io::stderr),
    };
    let logs = match format {
        LogFormat::Text => fmt::layer().with_target(false).with_writer(writer).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
    };
    let provider = tracing_enabled().then(|| tracer_provider(process));
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("orderly"))
            // Parents come from the tracing span tree, which follows each task; nothing here
            // reads the thread-local OpenTelemetry context that activation would set on every
            // enter.
            .with_context_activation(false)
            // Busy/idle timings cost two clock reads and a lock on every poll of every
            // instrumented future; span durations are enough.
            .with_tracked_inactivity(false)
            .with_threads(false)
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init();
    Ok(Telemetry {
        provider: provider.filter(|_| installed.is_ok()),
    })
}

impl Telemetry {
    /// Exports the spans still buffered (bounded by the exporter's timeout).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // Blocks until the batch is exported, and the export itself runs on this runtime.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = flushed {
            eprintln!("orderly: traces not flushed on shutdown: {error}");
        }
    }
}

fn tracing_enabled() -> bool {
    !std::env::var("OTEL_SDK_DISABLED").is_ok_and(|value| value.eq_ignore_ascii_case("true"))
}

/// Spans go through a batch processor (a bounded queue: a slow collector drops spans, it never
/// slows a request) to the OTLP exporter when an endpoint is configured; without one they are
/// still created, so trace ids reach logs and other services.
fn tracer_provider(process: &str) -> SdkTracerProvider {
    let builder = SdkTracerProvider::builder().with_resource(
        Resource::builder()
            .with_service_name(process.to_owned())
            .build(),
    );
    if !export::endpoint_configured() {
        return builder.build();
    }
    builder
        .with_batch_exporter(export::ByComponent::new(process))
        .build()
}

/// The `service.name` of a component's spans: `orderly-order`, `orderly-orchestrator`...
pub fn service_name(component: &str) -> String {
    format!("orderly-{component}")
}
