//! The `order_views` table: what the events say of each order. Each event sets only what it
//! knows (the order's facts, one step's answer, the outcome), so the topics' events may be
//! applied in any order between topics and any number of times with the same result.

use chrono::{DateTime, Utc};
use orderly_common::kafka::envelope::{Event, Payload};
use orderly_proto::events::v1::{
    inventory_event::Event as Inventory, order_event::Event as Placed,
    payment_event::Event as Payment, saga_event::Event as Outcome,
};
use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait,
    entity::prelude::*,
    sea_query::{Expr, OnConflict},
};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "order_views")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub generation: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: Uuid,
    pub customer_id: String,
    pub status: String,
    pub total_minor: i64,
    pub currency: String,
    pub reason: String,
    pub inventory: String,
    pub payment: String,
    pub placed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

pub async fn find(
    db: &impl ConnectionTrait,
    generation: i64,
    order_id: Uuid,
) -> Result<Option<Model>, DbErr> {
    Entity::find_by_id((generation, order_id)).one(db).await
}

/// Applies `event` (of any topic the projection reads) to its order's view in `generation`, in
/// `txn`; `at` is when it happened.
pub async fn apply(
    txn: &impl ConnectionTrait,
    generation: i64,
    event: &Event,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let Some(payload) = &event.payload else {
        return Ok(());
    };
    // A row for an order first heard of through a later step's event: what it says, and
    // PENDING until the outcome.
    let mut row = ActiveModel {
        generation: Set(generation),
        order_id: Set(event.order_id),
        customer_id: Set(event.saga_facts().customer_id),
        status: Set("PENDING".to_owned()),
        total_minor: Set(0),
        currency: Set(String::new()),
        reason: Set(String::new()),
        inventory: Set(String::new()),
        payment: Set(String::new()),
        placed_at: Set(None),
        updated_at: Set(at),
    };
    let updated: &[Column] = match payload {
        Payload::Order(Placed::OrderPlaced(placed)) => {
            let total = placed.total.clone().unwrap_or_default();
            row.customer_id = Set(placed.customer_id.clone());
            row.total_minor = Set(total.amount_minor);
            row.currency = Set(total.currency);
            row.placed_at = Set(Some(at));
            &[
                Column::CustomerId,
                Column::TotalMinor,
                Column::Currency,
                Column::PlacedAt,
            ]
        }
        Payload::Inventory(answer) => {
            row.inventory = Set(match answer {
                Inventory::InventoryReserved(_) => "RESERVED",
                Inventory::InventoryRejected(_) => "REJECTED",
            }
            .to_owned());
            &[Column::Inventory]
        }
        Payload::Payment(answer) => {
            row.payment = Set(match answer {
                Payment::PaymentAuthorized(_) => "AUTHORIZED",
                Payment::PaymentDeclined(_) => "DECLINED",
            }
            .to_owned());
            &[Column::Payment]
        }
        Payload::Saga(outcome) => {
            let (status, reason) = match outcome {
                Outcome::SagaConfirmed(_) => ("CONFIRMED", ""),
                Outcome::SagaRejected(rejected) => ("REJECTED", rejected.reason.as_str()),
            };
            row.status = Set(status.to_owned());
            row.reason = Set(reason.to_owned());
            &[Column::Status, Column::Reason]
        }
        Payload::Catalogue(_) | Payload::Account(_) => return Ok(()),
    };
    Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::Generation, Column::OrderId])
                .update_columns(updated.iter().copied())
                // The latest event's time, whichever order they are applied in.
                .value(
                    Column::UpdatedAt,
                    Expr::cust(
                        "CASE WHEN excluded.updated_at > order_views.updated_at \
                         THEN excluded.updated_at ELSE order_views.updated_at END",
                    ),
                )
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    Ok(())
}
