//! Dead letters: a message that can never be processed is published unchanged to its topic's
//! `.dlq` topic, with its origin and the error in headers, and acknowledged before its offset is
//! stored, so it is never lost and its partition keeps flowing.

use std::time::Duration;

use rdkafka::{
    Message,
    message::{BorrowedMessage, Header, Headers, OwnedHeaders},
};

use crate::{
    Shutdown,
    kafka::{EventProducer, topics},
};

/// Dead-letter record headers naming where the message came from and why it was refused.
pub mod headers {
    /// Every dead-letter header's name starts with this.
    pub const PREFIX: &str = "dlq.";
    pub const TOPIC: &str = "dlq.origin.topic";
    pub const PARTITION: &str = "dlq.origin.partition";
    pub const OFFSET: &str = "dlq.origin.offset";
    pub const CONSUMER: &str = "dlq.consumer";
    pub const ERROR: &str = "dlq.error";
    /// On a message an operator redrove to its origin topic: the one consumer group that
    /// applies it. The topic's other consumers skip it (they applied it the first time).
    pub const REDRIVE_FOR: &str = "dlq.redrive.for";
}

/// Whether `message` was redriven for another consumer group than `consumer`.
pub fn redriven_for_another(message: &BorrowedMessage<'_>, consumer: &str) -> bool {
    message.headers().is_some_and(|headers| {
        headers.iter().any(|header| {
            header.key == headers::REDRIVE_FOR && header.value != Some(consumer.as_bytes())
        })
    })
}

/// Publishes `message` to its dead-letter topic and waits for the acknowledgement, retrying with
/// backoff; false if shutdown came first (the offset stays unstored, the message comes back).
pub async fn publish(
    producer: &EventProducer,
    consumer: &str,
    message: &BorrowedMessage<'_>,
    error: &str,
    shutdown: &Shutdown,
) -> bool {
    let topic = topics::dead_letter(message.topic());
    tracing::warn!(
        consumer,
        origin = message.topic(),
        offset = message.offset(),
        error,
        "dead-lettering message"
    );
    let mut backoff = Duration::from_millis(100);
    loop {
        let delivery = producer.send_raw(
            &topic,
            std::str::from_utf8(message.key().unwrap_or_default()).unwrap_or_default(),
            message.payload().unwrap_or_default(),
            with_origin(message, consumer, error),
        );
        match delivery {
            Ok(delivery) => match delivery.await {
                Ok(()) => return true,
                Err(error) => tracing::warn!(%error, "dead letter not acknowledged"),
            },
            Err(error) => tracing::warn!(%error, "cannot enqueue dead letter"),
        }
        tokio::select! {
            () = shutdown.requested() => return false,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The message's own headers plus its origin, the consumer that refused it and why.
fn with_origin(message: &BorrowedMessage<'_>, consumer: &str, error: &str) -> OwnedHeaders {
    let mut out = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for header in original.iter() {
            out = out.insert(Header {
                key: header.key,
                value: header.value,
            });
        }
    }
    let (partition, offset) = (
        message.partition().to_string(),
        message.offset().to_string(),
    );
    for (key, value) in [
        (headers::TOPIC, message.topic()),
        (headers::PARTITION, partition.as_str()),
        (headers::OFFSET, offset.as_str()),
        (headers::CONSUMER, consumer),
        (headers::ERROR, error),
    ] {
        out = out.insert(Header {
            key,
            value: Some(value),
        });
    }
    out
}
