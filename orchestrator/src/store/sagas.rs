//! The `sagas` table and reads of whole sagas (with steps and history).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryOrder, QuerySelect, entity::prelude::*};

use super::{history, steps};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sagas")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    pub customer_id: String,
    pub total_minor: i64,
    pub currency: String,
    pub state: String,
    pub reason: String,
    pub deadline_at: DateTime<Utc>,
    pub version: i64,
    pub outcome_emitted: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// W3C `traceparent` of the span that last changed the saga ("" when tracing is off).
    pub trace_parent: String,
    /// The version of the saga definition the saga started under (and finishes under).
    pub definition_version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::steps::Entity")]
    Steps,
}

impl Related<steps::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Steps.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// A saga with its steps and its history.
#[derive(Clone, Debug)]
pub struct Saga {
    pub header: Model,
    pub steps: Vec<steps::Model>,
    pub history: Vec<history::Model>,
}

pub async fn find(db: &impl ConnectionTrait, order_id: Uuid) -> Result<Option<Saga>, DbErr> {
    let Some(header) = Entity::find_by_id(order_id).one(db).await? else {
        return Ok(None);
    };
    let steps = steps::Entity::find()
        .filter(steps::Column::OrderId.eq(order_id))
        .order_by_asc(steps::Column::UpdatedAt)
        .all(db)
        .await?;
    let history = history::Entity::find()
        .filter(history::Column::OrderId.eq(order_id))
        .order_by_asc(history::Column::Id)
        .all(db)
        .await?;
    Ok(Some(Saga {
        header,
        steps,
        history,
    }))
}

/// Sagas ordered by order id, optionally only those in `state`, after `after` when given.
/// Listings carry headers only; GetSaga gives the steps and history.
pub async fn list(
    db: &impl ConnectionTrait,
    state: Option<&str>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Model>, DbErr> {
    let mut query = Entity::find().order_by_asc(Column::OrderId).limit(limit);
    if let Some(state) = state {
        query = query.filter(Column::State.eq(state));
    }
    if let Some(after) = after {
        query = query.filter(Column::OrderId.gt(after));
    }
    query.all(db).await
}
