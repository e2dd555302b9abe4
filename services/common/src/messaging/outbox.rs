//! The `outbox` table: events waiting to be published.

use std::cell::Cell;

use chrono::{DateTime, Utc};
use orderly_proto::events::v1::EventEnvelope;
use prost::Message;
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder, QuerySelect, entity::prelude::*};

/// On PostgreSQL, every commit that adds rows notifies this channel (a trigger on the table), so
/// the relay of whichever replica publishes learns of them at once.
pub const NOTIFY_CHANNEL: &str = "orderly_outbox";

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub event_id: Uuid,
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

tokio::task_local! {
    /// Whether [`add`] ran inside [`noting_additions`].
    static ADDED: Cell<bool>;
}

/// Runs `work` and says whether it added anything to the outbox. A consumer wakes the relay
/// only then: many events emit nothing (outcomes, notifications), and each needless wake costs
/// the relay a query.
pub async fn noting_additions<F: Future>(work: F) -> (F::Output, bool) {
    ADDED
        .scope(Cell::new(false), async move {
            let output = work.await;
            (output, ADDED.with(Cell::get))
        })
        .await
}

/// Adds `envelope` to the outbox inside the caller's transaction; it is published only if that
/// transaction commits. Call [`super::Relay::wake`] after the commit.
pub async fn add(
    db: &impl ConnectionTrait,
    topic: &str,
    envelope: &EventEnvelope,
) -> Result<(), DbErr> {
    let event_id = Uuid::parse_str(&envelope.event_id).map_err(|_| {
        DbErr::Custom(format!(
            "outbox: event id {:?} is not a UUID",
            envelope.event_id
        ))
    })?;
    let row = ActiveModel {
        seq: sea_orm::ActiveValue::NotSet,
        event_id: Set(event_id),
        topic: Set(topic.to_owned()),
        key: Set(envelope.order_id.clone()),
        payload: Set(envelope.encode_to_vec()),
        created_at: Set(crate::time::now()),
    };
    Entity::insert(row).exec_without_returning(db).await?;
    // Outside `noting_additions` the caller wakes the relay itself.
    let _ = ADDED.try_with(|added| added.set(true));
    Ok(())
}

/// The oldest `limit` rows, in the order they were written.
pub async fn oldest(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .order_by_asc(Column::Seq)
        .limit(limit)
        .all(db)
        .await
}

/// Deletes published rows.
pub async fn remove(db: &impl ConnectionTrait, seqs: Vec<i64>) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::Seq.is_in(seqs))
        .exec(db)
        .await?;
    Ok(())
}

/// How many rows wait, and since when the oldest does.
pub async fn standing(db: &impl ConnectionTrait) -> Result<(u64, Option<DateTime<Utc>>), DbErr> {
    let backlog = Entity::find().count(db).await?;
    let oldest = Entity::find()
        .order_by_asc(Column::Seq)
        .one(db)
        .await?
        .map(|row| row.created_at);
    Ok((backlog, oldest))
}
