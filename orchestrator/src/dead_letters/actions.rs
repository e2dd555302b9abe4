//! What an operator does with dead letters: look at them, redrive them to their origin for the
//! consumer that refused them, or discard them. Each action is recorded with who took it, when
//! and why.
//!
//! A redrive publishes first and records after: a crash in between leaves the dead letter
//! PARKED, and redriving it again publishes the same event again, which the consumer's inbox
//! applies at most once (it keeps its event id). A message that is refused again becomes a new
//! dead letter.

use orderly_common::{
    ApiError,
    kafka::{EventProducer, envelope},
    messaging::dead_letter::headers as dlq,
};
use rdkafka::message::{Header, OwnedHeaders};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use uuid::Uuid;

use super::table::{State, actions, letters};

/// The most dead letters one listing or one filtered redrive takes.
pub const MOST_AT_ONCE: u64 = 1_000;

/// Which dead letters a listing or a filtered redrive takes.
#[derive(Debug, Default)]
pub struct Filter {
    pub state: Option<State>,
    pub topic: Option<String>,
    pub consumer: Option<String>,
}

/// A dead letter with its message and its actions.
pub struct Detail {
    pub letter: letters::Model,
    /// The message opened as an event, when it is one.
    pub event: Option<Result<envelope::Event, String>>,
    pub actions: Vec<actions::Model>,
}

pub struct DeadLetters {
    db: DatabaseConnection,
    producer: EventProducer,
}

impl DeadLetters {
    pub fn new(db: DatabaseConnection, producer: EventProducer) -> Self {
        Self { db, producer }
    }

    /// Newest first, at most `limit`.
    pub async fn list(&self, filter: &Filter, limit: u64) -> Result<Vec<letters::Model>, ApiError> {
        Ok(letters::Entity::find()
            .filter(condition(filter))
            .order_by_desc(letters::Column::DeadLetteredAt)
            .order_by_asc(letters::Column::Id)
            .limit(limit.min(MOST_AT_ONCE))
            .all(&self.db)
            .await?)
    }

    pub async fn get(&self, id: Uuid) -> Result<Detail, ApiError> {
        let letter = self.find(id).await?;
        let actions = actions::Entity::find()
            .filter(actions::Column::DeadLetterId.eq(id))
            .order_by_asc(actions::Column::Seq)
            .all(&self.db)
            .await?;
        let event = (!letter.event_id.is_empty())
            .then(|| envelope::open(&letter.topic, &letter.payload).map_err(|e| e.to_string()));
        Ok(Detail {
            letter,
            event,
            actions,
        })
    }

    /// Redrives the dead letters `ids` (PARKED or REDRIVEN already: none DISCARDED), in order.
    pub async fn redrive_ids(
        &self,
        ids: &[Uuid],
        actor: &str,
        note: &str,
    ) -> Result<Vec<letters::Model>, ApiError> {
        let mut chosen = Vec::with_capacity(ids.len());
        for id in ids {
            let letter = self.find(*id).await?;
            if State::parse(&letter.state) == Some(State::Discarded) {
                return Err(ApiError::FailedPrecondition(format!(
                    "dead letter {id} was discarded: it is never redriven"
                )));
            }
            chosen.push(letter);
        }
        self.redrive(chosen, actor, note).await
    }

    /// Redrives every PARKED dead letter `filter` takes (its topic and/or consumer), oldest
    /// first, at most [`MOST_AT_ONCE`].
    pub async fn redrive_parked(
        &self,
        mut filter: Filter,
        actor: &str,
        note: &str,
    ) -> Result<Vec<letters::Model>, ApiError> {
        filter.state = Some(State::Parked);
        let chosen = letters::Entity::find()
            .filter(condition(&filter))
            .order_by_asc(letters::Column::DeadLetteredAt)
            .order_by_asc(letters::Column::Id)
            .limit(MOST_AT_ONCE)
            .all(&self.db)
            .await?;
        self.redrive(chosen, actor, note).await
    }

    async fn redrive(
        &self,
        chosen: Vec<letters::Model>,
        actor: &str,
        note: &str,
    ) -> Result<Vec<letters::Model>, ApiError> {
        let mut redriven = Vec::with_capacity(chosen.len());
        for letter in chosen {
            self.publish_for_its_consumer(&letter).await?;
            let letter = self
                .record(letter, State::Redriven, "redrive", actor, note)
                .await?;
            tracing::info!(id = %letter.id, topic = letter.topic, consumer = letter.consumer, actor, note, "dead letter redriven");
            redriven.push(letter);
        }
        Ok(redriven)
    }

    /// Sets a PARKED dead letter aside for good; one discarded already is answered as it is.
    pub async fn discard(
        &self,
        id: Uuid,
        actor: &str,
        reason: &str,
    ) -> Result<letters::Model, ApiError> {
        let letter = self.find(id).await?;
        match State::parse(&letter.state) {
            Some(State::Discarded) => Ok(letter),
            Some(State::Redriven) => Err(ApiError::FailedPrecondition(format!(
                "dead letter {id} was redriven already"
            ))),
            _ => {
                let letter = self
                    .record(letter, State::Discarded, "discard", actor, reason)
                    .await?;
                tracing::info!(%id, actor, reason, "dead letter discarded");
                Ok(letter)
            }
        }
    }

    async fn find(&self, id: Uuid) -> Result<letters::Model, ApiError> {
        letters::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| ApiError::not_found("dead letter", id.to_string()))
    }

    /// Publishes the message again to its origin topic, with its own headers and the one that
    /// names its consumer, and waits for the broker's acknowledgement.
    async fn publish_for_its_consumer(&self, letter: &letters::Model) -> Result<(), ApiError> {
        let own: Vec<(String, Option<String>)> =
            serde_json::from_str(&letter.headers).unwrap_or_default();
        let mut headers = OwnedHeaders::new();
        for (key, value) in &own {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        headers = headers.insert(Header {
            key: dlq::REDRIVE_FOR,
            value: Some(letter.consumer.as_str()),
        });
        let broker_down = |error: String| ApiError::Dependency(format!("broker: {error}"));
        let delivery = self
            .producer
            .send_raw(&letter.topic, &letter.key, &letter.payload, headers)
            .map_err(|error| broker_down(error.to_string()))?;
        delivery
            .await
            .map_err(|error| broker_down(error.to_string()))
    }

    /// Moves `letter` to `state` and records the action, in one transaction.
    async fn record(
        &self,
        letter: letters::Model,
        state: State,
        action: &str,
        actor: &str,
        note: &str,
    ) -> Result<letters::Model, ApiError> {
        let txn = self.db.begin().await?;
        let id = letter.id;
        let mut changed: letters::ActiveModel = letter.into();
        changed.state = Set(state.as_str().to_owned());
        let letter = letters::Entity::update(changed).exec(&txn).await?;
        let entry = actions::ActiveModel {
            seq: NotSet,
            dead_letter_id: Set(id),
            action: Set(action.to_owned()),
            actor: Set(actor.to_owned()),
            note: Set(note.to_owned()),
            at: Set(orderly_common::time::now()),
        };
        actions::Entity::insert(entry)
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        Ok(letter)
    }
}

fn condition(filter: &Filter) -> Condition {
    let mut condition = Condition::all();
    if let Some(state) = filter.state {
        condition = condition.add(letters::Column::State.eq(state.as_str()));
    }
    if let Some(topic) = &filter.topic {
        condition = condition.add(letters::Column::Topic.eq(topic.as_str()));
    }
    if let Some(consumer) = &filter.consumer {
        condition = condition.add(letters::Column::Consumer.eq(consumer.as_str()));
    }
    condition
}
