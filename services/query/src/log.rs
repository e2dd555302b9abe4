//! The event topics as the broker has them: which partitions each topic has and where each ends
//! (its high watermark), asked through one long-lived client. Blocking librdkafka calls, run off
//! the async threads.

use std::{sync::Arc, time::Duration};

use orderly_common::{
    config::KafkaArgs,
    kafka::{KafkaError, client_config},
};
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The broker is asked with this bound, so a read never hangs on a broker that is away.
const ASK_WITHIN: Duration = Duration::from_secs(5);

/// One partition of a topic and where it starts and ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct End {
    pub topic: String,
    pub partition: i32,
    /// The offset of the oldest record the broker still holds (retention deletes older ones).
    pub start: i64,
    /// The offset the next record will get.
    pub offset: i64,
}

#[derive(Clone)]
pub struct Log {
    client: Arc<BaseConsumer>,
}

impl Log {
    pub fn new(kafka: &KafkaArgs) -> Result<Self, KafkaError> {
        let client: BaseConsumer = client_config(kafka).create()?;
        Ok(Self {
            client: Arc::new(client),
        })
    }

    /// Every partition of `topics` with its start and end.
    pub async fn ends(&self, topics: &'static [&'static str]) -> Result<Vec<End>, KafkaError> {
        let client = self.client.clone();
        let asked = tokio::task::spawn_blocking(move || {
            let mut ends = Vec::new();
            for topic in topics {
                let metadata = client.fetch_metadata(Some(topic), ASK_WITHIN)?;
                for listed in metadata.topics() {
                    for partition in listed.partitions() {
                        let (low, high) =
                            client.fetch_watermarks(topic, partition.id(), ASK_WITHIN)?;
                        ends.push(End {
                            topic: (*topic).to_owned(),
                            partition: partition.id(),
                            start: low,
                            offset: high,
                        });
                    }
                }
            }
            Ok::<_, KafkaError>(ends)
        })
        .await;
        asked.unwrap_or_else(|_| Err(KafkaError::Client(rdkafka::error::KafkaError::Canceled)))
    }
}
