//! An idempotent producer of event envelopes: keyed by order id so one order's events stay in
//! order, with the envelope's id, type and trace context copied into record headers.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use orderly_proto::events::v1::EventEnvelope;
use prost::Message;
use rdkafka::{
    ClientContext,
    config::RDKafkaLogLevel,
    error::KafkaResult,
    message::{Header, OwnedHeaders},
    producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext},
};
use tokio::sync::oneshot;

use super::{
    KafkaError, client_config,
    envelope::headers,
    signing::{EventKeys, SIGNATURE},
};
use crate::config::KafkaArgs;

/// How long the delivery thread waits for acknowledgements at a time. rdkafka's own threaded
/// producer waits 100 ms at a time, and each wait ends spinning on the clock (the deadline is
/// rounded down to whole milliseconds, and librdkafka's wait may end a little early): with one
/// producer per component that was most of an idle `orderly dev`'s CPU. Acknowledgements end
/// the wait at once, so a long one delays nothing; it only bounds how long the thread, and the
/// client with its connections, outlives the last handle.
const DELIVERY_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct EventProducer {
    shared: Arc<Shared>,
    /// With `--event-keys`: what events are signed with, and what consumers check them with.
    keys: Option<Arc<EventKeys>>,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer")
            .field("signs", &self.keys.is_some())
            .finish_non_exhaustive()
    }
}

/// The producer and its delivery thread, which stops once every handle is dropped.
struct Shared {
    producer: Arc<BaseProducer<Acknowledge>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Not joined: the thread notices within `DELIVERY_WAIT` and drops the producer.
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl EventProducer {
    pub fn new(args: &KafkaArgs) -> Result<Self, KafkaError> {
        let keys = args
            .event_keys
            .as_deref()
            .map(EventKeys::load)
            .transpose()?;
        let stop = Arc::new(AtomicBool::new(false));
        let producer: BaseProducer<Acknowledge> = client_config(args)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", args.kafka_linger_ms.to_string())
            .set("compression.type", args.kafka_compression.as_librdkafka())
            .create_with_context(Acknowledge {
                released: stop.clone(),
            })?;
        let producer = Arc::new(producer);
        let serving = (producer.clone(), stop.clone());
        std::thread::Builder::new()
            .name("kafka-deliveries".to_owned())
            .spawn(move || {
                let (producer, stop) = serving;
                while !stop.load(Ordering::Relaxed) {
                    producer.poll(DELIVERY_WAIT);
                }
            })
            .map_err(KafkaError::Thread)?;
        Ok(Self {
            shared: Arc::new(Shared { producer, stop }),
            keys: keys.map(Arc::new),
        })
    }

    /// Enqueues `envelope` on `topic` without waiting; await the returned delivery for the
    /// broker's acknowledgement. Enqueue many, then await them all: awaiting one at a time caps
    /// throughput at one round trip per message.
    pub fn send(&self, topic: &str, envelope: &EventEnvelope) -> Result<Delivery, KafkaError> {
        let value = envelope.encode_to_vec();
        let mut headers = envelope_headers(envelope);
        if let Some(keys) = &self.keys {
            let signature = keys.sign(&value);
            headers = headers.insert(Header {
                key: SIGNATURE,
                value: Some(signature.as_str()),
            });
        }
        self.send_raw(topic, &envelope.order_id, &value, headers)
    }

    /// The keys events are signed and checked with, when `--event-keys` is set.
    pub fn keys(&self) -> Option<&EventKeys> {
        self.keys.as_deref()
    }

    /// Enqueues arbitrary bytes: for dead letters and for tests that inject malformed messages.
    pub fn send_raw(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<Delivery, KafkaError> {
        let (acknowledged, delivery) = oneshot::channel();
        let record = BaseRecord::with_opaque_to(topic, Box::new(acknowledged))
            .key(key)
            .payload(payload)
            .headers(headers);
        self.shared
            .producer
            .send(record)
            .map_err(|(error, _)| KafkaError::Client(error))?;
        Ok(Delivery(delivery))
    }

    /// Waits up to `timeout` for everything enqueued to be delivered (used on shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        Ok(self.shared.producer.flush(timeout)?)
    }
}

/// The broker's acknowledgement of one enqueued record.
pub struct Delivery(oneshot::Receiver<KafkaResult<()>>);

impl Future for Delivery {
    type Output = Result<(), KafkaError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|outcome| match outcome {
            Ok(acknowledged) => Ok(acknowledged?),
            Err(_) => Err(KafkaError::Unacknowledged),
        })
    }
}

/// Hands each delivery report to the `Delivery` awaiting it.
struct Acknowledge {
    /// Every handle is gone and the client only waits for its delivery thread to notice.
    released: Arc<AtomicBool>,
}

impl ClientContext for Acknowledge {
    // A released client lingers up to `DELIVERY_WAIT`: `orderly dev` stops its broker in that
    // time, and the client's lost connection (reported as an error, and logged as it tries to
    // reconnect) is expected, not an error to report.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if self.released.load(Ordering::Relaxed) {
            tracing::debug!(target: "librdkafka", "{error}: {reason} (producer already released)");
        } else {
            tracing::error!(target: "librdkafka", "{error}: {reason}");
        }
    }

    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if self.released.load(Ordering::Relaxed) {
            tracing::debug!(target: "librdkafka", "{facility} {message} (producer already released)");
            return;
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{facility} {message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "{facility} {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{facility} {message}");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{facility} {message}"),
        }
    }
}

impl ProducerContext for Acknowledge {
    type DeliveryOpaque = Box<oneshot::Sender<KafkaResult<()>>>;

    fn delivery(&self, result: &DeliveryResult<'_>, acknowledged: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((error, _)) => Err(error.clone()),
        };
        // Nobody waiting any more (a relay that stopped) is fine: the record is in the log.
        let _ = acknowledged.send(outcome);
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
