//! The event envelope: every event travels with its id, type, order id, time, schema version,
//! trace context and saga facts, so consumers can deduplicate, route, trace and follow a saga
//! without decoding the payload. The payload is the envelope's `body`, its topic's message.
//! Envelopes evolve: a newer schema version is read for the fields this build knows, and a
//! payload of a type it does not know opens with no payload (the consumer skips and counts it)
//! instead of being refused.

pub use orderly_proto::Payload;
use orderly_proto::events::v1::{EventEnvelope, SagaFacts};
use prost::Message;
use uuid::Uuid;

/// The schema version this build writes: 2 carries the event in `body`, as its topic's
/// message. It reads version 1 (the event in the `legacy` oneof) and newer ones (for the fields
/// it knows: schemas only ever add fields).
pub const SCHEMA_VERSION: u32 = 2;
/// The oldest schema version this build reads.
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

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
        body: payload.encode_body(),
        legacy: payload.to_legacy(),
    }
}

/// The key of the events about one product or customer (`name`) on `topic` (the catalogue's or
/// the accounts'): a name-based UUID, the same for every event about it, so they share a
/// partition and a compacted topic keeps the latest.
pub fn subject_key(topic: &str, name: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("{topic}/{name}").as_bytes())
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
        body: Vec::new(),
        legacy: None,
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
    #[error("unsupported schema version {0} (this build reads {OLDEST_SCHEMA_VERSION} and newer)")]
    UnsupportedSchemaVersion(u32),
    #[error("event {event_type} does not travel on {topic}")]
    WrongTopic {
        event_type: &'static str,
        topic: String,
    },
    #[error("event_type {declared} does not match payload {actual}")]
    TypeMismatch {
        declared: String,
        actual: &'static str,
    },
    #[error("invalid {field}: {value} is not a UUID")]
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

