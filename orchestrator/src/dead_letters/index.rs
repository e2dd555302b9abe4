//! Indexing: a consumer group of its own reads every `.dlq` topic (a pattern subscription, so a
//! participant's topic that a saga definition adds is covered too) and records each dead letter
//! once, PARKED, keyed by where it sits. Replicas share the group; a record seen twice (after a
//! rebalance) is the same row.

use std::time::Duration;

use orderly_common::{
    Shutdown,
    config::KafkaArgs,
    kafka::{self, envelope::headers as event_headers, topics},
    messaging::dead_letter::headers as dlq,
};
use rdkafka::{
    Message, Timestamp,
    consumer::Consumer,
    message::{BorrowedMessage, Headers},
};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, sea_query::OnConflict};
use uuid::Uuid;

use super::table::{State, letters};

/// The consumer group that indexes dead letters.
pub const GROUP: &str = "orchestrator-dead-letters";

/// Every dead-letter topic (librdkafka reads a leading `^` as a regular expression).
const EVERY_DEAD_LETTER_TOPIC: &str = r"^.*\.dlq$";

/// Indexes dead letters until `shutdown`.
pub async fn run(db: DatabaseConnection, kafka: KafkaArgs, shutdown: Shutdown) {
    // Subscribed once Orderly's topics exist; others match the pattern at a metadata refresh.
    if !topics::ensure_with_retry(&kafka, &topics::all(), &shutdown).await {
        return;
    }
    let consumer = loop {
        match kafka::consumer(&kafka, GROUP, &[EVERY_DEAD_LETTER_TOPIC]) {
            Ok(consumer) => break consumer,
            Err(error) => tracing::warn!(%error, "dead-letter index cannot subscribe yet"),
        }
        tokio::select! {
            () = shutdown.requested() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    loop {
        let message = tokio::select! {
            () = shutdown.requested() => break,
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "dead-letter index: kafka consumer error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !record_with_retry(&db, &message, &shutdown).await {
            break;
        }
        if let Err(error) = consumer.store_offset_from_message(&message) {
            tracing::warn!(%error, "dead-letter index: offset not stored");
        }
    }
    // Leaving the group waits for the broker: off the async threads.
    let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
}

/// Records the dead letter, retrying while the database is away; false on shutdown.
async fn record_with_retry(
    db: &DatabaseConnection,
    message: &BorrowedMessage<'_>,
    shutdown: &Shutdown,
) -> bool {
    let letter = letter_of(message);
    let mut backoff = Duration::from_millis(100);
    loop {
        match record(db, letter.clone()).await {
            Ok(()) => return true,
            Err(error) => tracing::warn!(%error, retry_in = ?backoff, "cannot index a dead letter"),
        }
        tokio::select! {
            () = shutdown.requested() => return false,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn record(db: &DatabaseConnection, letter: letters::Model) -> Result<(), DbErr> {
    letters::Entity::insert(letters::ActiveModel::from(letter))
        .on_conflict(
            OnConflict::column(letters::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// The id of the dead letter at `offset` of `partition` of the dead-letter topic `topic`.
pub fn id_of(topic: &str, partition: i32, offset: i64) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("kafka:{topic}/{partition}/{offset}").as_bytes(),
    )
}

fn letter_of(message: &BorrowedMessage<'_>) -> letters::Model {
    let mut dead_letter_headers = Vec::new();
    let mut own_headers = Vec::new();
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            let value = header
                .value
                .map(|value| String::from_utf8_lossy(value).into_owned());
            if header.key.starts_with(dlq::PREFIX) {
                dead_letter_headers.push((header.key.to_owned(), value.unwrap_or_default()));
            } else {
                own_headers.push((header.key.to_owned(), value));
            }
        }
    }
    let dead_letter = |name: &str| {
        (dead_letter_headers.iter())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    let own = |name: &str| {
        (own_headers.iter())
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    let dead_lettered_at = match message.timestamp() {
        Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => {
            chrono::DateTime::from_timestamp_millis(ms)
        }
        Timestamp::NotAvailable => None,
    };
    letters::Model {
        id: id_of(message.topic(), message.partition(), message.offset()),
        topic: dead_letter(dlq::TOPIC),
        partition: dead_letter(dlq::PARTITION).parse().unwrap_or(-1),
        offset: dead_letter(dlq::OFFSET).parse().unwrap_or(-1),
        consumer: dead_letter(dlq::CONSUMER),
        error: dead_letter(dlq::ERROR),
        event_id: own(event_headers::EVENT_ID),
        event_type: own(event_headers::EVENT_TYPE),
        key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
        payload: message.payload().unwrap_or_default().to_vec(),
        headers: serde_json::to_string(&own_headers).unwrap_or_else(|_| "[]".into()),
        dead_lettered_at: dead_lettered_at.unwrap_or_else(orderly_common::time::now),
        state: State::Parked.as_str().to_owned(),
    }
}
