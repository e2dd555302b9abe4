//! The consuming side of every service: decode, deduplicate through the inbox, apply the effects
//! and their outgoing events, then store the offsets. Messages already fetched are applied in
//! batches, one database transaction per batch, so a commit (and its fsync) is shared by many
//! events while each event keeps its own inbox record, effects and span. On PostgreSQL the
//! partitions are split into lanes (`--consumer-lanes`) that apply their batches at once, each
//! in its own transaction, so one partition waiting for a lock or a commit does not hold up the
//! others; a partition's events stay in order, in one lane. Poison messages go to
//! the dead-letter topic with their origin and error; transient failures are retried with
//! backoff and block the consumer, so nothing is skipped. An event this consumer does not
//! understand (a type only a newer producer knows), or one an operator redrove for another
//! consumer group, is skipped and counted, not dead-lettered.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::future;
use rdkafka::{
    Message,
    consumer::{CommitMode, Consumer},
    message::{BorrowedMessage, Headers},
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, TransactionTrait,
};
use tokio::sync::{Notify, mpsc};
use tracing::Instrument;
use uuid::Uuid;

use super::{Relay, dead_letter, inbox, outbox};
use crate::{
    Shutdown,
    config::KafkaArgs,
    kafka::{
        self, EventProducer, GroupConsumer, KafkaError, envelope,
        signing::{EventKeys, SIGNATURE},
    },
    telemetry::propagation,
};

/// Most messages applied in one transaction: enough to share a commit among a burst, few enough
/// that one transaction never holds the database for long. A batch is only what has already been
/// fetched, so at low load it is one message and nothing waits to fill it.
const MAX_BATCH: usize = 128;

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

    /// Takes the row locks a batch's `events` will need before any of them is applied, in one
    /// order that every transaction shares (sorted by key). Transactions applying batches at
    /// once (other replicas, other partitions) then queue for a row instead of each holding what
    /// the other waits for until PostgreSQL's deadlock timeout aborts one. Called on PostgreSQL
    /// for batches of two fresh events or more (SQLite has one writer at a time, and a single
    /// event takes its locks in key order by itself). By default: nothing to lock.
    fn lock_in_order(
        &self,
        _txn: &DatabaseTransaction,
        _events: &[&envelope::Event],
    ) -> impl Future<Output = Result<(), DbErr>> + Send {
        std::future::ready(Ok(()))
    }

    /// Called once the transaction that applied `event` has committed: the place to tell
    /// in-process watchers, who must never see an effect that could still roll back.
    fn committed(&self, _event: &envelope::Event) {}

    /// Whether this handler has anything to do with `event`; one it does not understand is
    /// skipped (and counted), never dead-lettered. By default: a payload this build knows.
    fn understands(&self, event: &envelope::Event) -> bool {
        event.payload.is_some()
    }
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
    /// Not for this consumer: a type it does not know.
    Skipped,
}

impl Consumed {
    /// The `outcome` label of `orderly_events_consumed_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::DeadLettered => "dead_lettered",
            Self::Skipped => "skipped",
        }
    }
}

/// One consumer group reading `topics` into `handler` until `shutdown`.
pub struct EventConsumer<H> {
    /// The consumer group, which is also the component's name (in spans and metrics).
    pub name: &'static str,
    pub topics: Arc<[String]>,
    pub db: DatabaseConnection,
    pub handler: H,
    pub relay: Relay,
    pub producer: EventProducer,
    /// Where the consumer running now is shown to the lag watcher.
    pub member: kafka::Member,
}

