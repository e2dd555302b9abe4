//! Payment's domain vocabulary, free of IO.

use orderly_proto::payment::v1::PaymentStatus as ProtoStatus;

/// Where a payment stands. AUTHORIZED money is held on the account; it is then CAPTURED (the
/// order was confirmed) or given back (REFUNDED). DECLINED payments never held anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    Authorized,
    Captured,
    Refunded,
    Declined,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorized => "AUTHORIZED",
            Self::Captured => "CAPTURED",
            Self::Refunded => "REFUNDED",
            Self::Declined => "DECLINED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "AUTHORIZED" => Some(Self::Authorized),
            "CAPTURED" => Some(Self::Captured),
            "REFUNDED" => Some(Self::Refunded),
            "DECLINED" => Some(Self::Declined),
            _ => None,
        }
    }

    pub fn to_proto(self) -> ProtoStatus {
        match self {
            Self::Authorized => ProtoStatus::Authorized,
            Self::Captured => ProtoStatus::Captured,
            Self::Refunded => ProtoStatus::Refunded,
            Self::Declined => ProtoStatus::Declined,
        }
    }

    /// How refunding a payment in this status moves money, as (balance change, held change)
    /// for `amount`; `None` when it moves none: nothing to give back, or a captured payment,
    /// whose order was confirmed and stays so (I11).
    pub fn refund_movement(self, amount: i64) -> Option<(i64, i64)> {
        match self {
            Self::Authorized => Some((amount, -amount)),
            Self::Captured | Self::Refunded | Self::Declined => None,
        }
    }
}

/// Why a ledger entry exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerKind {
    Deposit,
    /// Balance moves to held for an order.
    Authorize,
    /// Held money leaves the account (the order was confirmed).
    Capture,
    Refund,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deposit => "DEPOSIT",
            Self::Authorize => "AUTHORIZE",
            Self::Capture => "CAPTURE",
            Self::Refund => "REFUND",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refunds_return_held_money_once_and_never_captured_money() {
        assert_eq!(
            PaymentStatus::Authorized.refund_movement(500),
            Some((500, -500))
        );
        assert_eq!(PaymentStatus::Captured.refund_movement(500), None);
        assert_eq!(PaymentStatus::Refunded.refund_movement(500), None);
        assert_eq!(PaymentStatus::Declined.refund_movement(500), None);
    }

    #[test]
    fn status_text_round_trips() {
        for status in [
            PaymentStatus::Authorized,
            PaymentStatus::Captured,
            PaymentStatus::Refunded,
            PaymentStatus::Declined,
        ] {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
        }
    }
}
