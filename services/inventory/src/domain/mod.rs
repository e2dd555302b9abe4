//! Inventory's domain vocabulary, free of IO.

use orderly_proto::inventory::v1::ReservationStatus as ProtoStatus;

/// Where an order's reservation stands. RESERVED moves once, to COMMITTED (the order was
/// confirmed: reserved stock becomes sold) or to RELEASED (stock goes back to available).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservationStatus {
    Reserved,
    Committed,
    Released,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "RESERVED",
            Self::Committed => "COMMITTED",
            Self::Released => "RELEASED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "RESERVED" => Some(Self::Reserved),
            "COMMITTED" => Some(Self::Committed),
            "RELEASED" => Some(Self::Released),
            _ => None,
        }
    }

    pub fn from_proto(status: ProtoStatus) -> Option<Self> {
        match status {
            ProtoStatus::Unspecified => None,
            ProtoStatus::Reserved => Some(Self::Reserved),
            ProtoStatus::Committed => Some(Self::Committed),
            ProtoStatus::Released => Some(Self::Released),
        }
    }

    pub fn to_proto(self) -> ProtoStatus {
        match self {
            Self::Reserved => ProtoStatus::Reserved,
            Self::Committed => ProtoStatus::Committed,
            Self::Released => ProtoStatus::Released,
        }
    }
}

/// The most any stock count can reach: counts travel as uint32 in the API.
pub const MAX_STOCK: i64 = u32::MAX as i64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_text_round_trips() {
        for status in [
            ReservationStatus::Reserved,
            ReservationStatus::Committed,
            ReservationStatus::Released,
        ] {
            assert_eq!(ReservationStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                ReservationStatus::from_proto(status.to_proto()),
                Some(status)
            );
        }
        assert_eq!(ReservationStatus::parse("reserved"), None);
    }
}
