//! The event envelope: every event travels with its id, type, order id, time, schema version and
//! trace context, so consumers can deduplicate, route and trace without decoding the payload.

use orderly_proto::events::v1::{EventEnvelope, event_envelope::Payload};
use prost::Message;
use uuid::Uuid;

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = 1;

/// The largest envelope a consumer accepts. Events are a few hundred bytes; anything near this is
/// a producer's mistake (or an attack), refused before decoding rather than allocated.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// Record header names (the envelope's fields, readable without decoding it).
pub mod headers {
    pub const EVENT_ID: &str = "event_id";
    pub const EVENT_TYPE: &str = "event_type";
    pub const SCHEMA_VERSION: &str = "schema_version";
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
}

/// The name of a payload's message, used as the envelope's `event_type`.
pub fn event_type(payload: &Payload) -> &'static str {
    match payload {
        Payload::OrderPlaced(_) => "OrderPlaced",
        Payload::InventoryReserved(_) => "InventoryReserved",
        Payload::InventoryRejected(_) => "InventoryRejected",
        Payload::PaymentAuthorized(_) => "PaymentAuthorized",
        Payload::PaymentDeclined(_) => "PaymentDeclined",
        Payload::SagaConfirmed(_) => "SagaConfirmed",
        Payload::SagaRejected(_) => "SagaRejected",
    }
}

/// Wraps `payload` in a new envelope with a fresh event id and the current span's trace context
/// (so whoever consumes it continues this trace).
pub fn wrap(order_id: Uuid, payload: Payload) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::now_v7().to_string(),
        event_type: event_type(&payload).to_owned(),
        order_id: order_id.to_string(),
        occurred_at: Some(now()),
        schema_version: SCHEMA_VERSION,
        trace_context: crate::telemetry::propagation::current_trace_context(),
        payload: Some(payload),
    }
}

/// Why a message can never be processed (it goes to the dead-letter topic).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("oversized envelope: {0} bytes (the limit is {MAX_ENVELOPE_BYTES})")]
    Oversized(usize),
    #[error("undecodable envelope: {0}")]
    Undecodable(String),
    #[error("envelope has no payload")]
    MissingPayload,
    #[error("unsupported schema version {0} (this build reads {SCHEMA_VERSION})")]
    UnsupportedSchemaVersion(u32),
    #[error("event_type {declared:?} does not match payload {actual}")]
    TypeMismatch {
        declared: String,
        actual: &'static str,
    },
    #[error("invalid {field}: {value:?} is not a UUID")]
    BadId { field: &'static str, value: String },
}

/// A decoded, checked envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub event_id: Uuid,
    pub order_id: Uuid,
    pub envelope: EventEnvelope,
    pub payload: Payload,
}

/// Decodes and checks an envelope: ids are UUIDs, the type matches the payload, the schema
/// version is one this build understands.
pub fn open(bytes: &[u8]) -> Result<Event, EnvelopeError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(EnvelopeError::Oversized(bytes.len()));
    }
    let mut envelope = EventEnvelope::decode(bytes)
        .map_err(|error| EnvelopeError::Undecodable(error.to_string()))?;
    if envelope.schema_version != SCHEMA_VERSION {
        return Err(EnvelopeError::UnsupportedSchemaVersion(
            envelope.schema_version,
        ));
    }
    let payload = envelope
        .payload
        .take()
        .ok_or(EnvelopeError::MissingPayload)?;
    let actual = event_type(&payload);
    if envelope.event_type != actual {
        return Err(EnvelopeError::TypeMismatch {
            declared: envelope.event_type.clone(),
            actual,
        });
    }
    let event_id = parse_id("event_id", &envelope.event_id)?;
    let order_id = parse_id("order_id", &envelope.order_id)?;
    Ok(Event {
        event_id,
        order_id,
        envelope,
        payload,
    })
}

fn parse_id(field: &'static str, value: &str) -> Result<Uuid, EnvelopeError> {
    Uuid::parse_str(value).map_err(|_| EnvelopeError::BadId {
        field,
        value: value.to_owned(),
    })
}

fn now() -> prost_types::Timestamp {
    let now = chrono::Utc::now();
    prost_types::Timestamp {
        seconds: now.timestamp(),
        nanos: now.timestamp_subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use orderly_proto::events::v1::SagaRejected;

    use super::*;

    fn rejected() -> Payload {
        Payload::SagaRejected(SagaRejected {
            customer_id: "alice".into(),
            reason: "out of stock".into(),
        })
    }

    #[test]
    fn wrapped_events_open_to_the_same_payload() {
        let order_id = Uuid::new_v4();
        let envelope = wrap(order_id, rejected());
        let event = open(&envelope.encode_to_vec()).unwrap();
        assert_eq!(event.order_id, order_id);
        assert_eq!(event.payload, rejected());
        assert_eq!(event.envelope.event_type, "SagaRejected");
    }

    #[test]
    fn garbage_wrong_version_and_mismatched_type_are_refused() {
        assert!(matches!(
            open(&[0xff, 0xff, 0xff]),
            Err(EnvelopeError::Undecodable(_))
        ));
        assert_eq!(
            open(&vec![0; MAX_ENVELOPE_BYTES + 1]),
            Err(EnvelopeError::Oversized(MAX_ENVELOPE_BYTES + 1))
        );

        let mut envelope = wrap(Uuid::new_v4(), rejected());
        envelope.schema_version = 99;
        assert_eq!(
            open(&envelope.encode_to_vec()),
            Err(EnvelopeError::UnsupportedSchemaVersion(99))
        );

        let mut envelope = wrap(Uuid::new_v4(), rejected());
        envelope.event_type = "OrderPlaced".into();
        assert!(matches!(
            open(&envelope.encode_to_vec()),
            Err(EnvelopeError::TypeMismatch { .. })
        ));

        let mut envelope = wrap(Uuid::new_v4(), rejected());
        envelope.order_id = "not-a-uuid".into();
        assert!(matches!(
            open(&envelope.encode_to_vec()),
            Err(EnvelopeError::BadId {
                field: "order_id",
                ..
            })
        ));
    }
}
