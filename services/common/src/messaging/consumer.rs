//! The consuming side of every service: decode, deduplicate through the inbox, apply the effect
//! and its outgoing events in one transaction, then store the offset. Poison messages go to the
//! dead-letter topic with their origin and error; transient failures are retried with backoff
//! and block the consumer, so nothing is skipped. Each message is handled in a span that
//! continues the trace its envelope names, and counted by outcome.

use std::{sync::Arc, time::Duration};

use rdkafka::{
    Message,
    consumer::{CommitMode, Consumer, StreamConsumer},
    message::{BorrowedMessage, Header, Headers, OwnedHeaders},
};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use tokio::sync::Notify;
use tracing::Instrument;

use super::{Relay, inbox};
use crate::{
    Shutdown,
    config::KafkaArgs,
    kafka::{self, EventProducer, KafkaError, envelope, topics},
    telemetry::propagation,
};

/// Dead-letter record headers naming where the message came from and why it was refused.
pub mod dead_letter_headers {
    pub const TOPIC: &str = "dlq.origin.topic";
    pub const PARTITION: &str = "dlq.origin.partition";
    pub const OFFSET: &str = "dlq.origin.offset";
    pub const CONSUMER: &str = "dlq.consumer";
    pub const ERROR: &str = "dlq.error";
}

/// Why a handler could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event can never be applied (it contradicts itself or this service's rules): it is
    /// dead-lettered.
    #[error("invalid event: {0}")]
    Invalid(String),
    /// Applying it failed for now (the database is unavailable...): retried until it works.
    #[error("transient failure: {0}")]
    Transient(#[from] DbErr),
}

/// A service's reaction to events.
pub trait Handler: Send + Sync + 'static {
    /// Applies `event` inside `txn`: state changes and outgoing events (through the outbox).
    /// The consumer commits `txn` together with the inbox record.
    fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &envelope::Event,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Why a consumer stopped consuming.
enum Stop {
    Shutdown,
    Rejoin,
}

/// What happened to one consumed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumed {
    Applied,
    Duplicate,
    DeadLettered,
}

impl Consumed {
    /// The `outcome` label of `orderly_events_consumed_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// One consumer group reading `topics` into `handler` until `shutdown`.
pub struct EventConsumer<H> {
    /// The consumer group, which is also the component's name (in spans and metrics).
    pub name: &'static str,
    pub topics: &'static [&'static str],
    pub db: DatabaseConnection,
    pub handler: H,
    pub relay: Relay,
    pub producer: EventProducer,
}

impl<H: Handler> EventConsumer<H> {
    /// Consumes until `shutdown`. When `rejoin` is notified (the lag watcher saw the group sit
    /// on lag it does not commit), the consumer leaves the group and joins it again as a new
    /// member: a fresh start for whatever state stalled it (seen with the embedded broker after
    /// a broker bounce: one partition never fetched again).
    pub async fn run(
        self,
        kafka: &KafkaArgs,
        rejoin: Arc<Notify>,
        shutdown: Shutdown,
    ) -> Result<(), KafkaError> {
        loop {
            let consumer = kafka::consumer(kafka, self.name, self.topics)?;
            let stop = self.consume(&consumer, &rejoin, &shutdown).await;
            // Async: a broker that is down must not hold up shutdown (uncommitted offsets only
            // mean redelivery, which the inbox absorbs).
            if let Err(error) = consumer.commit_consumer_state(CommitMode::Async) {
                tracing::debug!(consumer = self.name, %error, "final offset commit");
            }
            // Closing leaves the group and waits for the broker: off the async threads.
            let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
            match stop {
                Stop::Shutdown => return Ok(()),
                Stop::Rejoin => {
                    tracing::warn!(
                        consumer = self.name,
                        "consumer stuck: leaving the group and joining again"
                    );
                    crate::metrics::consumer_rejoined(self.name);
                }
            }
        }
    }

    /// Handles messages until shutdown or a rejoin request.
    async fn consume(
        &self,
        consumer: &StreamConsumer,
        rejoin: &Notify,
        shutdown: &Shutdown,
    ) -> Stop {
        loop {
            let message = tokio::select! {
                () = shutdown.requested() => return Stop::Shutdown,
                () = rejoin.notified() => return Stop::Rejoin,
                message = consumer.recv() => message,
            };
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    // Mostly a broker that is away; librdkafka reconnects by itself.
                    tracing::warn!(consumer = self.name, %error, "kafka consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(consumed) = self.process(&message, shutdown).await else {
                // Shutdown while retrying: the offset stays unstored, the event comes back.
                return Stop::Shutdown;
            };
            tracing::debug!(
                consumer = self.name,
                offset = message.offset(),
                ?consumed,
                "consumed"
            );
            if let Err(error) = consumer.store_offset_from_message(&message) {
                // The partition moved to another member in a rebalance; it redelivers the
                // event and its inbox skips it.
                tracing::warn!(consumer = self.name, %error, "offset not stored");
            }
            if consumed == Consumed::Applied {
                self.relay.wake();
            }
        }
    }