impl<H: Handler> EventConsumer<H> {
    /// Consumes until `shutdown`. When `rejoin` is notified (the lag watcher saw this member
    /// sit on lag it does not commit), the consumer leaves the group and joins it again as a new
    /// member: a fresh start for whatever state stalled it (seen with the embedded broker after
    /// a broker bounce: one partition never fetched again).
    pub async fn run(
        self,
        kafka: &KafkaArgs,
        rejoin: Arc<Notify>,
        shutdown: Shutdown,
    ) -> Result<(), KafkaError> {
        let lanes = match self.db.get_database_backend() {
            // One writer at a time: a second transaction would only wait for the first.
            DbBackend::Sqlite => 1,
            _ => usize::from(kafka.consumer_lanes.max(1)),
        };
        loop {
            let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
            let consumer = Arc::new(kafka::consumer(kafka, self.name, &topics)?);
            self.member.set(Some(consumer.clone()));
            let stop = self.consume(&consumer, lanes, &rejoin, &shutdown).await;
            // Async: a broker that is down must not hold up shutdown (uncommitted offsets only
            // mean redelivery, which the inbox absorbs).
            if let Err(error) = consumer.commit_consumer_state(CommitMode::Async) {
                tracing::debug!(consumer = self.name, %error, "final offset commit");
            }
            // Clearing the member waits for a lag sample using the consumer, and closing
            // leaves the group and waits for the broker: both off the async threads.
            let member = self.member.clone();
            let _ = tokio::task::spawn_blocking(move || {
                member.set(None);
                drop(consumer);
            })
            .await;
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

    /// Handles batches of messages until shutdown or a rejoin request. Partition p's messages go
    /// to lane p mod `lanes`; each lane applies its batches one at a time, in order, while the
    /// other lanes apply theirs.
    async fn consume(
        &self,
        consumer: &GroupConsumer,
        lanes: usize,
        rejoin: &Notify,
        shutdown: &Shutdown,
    ) -> Stop {
        // A lane queues at most one batch behind the one it applies.
        let (queues, receivers): (Vec<_>, Vec<_>) =
            (0..lanes).map(|_| mpsc::channel(MAX_BATCH)).unzip();
        let stopping = AtomicBool::new(false);
        let dispatching = async {
            let stop = self.dispatch(consumer, queues, rejoin, shutdown).await;
            stopping.store(true, Ordering::Relaxed);
            stop
        };
        let applying = future::join_all(
            receivers
                .into_iter()
                .map(|queue| self.lane(consumer, queue, &stopping, shutdown)),
        );
        let (stop, _) = future::join(dispatching, applying).await;
        stop
    }

    /// Hands each message to its partition's lane, with the count of revocations so far, until
    /// shutdown or a rejoin request; the lanes see their queues close when it returns.
    async fn dispatch<'c>(
        &self,
        consumer: &'c GroupConsumer,
        lanes: Vec<mpsc::Sender<Received<'c>>>,
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
            let lane = &lanes[lane_of(message.partition(), lanes.len())];
            let received = Received {
                revocations: consumer.context().count(),
                message,
            };
            tokio::select! {
                () = shutdown.requested() => return Stop::Shutdown,
                () = rejoin.notified() => return Stop::Rejoin,
                // A lane stops only for shutdown (while retrying a batch).
                sent = lane.send(received) => if sent.is_err() { return Stop::Shutdown },
            }
        }
    }

