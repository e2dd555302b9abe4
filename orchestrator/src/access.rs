//! Who may call each RPC of SagaService (see `orderly_common::auth`): operators, and the
//! participants, which read a saga before they undo a step of it. Dead letters are operators'
//! alone.

use orderly_common::auth::{Access, Role, Rules};

const OPERATORS: Access = Access::roles(&[Role::Operator]);

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
    ("ListDeadLetters", OPERATORS),
    ("GetDeadLetter", OPERATORS),
    ("RedriveDeadLetters", OPERATORS),
    ("DiscardDeadLetter", OPERATORS),
];
