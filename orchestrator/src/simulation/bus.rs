//! The in-memory Kafka of the simulation: topics split into partitions by order id, consumer
//! groups with a fetch position and a committed offset, the transactional outbox and the inbox
//! of each service, and what a compensation RPC may answer. Delivery is at least once; nothing
//! here ever loses a published message.

use std::collections::BTreeMap;

use orderly_proto::topics;
use orderly_saga::StepIndex;

use super::{generated, workload::Line};

pub type OrderId = u64;
pub type EventId = u64;

/// Every partition is keyed by order id, like the real producer (key = order id): one order's
/// events on one topic keep their order; across topics and partitions nothing is ordered.
pub const PARTITIONS: usize = 2;

/// A topic, by its name: the shipped saga's, or one of a generated saga's steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Topic(pub &'static str);

impl Topic {
    pub const ORDERS: Topic = Topic(topics::ORDERS);
    pub const INVENTORY: Topic = Topic(topics::INVENTORY);
    pub const PAYMENTS: Topic = Topic(topics::PAYMENTS);
    pub const SAGAS: Topic = Topic(topics::SAGAS);

    /// The topic a definition names (`None` for one the simulation has no log for).
    pub fn named(name: &str) -> Option<Topic> {
        let known = [Self::ORDERS, Self::INVENTORY, Self::PAYMENTS, Self::SAGAS];
        let steps = generated::TOPICS.map(Topic);
        known.into_iter().chain(steps).find(|topic| topic.0 == name)
    }
}

pub fn partition_of(order: OrderId) -> usize {
    (order % PARTITIONS as u64) as usize
}

/// The facts services tell each other; the same payloads as the protobuf events, minus what the
/// saga logic never reads (trace context, currency, occurred-at).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    OrderPlaced {
        customer: usize,
        lines: Vec<Line>,
        amount: i64,
    },
    InventoryReserved {
        customer: usize,
        amount: i64,
    },
    InventoryRejected {
        customer: usize,
        amount: i64,
        reason: String,
    },
    PaymentAuthorized {
        customer: usize,
        amount: i64,
    },
    PaymentDeclined {
        customer: usize,
        amount: i64,
        reason: String,
    },
    /// A generated saga's step answering: done, or refused.
    Step {
        step: StepIndex,
        refused: bool,
        customer: usize,
        amount: i64,
    },
    SagaConfirmed,
    SagaRejected {
        reason: String,
    },
}

impl Payload {
    pub fn topic(&self) -> Topic {
        match self {
            Self::OrderPlaced { .. } => Topic::ORDERS,
            Self::InventoryReserved { .. } | Self::InventoryRejected { .. } => Topic::INVENTORY,
            Self::PaymentAuthorized { .. } | Self::PaymentDeclined { .. } => Topic::PAYMENTS,
            Self::Step { step, .. } => Topic(generated::TOPICS[*step]),
            Self::SagaConfirmed | Self::SagaRejected { .. } => Topic::SAGAS,
        }
    }
}

/// An event in its envelope: the id is what inboxes deduplicate on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: EventId,
    pub order: OrderId,
    pub payload: Payload,
}

/// Hands out event ids; one source per run keeps runs reproducible.
#[derive(Debug, Default)]
pub struct EventIds(EventId);

impl EventIds {
    pub fn next(&mut self, order: OrderId, payload: Payload) -> Message {
        self.0 += 1;
        Message {
            id: self.0,
            order,
            payload,
        }
    }
}

/// The append-only logs of every topic and partition.
#[derive(Debug, Default)]
pub struct Bus {
    logs: BTreeMap<(Topic, usize), Vec<Message>>,
}

impl Bus {
    pub fn publish(&mut self, message: Message) {
        let at = (message.payload.topic(), partition_of(message.order));
        self.logs.entry(at).or_default().push(message);
    }

    pub fn log(&self, topic: Topic, partition: usize) -> &[Message] {
        self.logs
            .get(&(topic, partition))
            .map_or(&[], Vec::as_slice)
    }

    pub fn contains(&self, message: &Message) -> bool {
        self.log(message.payload.topic(), partition_of(message.order))
            .iter()
            .any(|published| published.id == message.id)
    }
}

/// One consumer group: where it has read to, and what it has committed (what a restart resumes
/// from). The gap between the two is what a crash delivers again.
#[derive(Clone, Debug)]
pub struct Consumer {
    pub topics: Vec<Topic>,
    position: BTreeMap<(Topic, usize), usize>,
    committed: BTreeMap<(Topic, usize), usize>,
}

impl Consumer {
    pub fn new(topics: Vec<Topic>) -> Self {
        Self {
            topics,
            position: BTreeMap::new(),
            committed: BTreeMap::new(),
        }
    }

    /// Every subscribed (topic, partition), in a fixed order.
    pub fn partitions(&self) -> impl Iterator<Item = (Topic, usize)> + '_ {
        self.topics
            .iter()
            .flat_map(|topic| (0..PARTITIONS).map(move |partition| (*topic, partition)))
    }

    pub fn position(&self, topic: Topic, partition: usize) -> usize {
        self.position.get(&(topic, partition)).copied().unwrap_or(0)
    }

    pub fn committed(&self, topic: Topic, partition: usize) -> usize {
        self.committed
            .get(&(topic, partition))
            .copied()
            .unwrap_or(0)
    }

    pub fn advance(&mut self, topic: Topic, partition: usize) {
        *self.position.entry((topic, partition)).or_default() += 1;
    }

    /// Offsets are committed only after the handler's database commit, so committing the
    /// position never skips an unapplied message.
    pub fn commit(&mut self) {
        self.committed = self.position.clone();
    }

    pub fn has_uncommitted(&self) -> bool {
        self.position != self.committed
    }

    /// The process died: it resumes from the committed offsets, re-reading what it had applied
    /// but not committed.
    pub fn crash(&mut self) {
        self.position = self.committed.clone();
    }
}

/// A service's outbox: rows written in the same transaction as the state change, published in
/// order by the relay and marked sent afterwards.
#[derive(Debug, Default)]
pub struct Outbox {
    rows: Vec<Message>,
    sent: usize,
}

impl Outbox {
    pub fn add(&mut self, message: Message) {
        self.rows.push(message);
    }

    pub fn next_unsent(&self) -> Option<&Message> {
        self.rows.get(self.sent)
    }

    pub fn mark_sent(&mut self) {
        self.sent = Ord::min(self.sent + 1, self.rows.len());
    }

    pub fn rows(&self) -> &[Message] {
        &self.rows
    }

    pub fn all_sent(&self) -> bool {
        self.sent == self.rows.len()
    }
}

/// A consumer's inbox: the ids of the events it applied, recorded in the same transaction as
/// the effect. `dedup` is off only to prove the checker notices a missing inbox.
#[derive(Debug)]
pub struct Inbox {
    seen: std::collections::BTreeSet<EventId>,
    dedup: bool,
}

impl Inbox {
    pub fn new(dedup: bool) -> Self {
        Self {
            seen: Default::default(),
            dedup,
        }
    }

    /// Records `id`; false when it was applied before and must be skipped.
    pub fn first_time(&mut self, id: EventId) -> bool {
        self.seen.insert(id) || !self.dedup
    }

    pub fn contains(&self, id: EventId) -> bool {
        self.seen.contains(&id)
    }
}

/// What a compensation RPC answers besides success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RpcError {
    /// Nothing is held for the order (the real compensator treats it as done).
    NotFound,
    /// The participant refuses: it would undo a confirmed order.
    FailedPrecondition,
}