/// Decodes and checks an envelope read from `topic`: ids are UUIDs, a known payload matches
/// the declared type and the topic, the schema version is one this build reads.
pub fn open(topic: &str, bytes: &[u8]) -> Result<Event, EnvelopeError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(EnvelopeError::Oversized(bytes.len()));
    }
    let mut envelope = EventEnvelope::decode(bytes)
        .map_err(|error| EnvelopeError::Undecodable(error.to_string()))?;
    if envelope.schema_version < OLDEST_SCHEMA_VERSION {
        return Err(EnvelopeError::UnsupportedSchemaVersion(
            envelope.schema_version,
        ));
    }
    let legacy = envelope.legacy.take().map(Payload::from_legacy);
    let payload = if envelope.body.is_empty() {
        legacy
    } else {
        Payload::decode(topic, &std::mem::take(&mut envelope.body))
            .map_err(|error| EnvelopeError::Undecodable(format!("body: {error}")))?
    };
    match &payload {
        Some(payload) if envelope.event_type != event_type(payload) => {
            return Err(EnvelopeError::TypeMismatch {
                declared: crate::validate::quoted(&envelope.event_type),
                actual: event_type(payload),
            });
        }
        Some(payload) if payload.topic() != topic => {
            return Err(EnvelopeError::WrongTopic {
                event_type: event_type(payload),
                topic: topic.to_owned(),
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
        value: crate::validate::quoted(value),
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
    use orderly_proto::{
        events::v1::{SagaRejected, saga_event},
        topics,
    };

    use super::*;

    fn rejected() -> Payload {
        Payload::Saga(saga_event::Event::SagaRejected(SagaRejected {
            customer_id: "alice".into(),
            reason: "out of stock".into(),
        }))
    }

    fn open_saga(envelope: &EventEnvelope) -> Result<Event, EnvelopeError> {
        open(topics::SAGAS, &envelope.encode_to_vec())
    }

    #[test]
    fn wrapped_events_open_to_the_same_payload() {
        let order_id = Uuid::new_v4();
        let envelope = wrap(order_id, rejected());
        let event = open_saga(&envelope).unwrap();
        assert_eq!(event.order_id, order_id);
        assert_eq!(event.payload, Some(rejected()));
        assert_eq!(event.envelope.event_type, "SagaRejected");
        assert_eq!(event.saga_facts().reason, "out of stock");
    }

    /// Version 1 carried the event in the `legacy` oneof only; version 2 reads it from `body`
    /// alone, so the legacy copy can be dropped once every consumer is on version 2.
    #[test]
    fn version_1_envelopes_and_body_only_envelopes_open_alike() {
        let mut version_1 = wrap(Uuid::new_v4(), rejected());
        version_1.schema_version = 1;
        version_1.body.clear();
        assert_eq!(open_saga(&version_1).unwrap().payload, Some(rejected()));

        let mut body_only = wrap(Uuid::new_v4(), rejected());
        body_only.legacy = None;
        assert_eq!(open_saga(&body_only).unwrap().payload, Some(rejected()));
    }

    #[test]
    fn newer_versions_and_unknown_types_open_for_what_this_build_knows() {
        let mut newer = wrap(Uuid::new_v4(), rejected());
        newer.schema_version = SCHEMA_VERSION + 1;
        assert_eq!(open_saga(&newer).unwrap().payload, Some(rejected()));

        let facts = SagaFacts {
            customer_id: "alice".into(),
            ..SagaFacts::default()
        };
        let mut unknown = wrap_foreign(Uuid::new_v4(), "ShipmentBooked", facts);
        let event = open_saga(&unknown).unwrap();
        assert_eq!(event.saga_facts().customer_id, "alice");
        assert_eq!(
            (event.event_type(), &event.payload),
            ("ShipmentBooked", &None)
        );

        // A newer producer's event on a known topic: a oneof field this build lacks.
        let mut newer_event = wrap_foreign(Uuid::new_v4(), "SagaPaused", SagaFacts::default());
        newer_event.body = vec![0x4a, 0x00]; // field 9, empty message
        assert_eq!(open_saga(&newer_event).unwrap().payload, None);

        unknown.event_type = String::new();
        assert_eq!(open_saga(&unknown), Err(EnvelopeError::MissingPayload));
    }

    #[test]
    fn garbage_wrong_version_mismatched_type_and_wrong_topic_are_refused() {
        assert!(matches!(
            open(topics::SAGAS, &[0xff, 0xff, 0xff]),
            Err(EnvelopeError::Undecodable(_))
        ));
        assert_eq!(
            open(topics::SAGAS, &vec![0; MAX_ENVELOPE_BYTES + 1]),
            Err(EnvelopeError::Oversized(MAX_ENVELOPE_BYTES + 1))
        );

        let mut envelope = wrap(Uuid::new_v4(), rejected());
        envelope.schema_version = 0;
        assert_eq!(
            open_saga(&envelope),
            Err(EnvelopeError::UnsupportedSchemaVersion(0))
        );

        let mut envelope = wrap(Uuid::new_v4(), rejected());
        envelope.event_type = "OrderPlaced".into();
        assert!(matches!(
            open_saga(&envelope),
            Err(EnvelopeError::TypeMismatch { .. })
        ));

        // A version-1 event produced onto another topic than its own.
        let mut envelope = wrap(Uuid::new_v4(), rejected());
        envelope.body.clear();
        assert!(matches!(
            open(topics::ORDERS, &envelope.encode_to_vec()),
            Err(EnvelopeError::WrongTopic { .. })
        ));

        let mut envelope = wrap(Uuid::new_v4(), rejected());
        envelope.body = vec![0xff, 0xff];
        assert!(matches!(
            open_saga(&envelope),
            Err(EnvelopeError::Undecodable(_))
        ));

        let mut envelope = wrap(Uuid::new_v4(), rejected());
        envelope.order_id = "not-a-uuid".into();
        assert!(matches!(
            open_saga(&envelope),
            Err(EnvelopeError::BadId {
                field: "order_id",
                ..
            })
        ));
    }
}
