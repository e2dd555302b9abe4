//! Who may call each RPC of NotificationService (see `orderly_common::auth`): customers for their
//! own notifications, operators for anyone's.

use orderly_common::auth::{Access, Role, Rules};

pub const RULES: Rules = &[(
    "ListNotifications",
    Access::roles(&[Role::Customer, Role::Operator]),
)];