    /// Applies the batches of one lane: whatever its queue holds, up to `MAX_BATCH`, without
    /// waiting for more, then the offsets. Stops when the dispatcher does; what is still queued
    /// then has no offset stored and comes back. A message received before a rebalance took
    /// the partitions away is dropped, not applied: the partition starts again from its
    /// committed offset, here or at another member, so applying it would apply it twice.
    async fn lane<'c>(
        &self,
        consumer: &'c GroupConsumer,
        mut queue: mpsc::Receiver<Received<'c>>,
        stopping: &AtomicBool,
        shutdown: &Shutdown,
    ) {
        while let Some(first) = queue.recv().await {
            if stopping.load(Ordering::Relaxed) {
                return;
            }
            let mut received = vec![first];
            while received.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(next) => received.push(next),
                    Err(_) => break,
                }
            }
            let revocations = consumer.context().count();
            let batch: Vec<BorrowedMessage<'c>> = received
                .into_iter()
                .filter(|received| received.revocations == revocations)
                .map(|received| received.message)
                .collect();
            if batch.is_empty() {
                continue;
            }
            let Some(added_to_outbox) = self.process(&batch, shutdown).await else {
                // Shutdown while retrying: the offsets stay unstored, the events come back.
                return;
            };
            for message in &batch {
                if let Err(error) = consumer.store_offset_from_message(message) {
                    // The partition moved to another member in a rebalance; it redelivers the
                    // event and its inbox skips it.
                    tracing::warn!(consumer = self.name, %error, "offset not stored");
                }
            }
            if added_to_outbox {
                self.relay.wake();
            }
        }
    }

    /// Applies or dead-letters every message of `batch`, in order; says whether that added
    /// events to the outbox, or `None` if shutdown interrupted the retries.
    async fn process(&self, batch: &[BorrowedMessage<'_>], shutdown: &Shutdown) -> Option<bool> {
        let mut items: Vec<Item> = batch
            .iter()
            .map(|message| Item::open(self.name, message, &self.handler, self.producer.keys()))
            .collect();
        let mut backoff = Duration::from_millis(100);
        let added_to_outbox = loop {
            match outbox::noting_additions(self.apply(&mut items)).await {
                (Ok(()), added) => break added,
                // Refused for good: apply the rest again without it.
                (Err(BatchError::Refused), _) => continue,
                (Err(BatchError::Transient(error)), _) => {
                    tracing::warn!(consumer = self.name, %error, batch = items.len(), retry_in = ?backoff, "cannot apply events");
                }
            }
            tokio::select! {
                () = shutdown.requested() => return None,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        };
        for (item, message) in items.iter().zip(batch) {
            let consumed = if let Some(reason) = &item.refused {
                let published =
                    dead_letter::publish(&self.producer, self.name, message, reason, shutdown)
                        .instrument(item.span.clone())
                        .await;
                if !published {
                    return None;
                }
                Consumed::DeadLettered
            } else if item.skipped {
                tracing::debug!(parent: &item.span, consumer = self.name, "event of a type this consumer does not know, or redriven for another: skipped");
                Consumed::Skipped
            } else if item.duplicate {
                Consumed::Duplicate
            } else {
                if let Some(event) = &item.event {
                    self.handler.committed(event);
                }
                Consumed::Applied
            };
            tracing::debug!(
                consumer = self.name,
                topic = message.topic(),
                partition = message.partition(),
                offset = message.offset(),
                ?consumed,
                "consumed"
            );
            crate::metrics::consumed(self.name, message.topic(), consumed);
        }
        Some(added_to_outbox)
    }

    /// Applies every item not refused in one transaction: all of them commit, or none.
    async fn apply(&self, items: &mut [Item]) -> Result<(), BatchError> {
        let txn = self.db.begin().await?;
        let event_ids: Vec<Uuid> = items
            .iter()
            .filter(|item| item.is_pending())
            .filter_map(|item| item.event.as_ref().map(|event| event.event_id))
            .collect();
        let mut fresh = match inbox::record(&txn, self.name, &event_ids).await {
            Ok(fresh) => fresh,
            Err(error) => {
                let _ = txn.rollback().await;
                return Err(BatchError::Transient(error));
            }
        };
        if let Err(error) = self.lock_in_order(&txn, items, &fresh).await {
            let _ = txn.rollback().await;
            return Err(BatchError::Transient(error));
        }
        let mut visited = 0;
        for item in items.iter_mut().filter(|item| item.is_pending()) {
            let Some(event) = &item.event else { continue };
            // The first copy of an event in the batch applies it; later ones are duplicates.
            item.duplicate = !fresh.remove(&event.event_id);
            if !item.duplicate {
                let outcome = self
                    .handler
                    .handle(&txn, event)
                    .instrument(item.span.clone())
                    .await;
                match outcome {
                    Ok(()) => {}
                    Err(HandlerError::Invalid(reason)) => {
                        item.refused = Some(reason);
                        txn.rollback().await?;
                        return Err(BatchError::Refused);
                    }
                    Err(HandlerError::Transient(error)) => {
                        // The database is likely away: the rollback may fail too, and the error
                        // worth reporting is the first one.
                        let _ = txn.rollback().await;
                        return Err(BatchError::Transient(error));
                    }
                }
            }
            visited += 1;
            if visited == 2 {
                // Crash point for the failure tests: a batch half applied, nothing committed.
                crate::crash_point!("consumer.mid_batch");
            }
        }
        txn.commit().await?;
        // Crash point for the failure tests: the effects are committed, the offsets not stored.
        crate::crash_point!("consumer.after_commit");
        Ok(())
    }

    /// Has the handler lock the rows of the batch's fresh events in key order, where that matters
    /// (see [`Handler::lock_in_order`]).
    async fn lock_in_order(
        &self,
        txn: &DatabaseTransaction,
        items: &[Item],
        fresh: &HashSet<Uuid>,
    ) -> Result<(), DbErr> {
        if txn.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let events: Vec<&envelope::Event> = items
            .iter()
            .filter(|item| item.is_pending())
            .filter_map(|item| item.event.as_ref())
            .filter(|event| fresh.contains(&event.event_id))
            .collect();
        if events.len() < 2 {
            return Ok(());
        }
        self.handler.lock_in_order(txn, &events).await
    }
}

/// The signature header of `message`, if it has one.
fn signature<'m>(message: &'m BorrowedMessage<'_>) -> Option<&'m [u8]> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|header| header.key == SIGNATURE)
        .and_then(|header| header.value)
}

