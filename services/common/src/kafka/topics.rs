//! The topics Orderly uses. Each producer owns one topic; every topic has a dead-letter topic
//! for messages that can never be processed.

use std::time::Duration;

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    types::RDKafkaErrorCode,
};

use super::{KafkaError, client_config};
use crate::config::KafkaArgs;

/// `OrderPlaced`, from the order service.
pub const ORDERS: &str = "orderly.orders.v1";
/// `InventoryReserved` / `InventoryRejected`, from the inventory service.
pub const INVENTORY: &str = "orderly.inventory.v1";
/// `PaymentAuthorized` / `PaymentDeclined`, from the payment service.
pub const PAYMENTS: &str = "orderly.payments.v1";
/// `SagaConfirmed` / `SagaRejected`, from the orchestrator.
pub const SAGAS: &str = "orderly.sagas.v1";

pub const DOMAIN: [&str; 4] = [ORDERS, INVENTORY, PAYMENTS, SAGAS];

/// The dead-letter topic of `topic`.
pub fn dead_letter(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Every domain topic and its dead-letter topic.
pub fn all() -> Vec<String> {
    DOMAIN
        .iter()
        .flat_map(|topic| [topic.to_string(), dead_letter(topic)])
        .collect()
}

/// Creates `topics` that do not exist yet; existing ones are left as they are.
pub async fn ensure(args: &KafkaArgs, topics: &[String]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = client_config(args).create()?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|topic| {
            NewTopic::new(
                topic,
                args.kafka_partitions,
                TopicReplication::Fixed(args.kafka_replication_factor),
            )
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
    Ok(())
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
