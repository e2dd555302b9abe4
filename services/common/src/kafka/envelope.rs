//! The event envelope: every event travels with its id, type, order id, time, schema version,
//! trace context and saga facts, so consumers can deduplicate, route, trace and follow a saga
//! without decoding the payload. Envelopes evolve: a newer schema version is read for the fields
//! this build knows, and a payload of a type it does not know opens with no payload (the
//! consumer skips and counts it) instead of being refused.

use orderly_proto::events::v1::{EventEnvelope, SagaFacts, event_envelope::Payload};
use prost::Message;
use uuid::Uuid;

/// The schema version this build writes. It reads this one and newer ones (for the fields it
/// knows: schemas only ever add fields).
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
    payload.event_type()
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
        saga: Some(payload.saga_facts()),
        payload: Some(payload),
    }
}

/// Wraps an event whose payload type Orderly's protos do not know (a participant a saga
/// definition added): the orchestrator follows it by its type and saga facts alone.
pub fn wrap_foreign(order_id: Uuid, event_type: &str, facts: SagaFacts) -> EventEnvelope {
    EventEnvelope {
        event_id: Uuid::now_v7().to_string(),
        event_type: event_type.to_owned(),
        order_id: order_id.to_string(),
        occurred_at: Some(now()),
        schema_version: SCHEMA_VERSION,
        trace_context: crate::telemetry::propagation::current_trace_context(),
        saga: Some(facts),
        payload: None,
    }
}

/// Why a message can never be processed (it goes to the dead-letter topic).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("oversized envelope: {0} bytes (the limit is {MAX_ENVELOPE_BYTES})")]
    Oversized(usize),
    #[error("undecodable envelope: {0}")]
    Undecodable(String),
    #[error("envelope has neither a payload nor an event type")]
    MissingPayload,
    #[error("unsupported schema version {0} (this build reads {SCHEMA_VERSION} and newer)")]
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
    /// `None` when the payload is of a type this build does not know (`envelope.event_type`
    /// names it).
    pub payload: Option<Payload>,
}

impl Event {
    /// The event's type, whether or not this build knows its payload.
    pub fn event_type(&self) -> &str {
        &self.envelope.event_type
    }

    /// The saga facts: from the envelope, or from the payload for events written before
    /// envelopes carried them.
    pub fn saga_facts(&self) -> SagaFacts {
        match (&self.envelope.saga, &self.payload) {
            (Some(facts), _) => facts.clone(),
            (None, Some(payload)) => payload.saga_facts(),
            (None, None) => SagaFacts::default(),
        }
    }
}

/// Decodes and checks an envelope: ids are UUIDs, a known payload matches the declared type,
/// the schema version is this build's or newer.
pub fn open(bytes: &[u8]) -> Result<Event, EnvelopeError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(EnvelopeError::Oversized(bytes.len()));
    }
    let mut envelope = EventEnvelope::decode(bytes)
        .map_err(|error| EnvelopeError::Undecodable(error.to_string()))?;
    if envelope.schema_version < SCHEMA_VERSION {
        return Err(EnvelopeError::UnsupportedSchemaVersion(
            envelope.schema_version,
        ));
    }
    let payload = envelope.payload.take();
    match &payload {
        Some(payload) if envelope.event_type != event_type(payload) => {
            return Err(EnvelopeError::TypeMismatch {
                declared: envelope.event_type.clone(),
                actual: event_type(payload),
            });
        }
        Some(_) => {}
        None if envelope.event_type.is_empty() => return Err(EnvelopeError::MissingPayload),
        None => {}
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
        assert_eq!(event.payload, Some(rejected()));
        assert_eq!(event.envelope.event_type, "SagaRejected");
        assert_eq!(event.saga_facts().reason, "out of stock");
    }

    #[test]
    fn newer_versions_and_unknown_types_open_for_what_this_build_knows() {
        let mut newer = wrap(Uuid::new_v4(), rejected());
        newer.schema_version = SCHEMA_VERSION + 1;
        assert_eq!(
            open(&newer.encode_to_vec()).unwrap().payload,
            Some(rejected())
        );

        let facts = SagaFacts {
            customer_id: "alice".into(),
            ..SagaFacts::default()
        };
        let mut unknown = wrap_foreign(Uuid::new_v4(), "ShipmentBooked", facts);
        let event = open(&unknown.encode_to_vec()).unwrap();
        assert_eq!(event.saga_facts().customer_id, "alice");
        assert_eq!(
            (event.event_type(), &event.payload),
            ("ShipmentBooked", &None)
        );

        unknown.event_type = String::new();
        assert_eq!(
            open(&unknown.encode_to_vec()),
            Err(EnvelopeError::MissingPayload)
        );
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
        envelope.schema_version = 0;
        assert_eq!(
            open(&envelope.encode_to_vec()),
            Err(EnvelopeError::UnsupportedSchemaVersion(0))
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
