//! Who may call each RPC of PaymentService (see `orderly_common::auth`): finance opens accounts
//! and deposits; customers read their own account and payments, and the order service reads an
//! account to take an order; only the orchestrator refunds (a compensation).

use orderly_common::auth::{Access, Role, Rules};

const FINANCE: Access = Access::roles(&[Role::Finance]);

const READERS: &[Role] = &[Role::Customer, Role::Finance, Role::Operator];

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
    ("RefundPayment", Access::components(&["orchestrator"])),
    ("ListPayments", Access::roles(READERS)),
];
