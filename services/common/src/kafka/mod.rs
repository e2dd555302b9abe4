//! Kafka plumbing over rdkafka (librdkafka): client settings, topics, the event envelope, an
//! idempotent producer and consumers that store offsets only when told to.

mod client;
mod consumer;
pub mod envelope;
pub mod lag;
mod producer;
pub mod signing;
pub mod topics;

pub use client::client_config;
pub use consumer::{GroupConsumer, Member, Revocations, consumer};
pub use producer::{Delivery, EventProducer};

/// What can go wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),

    #[error("cannot create topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },

    #[error("cannot start the producer's delivery thread: {0}")]
    Thread(std::io::Error),

    #[error("the producer closed before the broker acknowledged")]
    Unacknowledged,

    #[error("the broker did not say where {topic}[{partition}] starts or ends")]
    NoOffset { topic: String, partition: i32 },

    #[error(transparent)]
    Keys(#[from] signing::KeysError),
}
