//! Who may call each RPC of OrderService (see `orderly_common::auth`): customers for their own
//! orders, operators for anyone's.

use orderly_common::auth::{Access, Role, Rules};

const CUSTOMERS_AND_OPERATORS: Access = Access::roles(&[Role::Customer, Role::Operator]);

pub const RULES: Rules = &[
    ("PlaceOrder", CUSTOMERS_AND_OPERATORS),
    ("GetOrder", CUSTOMERS_AND_OPERATORS),
    ("ListOrders", CUSTOMERS_AND_OPERATORS),
    ("WatchOrder", CUSTOMERS_AND_OPERATORS),
    ("WatchCustomerOrders", CUSTOMERS_AND_OPERATORS),
];
