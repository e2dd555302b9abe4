//! Order's domain vocabulary, free of IO.

pub mod pricing;

use orderly_proto::order::v1::OrderStatus as ProtoStatus;

/// An order's state. It moves only PENDING -> CONFIRMED or PENDING -> REJECTED (invariant I6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Rejected,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Rejected => "REJECTED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "PENDING" => Some(Self::Pending),
            "CONFIRMED" => Some(Self::Confirmed),
            "REJECTED" => Some(Self::Rejected),
            _ => None,
        }
    }

    pub fn from_proto(status: ProtoStatus) -> Option<Self> {
        match status {
            ProtoStatus::Unspecified => None,
            ProtoStatus::Pending => Some(Self::Pending),
            ProtoStatus::Confirmed => Some(Self::Confirmed),
            ProtoStatus::Rejected => Some(Self::Rejected),
        }
    }

    pub fn to_proto(self) -> ProtoStatus {
        match self {
            Self::Pending => ProtoStatus::Pending,
            Self::Confirmed => ProtoStatus::Confirmed,
            Self::Rejected => ProtoStatus::Rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_round_trips() {
        for status in [
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            OrderStatus::Rejected,
        ] {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
            assert_eq!(OrderStatus::from_proto(status.to_proto()), Some(status));
        }
    }
}
