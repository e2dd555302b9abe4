//! W3C trace context in and out of gRPC metadata and event envelopes, and the one way a span takes
//! a remote parent.

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use orderly_proto::events::v1::TraceContext;
use tonic::codegen::http;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// Makes `parent` the parent of `span` (which must not have been entered yet) and records the
/// span's trace id in its `trace_id` field, so logs written inside it carry the id.
pub fn adopt_parent(span: &tracing::Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", tracing::field::display(span_context.trace_id()));
    }
}

/// The current span's context for an event envelope; `None` when tracing is off.
pub fn current_trace_context() -> Option<TraceContext> {
    let mut carrier = TraceContext::default();
    TraceContextPropagator::new().inject_context(
        &tracing::Span::current().context(),
        &mut EnvelopeCarrier(&mut carrier),
    );
    (!carrier.traceparent.is_empty()).then_some(carrier)
}

/// The current span's `traceparent`, or "" when tracing is off (stored to continue a trace later).
pub fn current_traceparent() -> String {
    current_trace_context()
        .map(|context| context.traceparent)
        .unwrap_or_default()
}

/// The remote parent an envelope names (an empty context when it names none).
pub fn envelope_parent(trace: Option<&TraceContext>) -> Context {
    let mut carrier = trace.cloned().unwrap_or_default();
    TraceContextPropagator::new().extract(&EnvelopeCarrier(&mut carrier))
}

/// The remote parent a stored `traceparent` names.
pub fn traceparent_parent(traceparent: &str) -> Context {
    envelope_parent(Some(&TraceContext {
        traceparent: traceparent.to_owned(),
        tracestate: String::new(),
    }))
}

/// The remote parent named by request headers (gRPC metadata).
pub fn headers_parent(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderCarrier(headers))
}

/// Puts the current span's context into outgoing gRPC metadata.
pub fn inject_current(metadata: &mut tonic::metadata::MetadataMap) {
    TraceContextPropagator::new().inject_context(
        &tracing::Span::current().context(),
        &mut MetadataCarrier(metadata),
    );
}

struct EnvelopeCarrier<'a>(&'a mut TraceContext);

impl Injector for EnvelopeCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.0.traceparent = value,
            TRACESTATE => self.0.tracestate = value,
            _ => {}
        }
    }
}

impl Extractor for EnvelopeCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = match key {
            TRACEPARENT => &self.0.traceparent,
            TRACESTATE => &self.0.tracestate,
            _ => return None,
        };
        (!value.is_empty()).then_some(value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

struct HeaderCarrier<'a>(&'a http::HeaderMap);

impl Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataCarrier<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            self.0.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn envelope_context_round_trips() {
        let remote = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let mut carrier = TraceContext::default();
        TraceContextPropagator::new().inject_context(
            &Context::new().with_remote_span_context(remote.clone()),
            &mut EnvelopeCarrier(&mut carrier),
        );
        assert_eq!(
            carrier.traceparent,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        let parent = envelope_parent(Some(&carrier));
        assert_eq!(parent.span().span_context(), &remote);
        assert!(!envelope_parent(None).span().span_context().is_valid());
    }
}
