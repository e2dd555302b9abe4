//! Who may call each RPC of NotificationService (see `orderly_common::auth`): customers for their
//! own notifications, operators for anyone's.

use orderly_common::auth::{Access, Role, Rules};

pub const RULES: Rules = &[(
    "ListNotifications",
    Access {
        roles: &[Role::Customer, Role::Operator],
        components: &[],
    },
)];

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_has_a_rule() {
        let service = orderly_proto::notification::v1::notification_service_server::SERVICE_NAME;
        let found = orderly_common::auth::mismatches(super::RULES, service);
        assert!(found.is_empty(), "{found:?}");
    }
}
