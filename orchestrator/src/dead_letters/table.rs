//! The `dead_letters` and `dead_letter_actions` tables.

use chrono::{DateTime, Utc};
use sea_orm::entity::prelude::*;

pub mod letters {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "dead_letters")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// The origin: topic, partition and offset of the refused message.
        pub topic: String,
        pub partition: i32,
        pub offset: i64,
        pub consumer: String,
        pub error: String,
        pub event_id: String,
        pub event_type: String,
        pub key: String,
        pub payload: Vec<u8>,
        /// The message's own headers (not the dead-letter ones), as a JSON array of
        /// `[name, value]`, to publish it again with.
        pub headers: String,
        pub dead_lettered_at: DateTime<Utc>,
        /// PARKED, REDRIVEN or DISCARDED (`DeadLetterState` without its prefix).
        pub state: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod actions {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "dead_letter_actions")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub dead_letter_id: Uuid,
        pub action: String,
        pub actor: String,
        pub note: String,
        pub at: DateTime<Utc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A dead letter's state, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Parked,
    Redriven,
    Discarded,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parked => "PARKED",
            Self::Redriven => "REDRIVEN",
            Self::Discarded => "DISCARDED",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [Self::Parked, Self::Redriven, Self::Discarded]
            .into_iter()
            .find(|state| state.as_str() == stored)
    }
}
