//! Who may call each RPC of SagaService (see `orderly_common::auth`): operators, and the
//! participants, which read a saga before they undo a step of it.

use orderly_common::auth::{Access, Role, Rules};

pub const RULES: Rules = &[
    (
        "GetSaga",
        Access {
            roles: &[Role::Operator],
            components: &["inventory", "payment"],
        },
    ),
    ("ListSagas", OPERATORS),
    ("RetrySaga", OPERATORS),
    ("ResolveSaga", OPERATORS),
];

const OPERATORS: Access = Access {
    roles: &[Role::Operator],
    components: &[],
};

#[cfg(test)]
mod tests {
    #[test]
    fn every_rpc_has_a_rule() {
        let service = orderly_proto::saga::v1::saga_service_server::SERVICE_NAME;
        let found = orderly_common::auth::mismatches(super::RULES, service);
        assert!(found.is_empty(), "{found:?}");
    }
}
