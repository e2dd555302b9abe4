//! Who may call each RPC of OrderViewService (see `orderly_common::auth`): customers for their
//! own orders and operators for anyone's; pausing the projection and rebuilding the read model
//! are for operators.

use orderly_common::auth::{Access, Role, Rules};

const OPERATORS: Access = Access::roles(&[Role::Operator]);

pub const RULES: Rules = &[
    (
        "GetOrderView",
        Access::roles(&[Role::Customer, Role::Operator]),
    ),
    ("PauseProjection", OPERATORS),
    ("ResumeProjection", OPERATORS),
    ("RebuildReadModel", OPERATORS),
];
