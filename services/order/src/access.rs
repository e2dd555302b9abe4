//! Who may call each RPC of OrderService (see `orderly_common::auth`): customers for their own
//! orders, operators for anyone's.

use orderly_common::auth::{Access, Role, Rules};

pub const RULES: Rules = &[
    ("PlaceOrder", CUSTOMERS_AND_OPERATORS),
    ("GetOrder", CUSTOMERS_AND_OPERATORS),
    ("ListOrders", CUSTOMERS_AND_OPERATORS),
    ("WatchOrder", CUSTOMERS_AND_OPERATORS),
];

const CUSTOMERS_AND_OPERATORS: Access = Access {
    roles: &[Role::Customer, Role::Operator],
    components: &[],
};

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_has_a_rule() {
        let service = orderly_proto::order::v1::order_service_server::SERVICE_NAME;
        let found = orderly_common::auth::mismatches(super::RULES, service);
        assert!(found.is_empty(), "{found:?}");
    }
}
