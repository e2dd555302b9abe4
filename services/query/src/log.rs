//! The event topics as the broker has them: which partitions each topic has and where each ends
//! (its high watermark), asked through one long-lived client. Blocking librdkafka calls, run off
//! the async threads.

use std::{sync::Arc, time::Duration};

use orderly_common::{
    config::KafkaArgs,
    kafka::{KafkaError, client_config, lag},
};
use rdkafka::{
    TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};

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
            let metadata = client.fetch_metadata(None, ASK_WITHIN)?;
            let mut partitions = TopicPartitionList::new();
            for topic in topics {
                let listed = metadata
                    .topics()
                    .iter()
                    .filter(|listed| listed.name() == *topic);
                for partition in listed.flat_map(|listed| listed.partitions()) {
                    partitions.add_partition(topic, partition.id());
                }
            }
            if partitions.count() == 0 {
                return Ok(Vec::new());
            }
            let watermarks = lag::watermarks(client.as_ref(), &partitions, ASK_WITHIN)?;
            let ends = (partitions.elements().iter())
                .filter_map(|element| {
                    let key = (element.topic().to_owned(), element.partition());
                    let &(start, offset) = watermarks.get(&key)?;
                    Some(End {
                        topic: key.0,
                        partition: key.1,
                        start,
                        offset,
                    })
                })
                .collect();
            Ok::<_, KafkaError>(ends)
        })
        .await;
        asked.unwrap_or_else(|_| Err(KafkaError::Client(rdkafka::error::KafkaError::Canceled)))
    }
}
