//! The topics Orderly uses, and creating them. Each producer owns one topic; every topic has a
//! dead-letter topic for messages that can never be processed. Domain topics get the partitions
//! and retention the settings give them (for good by default: they are the record a read model
//! is rebuilt from), except the catalogue and the accounts, which are
//! compacted (each key's latest event is kept for good); a dead-letter topic has one partition
//! (nothing reads it in order per key, and an operator reads one log) and keeps its messages
//! longer.

use std::time::Duration;

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    types::RDKafkaErrorCode,
};

use super::{KafkaError, client_config};
use crate::config::KafkaArgs;

// The topics themselves are part of the event contract (`orderly_proto::topics`).
pub use orderly_proto::topics::*;

/// The dead-letter topic of `topic`.
pub fn dead_letter(topic: &str) -> String {
    format!("{topic}{DEAD_LETTER_SUFFIX}")
}

const DEAD_LETTER_SUFFIX: &str = ".dlq";

/// Every domain topic and its dead-letter topic.
pub fn all() -> Vec<String> {
    DOMAIN
        .iter()
        .flat_map(|topic| [topic.to_string(), dead_letter(topic)])
        .collect()
}

/// Creates `topics` that do not exist yet (existing ones are left as they are), then checks that
/// the broker's metadata lists every one with its partitions. A consumer that subscribes to a
/// topic its client does not know yet only notices it at the next metadata refresh, minutes
/// later; when components start together, another one may still be creating a topic.
pub async fn ensure(args: &KafkaArgs, topics: &[String]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = client_config(args).create()?;
    let settings: Vec<Settings> = topics.iter().map(|topic| settings(args, topic)).collect();
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .zip(&settings)
        .map(|(topic, settings)| {
            let topic = NewTopic::new(
                topic,
                settings.partitions,
                TopicReplication::Fixed(args.kafka_replication_factor),
            );
            match &settings.retention {
                Retention::Compacted => topic.set("cleanup.policy", "compact"),
                Retention::Milliseconds(ms) => topic.set("retention.ms", ms),
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                });
            }
        }
    }
    let listed = listed_topics(args).await?;
    match topics.iter().find(|topic| !listed.contains(*topic)) {
        None => Ok(()),
        Some(topic) => Err(KafkaError::CreateTopic {
            topic: topic.clone(),
            reason: "not listed with partitions in the broker's metadata yet".into(),
        }),
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Settings {
    partitions: i32,
    retention: Retention,
}

#[derive(Debug, PartialEq, Eq)]
enum Retention {
    /// `retention.ms`: how long a record is kept.
    Milliseconds(String),
    /// `cleanup.policy=compact`: each key's latest record is kept.
    Compacted,
}

/// The partitions and retention `topic` is created with.
fn settings(args: &KafkaArgs, topic: &str) -> Settings {
    let hours = |hours: u64| {
        Retention::Milliseconds(match hours {
            0 => "-1".to_owned(), // Kafka's "for good"
            hours => hours.saturating_mul(3_600_000).to_string(),
        })
    };
    if is_dead_letter(topic) {
        Settings {
            partitions: 1,
            retention: hours(args.kafka_dead_letter_retention_hours),
        }
    } else {
        Settings {
            partitions: args.partitions_of(topic),
            retention: if COMPACTED.contains(&topic) {
                Retention::Compacted
            } else {
                hours(args.kafka_retention_hours)
            },
        }
    }
}

pub fn is_dead_letter(topic: &str) -> bool {
    topic.ends_with(DEAD_LETTER_SUFFIX)
}

/// Topics the broker's metadata lists with at least one partition.
async fn listed_topics(args: &KafkaArgs) -> Result<Vec<String>, KafkaError> {
    let config = client_config(args);
    let fetched = tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = config.create()?;
        let metadata = client.fetch_metadata(None, Duration::from_secs(10))?;
        Ok::<_, KafkaError>(
            metadata
                .topics()
                .iter()
                .filter(|topic| !topic.partitions().is_empty())
                .map(|topic| topic.name().to_owned())
                .collect(),
        )
    })
    .await;
    fetched.unwrap_or_else(|_| Err(KafkaError::Client(rdkafka::error::KafkaError::Canceled)))
}

/// Keeps trying to create the topics until it works or `shutdown` is requested: a component
/// may start before its broker.
pub async fn ensure_with_retry(
    args: &KafkaArgs,
    topics: &[String],
    shutdown: &crate::Shutdown,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match ensure(args, topics).await {
            Ok(()) => return true,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "topics not ready");
            }
        }
        tokio::select! {
            _ = shutdown.requested() => return false,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TopicPartitions;

    #[test]
    fn dead_letters_get_one_partition_and_their_own_retention() {
        let mut args = KafkaArgs::at("127.0.0.1:9092");
        args.kafka_partitions = 6;
        args.kafka_topic_partitions = vec![TopicPartitions {
            topic: ORDERS.to_owned(),
            partitions: 12,
        }];
        args.kafka_retention_hours = 1;
        args.kafka_dead_letter_retention_hours = 720;
        let kept = |partitions, ms: &str| Settings {
            partitions,
            retention: Retention::Milliseconds(ms.to_owned()),
        };
        assert_eq!(settings(&args, ORDERS), kept(12, "3600000"));
        assert_eq!(settings(&args, SAGAS), kept(6, "3600000"));
        assert_eq!(settings(&args, &dead_letter(ORDERS)), kept(1, "2592000000"));
        let compacted = Settings {
            partitions: 6,
            retention: Retention::Compacted,
        };
        assert_eq!(settings(&args, CATALOGUE), compacted);
        assert_eq!(
            settings(&args, &dead_letter(CATALOGUE)),
            kept(1, "2592000000")
        );
        args.kafka_retention_hours = 0;
        assert_eq!(settings(&args, ORDERS), kept(12, "-1"));
    }
}
