//! An idempotent producer of event envelopes: keyed by order id so one order's events stay in
//! order, with the envelope's id, type and trace context copied into record headers.

use std::time::Duration;

use orderly_proto::events::v1::EventEnvelope;
use prost::Message;
use rdkafka::{
    message::{Header, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
};

use super::{KafkaError, client_config, envelope::headers};
use crate::config::KafkaArgs;

#[derive(Clone)]
pub struct EventProducer {
    producer: FutureProducer,
}

impl EventProducer {
    pub fn new(args: &KafkaArgs) -> Result<Self, KafkaError> {
        let producer = client_config(args)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", args.kafka_linger_ms.to_string())
            .set("compression.type", "lz4")
            .create()?;
        Ok(Self { producer })
    }

    /// Enqueues `envelope` on `topic` without waiting; await the returned future for the broker's
    /// acknowledgement. Enqueue many, then await them all: awaiting one at a time caps throughput
    /// at one round trip per message.
    pub fn send(
        &self,
        topic: &str,
        envelope: &EventEnvelope,
    ) -> Result<DeliveryFuture, KafkaError> {
        self.send_raw(
            topic,
            &envelope.order_id,
            &envelope.encode_to_vec(),
            envelope_headers(envelope),
        )
    }

    /// Enqueues arbitrary bytes: for dead letters and for tests that inject malformed messages.
    pub fn send_raw(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<DeliveryFuture, KafkaError> {
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        self.producer
            .send_result(record)
            .map_err(|(error, _)| KafkaError::Client(error))
    }

    /// Waits up to `timeout` for everything enqueued to be delivered (used on shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        use rdkafka::producer::Producer;
        Ok(self.producer.flush(timeout)?)
    }
}

fn envelope_headers(envelope: &EventEnvelope) -> OwnedHeaders {
    let version = envelope.schema_version.to_string();
    let mut out = OwnedHeaders::new()
        .insert(Header {
            key: headers::EVENT_ID,
            value: Some(envelope.event_id.as_str()),
        })
        .insert(Header {
            key: headers::EVENT_TYPE,
            value: Some(envelope.event_type.as_str()),
        })
        .insert(Header {
            key: headers::SCHEMA_VERSION,
            value: Some(version.as_str()),
        });
    if let Some(trace) = &envelope.trace_context {
        if !trace.traceparent.is_empty() {
            out = out.insert(Header {
                key: headers::TRACEPARENT,
                value: Some(trace.traceparent.as_str()),
            });
        }
        if !trace.tracestate.is_empty() {
            out = out.insert(Header {
                key: headers::TRACESTATE,
                value: Some(trace.tracestate.as_str()),
            });
        }
    }
    out
}