/// A message on its way to a lane, with the consumer's revocation count when it was received.
struct Received<'c> {
    revocations: u64,
    message: BorrowedMessage<'c>,
}

/// The lane of a partition's messages (librdkafka numbers partitions from 0).
fn lane_of(partition: i32, lanes: usize) -> usize {
    usize::try_from(partition).unwrap_or(0) % lanes
}

/// One message of a batch on its way through: its event, its span, and what became of it.
struct Item {
    /// `None` when the message does not decode (`refused` says why).
    event: Option<envelope::Event>,
    /// Why the message can never be applied: it goes to the dead-letter topic.
    refused: Option<String>,
    /// The inbox had already seen the event (as of the attempt that committed).
    duplicate: bool,
    /// The handler does not understand the event: nothing to apply.
    skipped: bool,
    span: tracing::Span,
}

impl Item {
    /// Still to be applied: neither refused nor skipped.
    fn is_pending(&self) -> bool {
        self.refused.is_none() && !self.skipped
    }

    /// Decodes `message` and opens its span, continuing the trace its envelope names; with
    /// `keys`, a message without a valid signature is refused.
    fn open(
        consumer: &'static str,
        message: &BorrowedMessage<'_>,
        handler: &impl Handler,
        keys: Option<&EventKeys>,
    ) -> Self {
        if dead_letter::redriven_for_another(message, consumer) {
            return Self {
                event: None,
                refused: None,
                duplicate: false,
                skipped: true,
                span: tracing::Span::none(),
            };
        }
        let value = message.payload().unwrap_or_default();
        let opened = envelope::open(message.topic(), value);
        let signed = keys.map_or(Ok(()), |keys| keys.verify(value, signature(message)));
        let span = tracing::info_span!(
            "kafka.consume",
            otel.name = %format_args!("{} process", message.topic()),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.destination.name = message.topic(),
            messaging.kafka.partition = message.partition(),
            messaging.kafka.offset = message.offset(),
            messaging.consumer.group.name = consumer,
            component = consumer,
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
        let (event, refused) = match (opened, signed) {
            (Ok(event), Ok(())) => (Some(event), None),
            (Ok(_), Err(unsigned)) => (None, Some(unsigned)),
            (Err(error), _) => (None, Some(error.to_string())),
        };
        let skipped = event
            .as_ref()
            .is_some_and(|event| !handler.understands(event));
        Self {
            event,
            refused,
            duplicate: false,
            skipped,
            span,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum BatchError {
    /// An event was refused for good (marked on its item); the batch rolled back.
    #[error("an event was refused")]
    Refused,
    #[error(transparent)]
    Transient(#[from] DbErr),
}
