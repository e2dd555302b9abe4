//! Who may call each RPC of PaymentService (see `orderly_common::auth`): finance opens accounts
//! and deposits; customers read their own account and payments, and the order service reads an
//! account to take an order; only the orchestrator refunds (a compensation).

use orderly_common::auth::{Access, Role, Rules};

pub const RULES: Rules = &[
    ("OpenAccount", FINANCE),
    ("Deposit", FINANCE),
    (
        "GetAccount",
        Access {
            roles: READERS,
            components: &["order"],
        },
    ),
    (
        "RefundPayment",
        Access {
            roles: &[],
            components: &["orchestrator"],
        },
    ),
    (
        "ListPayments",
        Access {
            roles: READERS,
            components: &[],
        },
    ),
];

const FINANCE: Access = Access {
    roles: &[Role::Finance],
    components: &[],
};

const READERS: &[Role] = &[Role::Customer, Role::Finance, Role::Operator];

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_has_a_rule() {
        let service = orderly_proto::payment::v1::payment_service_server::SERVICE_NAME;
        let found = orderly_common::auth::mismatches(super::RULES, service);
        assert!(found.is_empty(), "{found:?}");
    }
}