    /// Applies or dead-letters one message, in its span; `None` if shutdown interrupted the
    /// retries.
    async fn process(
        &self,
        message: &BorrowedMessage<'_>,
        shutdown: &Shutdown,
    ) -> Option<Consumed> {
        let opened = envelope::open(message.payload().unwrap_or_default());
        let span = tracing::info_span!(
            "kafka.consume",
            otel.name = %format_args!("{} process", message.topic()),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.destination.name = message.topic(),
            messaging.kafka.partition = message.partition(),
            messaging.kafka.offset = message.offset(),
            messaging.consumer.group.name = self.name,
            component = self.name,
            event_type = tracing::field::Empty,
            order_id = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        let parent = match &opened {
            Ok(event) => {
                span.record("event_type", event.envelope.event_type.as_str());
                span.record("order_id", tracing::field::display(event.order_id));
                propagation::envelope_parent(event.envelope.trace_context.as_ref())
            }
            Err(_) => opentelemetry::Context::new(),
        };
        propagation::adopt_parent(&span, parent);
        let consumed = self
            .apply_or_dead_letter(message, opened, shutdown)
            .instrument(span)
            .await;
        if let Some(consumed) = consumed {
            crate::metrics::consumed(self.name, message.topic(), consumed);
        }
        consumed
    }

    async fn apply_or_dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        opened: Result<envelope::Event, envelope::EnvelopeError>,
        shutdown: &Shutdown,
    ) -> Option<Consumed> {
        let event = match opened {
            Ok(event) => event,
            Err(error) => {
                return self
                    .dead_letter(message, &error.to_string(), shutdown)
                    .await;
            }
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.apply(&event).await {
                Ok(consumed) => return Some(consumed),
                Err(HandlerError::Invalid(reason)) => {
                    return self.dead_letter(message, &reason, shutdown).await;
                }
                Err(HandlerError::Transient(error)) => {
                    tracing::warn!(consumer = self.name, order_id = %event.order_id, %error, retry_in = ?backoff, "cannot apply event");
                }
            }
            tokio::select! {
                () = shutdown.requested() => return None,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn apply(&self, event: &envelope::Event) -> Result<Consumed, HandlerError> {
        let txn = self.db.begin().await?;
        if !inbox::record(&txn, self.name, event.event_id).await? {
            txn.rollback().await?;
            return Ok(Consumed::Duplicate);
        }
        self.handler.handle(&txn, event).await?;
        txn.commit().await?;
        // Crash point for the failure tests: the effect is committed, the offset not stored.
        crate::crash_point!("consumer.after_commit");
        Ok(Consumed::Applied)
    }

    /// Publishes the message unchanged to its topic's dead-letter topic, with its origin and the
    /// error in headers, and waits for the acknowledgement (retrying) so it is never lost.
    async fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        error: &str,
        shutdown: &Shutdown,
    ) -> Option<Consumed> {
        let topic = topics::dead_letter(message.topic());
        tracing::warn!(
            consumer = self.name,
            origin = message.topic(),
            offset = message.offset(),
            error,
            "dead-lettering message"
        );
        let mut backoff = Duration::from_millis(100);
        loop {
            let delivery = self.producer.send_raw(
                &topic,
                std::str::from_utf8(message.key().unwrap_or_default()).unwrap_or_default(),
                message.payload().unwrap_or_default(),
                self.dead_letter_headers(message, error),
            );
            match delivery {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => return Some(Consumed::DeadLettered),
                    Ok(Err((error, _))) => tracing::warn!(%error, "dead letter not acknowledged"),
                    Err(_) => tracing::warn!("dead letter cancelled"),
                },
                Err(error) => tracing::warn!(%error, "cannot enqueue dead letter"),
            }
            tokio::select! {
                () = shutdown.requested() => return None,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn dead_letter_headers(&self, message: &BorrowedMessage<'_>, error: &str) -> OwnedHeaders {
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for header in original.iter() {
                headers = headers.insert(Header {
                    key: header.key,
                    value: header.value,
                });
            }
        }
        let (partition, offset) = (
            message.partition().to_string(),
            message.offset().to_string(),
        );
        use dead_letter_headers as names;
        for (key, value) in [
            (names::TOPIC, message.topic()),
            (names::PARTITION, partition.as_str()),
            (names::OFFSET, offset.as_str()),
            (names::CONSUMER, self.name),
            (names::ERROR, error),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        headers
    }
}
