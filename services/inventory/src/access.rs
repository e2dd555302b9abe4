//! Who may call each RPC of InventoryService (see `orderly_common::auth`): anyone signed in reads
//! the catalogue, and so does the order service to price orders; the catalogue role changes it;
//! only the orchestrator releases a reservation (a compensation).

use orderly_common::auth::{Access, EVERY_ROLE, Role, Rules};

const CATALOG: Access = Access::roles(&[Role::Catalog]);

const READ_CATALOGUE: Access = Access {
    roles: EVERY_ROLE,
    components: &["order"],
};

pub const RULES: Rules = &[
    ("UpsertProduct", CATALOG),
    ("Restock", CATALOG),
    ("GetProduct", READ_CATALOGUE),
    ("BatchGetProducts", READ_CATALOGUE),
    ("ListProducts", READ_CATALOGUE),
    ("ReleaseReservation", Access::components(&["orchestrator"])),
    (
        "ListReservations",
        Access::roles(&[Role::Catalog, Role::Operator]),
    ),
];
